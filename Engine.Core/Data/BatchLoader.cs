// BatchLoader: turns an ImageDataset into mini-batches of normalised, augmented N×C×H×W floats for training.
// Determinism: the sample order of epoch e is a permutation drawn from (seed, e) and each sample's augmentation
// from (seed, e, sample index), so an epoch's batches depend only on (seed, epoch): a run resumed at epoch e sees
// exactly the batches an uninterrupted run would, and prefetching changes nothing but timing.
// Sharding (data-parallel training): with ShardCount S, every batch of the epoch's order is cut into S contiguous
// slices and the loader yields slice ShardIndex of each, so the shards of all ranks together are exactly the
// one-process batches, in order.
// Prefetching: while the caller works on batch k, batch k+1 is prepared on a thread-pool task.
// Buffers: full batches alternate between two buffers per enumeration, and a final partial batch has its own
// exactly-sized one, so a Batch's arrays always hold exactly Count images. A Batch is valid only until the next
// MoveNext of the enumeration that produced it (the buffer is then refilled): copy what you keep, and do not
// collect an epoch with ToList().
namespace Engine.Core.Data;

/// <summary>A mini-batch: <paramref name="Images"/> is Count×C×H×W normalised floats, <paramref name="Labels"/>
/// the Count class indices.</summary>
/// <param name="Images">Count×C×H×W normalised, augmented floats, planar per image.</param>
/// <param name="Labels">The class index of each image.</param>
/// <param name="Count">Images in the batch: the loader's batch size, or fewer in a final partial batch.</param>
public sealed record Batch(float[] Images, int[] Labels, int Count);

/// <summary>Turns an <see cref="ImageDataset"/> into mini-batches of normalised, augmented N×C×H×W floats, as a
/// torch.utils.data.DataLoader: shuffled per epoch, prefetched one batch ahead, and deterministic (the batches of
/// an epoch depend only on (<see cref="Seed"/>, epoch), so a resumed run sees what an uninterrupted one would).
/// A <see cref="Batch"/> is valid only until the enumeration moves on: its arrays are reused.</summary>
public sealed class BatchLoader : IDisposable
{
    private volatile bool _disposed;

    /// <summary>A loader over <paramref name="data"/>; nothing is read until an epoch is enumerated.</summary>
    /// <param name="data">The images and labels.</param>
    /// <param name="batchSize">Images per batch; at most the dataset's size.</param>
    /// <param name="shuffle">Draw a new sample order each epoch (training); off, the dataset's order.</param>
    /// <param name="seed">Seeds the order and the augmentation.</param>
    /// <param name="normalization">Maps bytes to floats; must match the images' channels (and size, per pixel).
    /// </param>
    /// <param name="augmentation">Applied to each normalised image; <see cref="Augmentation.None"/> for
    /// evaluation.</param>
    /// <param name="dropLast">Leave out the final batch when it would be smaller than
    /// <paramref name="batchSize"/>.</param>
    /// <param name="shardIndex">Which slice of every batch this loader yields, 0 ≤ index &lt;
    /// <paramref name="shardCount"/>.</param>
    /// <param name="shardCount">Slices per batch (the ranks of a data-parallel job): slice r of a batch of n images
    /// is its images ⌊r·n/S⌋ to ⌊(r+1)·n/S⌋ − 1.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="batchSize"/> is not positive, or the shard is
    /// not one of the batch's slices.</exception>
    /// <exception cref="ArgumentException"><paramref name="batchSize"/> exceeds the dataset's size, or
    /// <paramref name="normalization"/> does not fit the images.</exception>
    public BatchLoader(ImageDataset data, int batchSize, bool shuffle, int seed, Normalization normalization,
        Augmentation augmentation, bool dropLast = false, int shardIndex = 0, int shardCount = 1)
    {
        if (batchSize <= 0)
            throw new ArgumentOutOfRangeException(nameof(batchSize), $"Batch size must be positive; got {batchSize}.");
        if (shardCount < 1 || shardCount > batchSize || shardIndex < 0 || shardIndex >= shardCount)
            throw new ArgumentOutOfRangeException(nameof(shardIndex),
                $"Shard {shardIndex} of {shardCount} is not a slice of batches of {batchSize}.");
        if (batchSize > data.Count)
            throw new ArgumentException(
                $"Batch size {batchSize} is larger than the dataset's {data.Count} images ({data.Source}).",
                nameof(batchSize));
        if (normalization.Channels != data.Channels)
            throw new ArgumentException(
                $"The normalization has {normalization.Channels} channels; the images have {data.Channels}.",
                nameof(normalization));
        normalization.CheckImageSize(data.ImageSize);
        Data = data;
        BatchSize = batchSize;
        Shuffle = shuffle;
        Seed = seed;
        Normalization = normalization;
        Augmentation = augmentation;
        DropLast = dropLast;
        ShardIndex = shardIndex;
        ShardCount = shardCount;
    }

    /// <summary>Which slice of every batch this loader yields.</summary>
    public int ShardIndex { get; }

    /// <summary>Slices per batch (1: whole batches).</summary>
    public int ShardCount { get; }

    /// <summary>The images and labels the batches are drawn from.</summary>
    public ImageDataset Data { get; }

    /// <summary>Images per batch (the last one may hold fewer unless <see cref="DropLast"/>).</summary>
    public int BatchSize { get; }

    /// <summary>Whether each epoch draws a new sample order from (<see cref="Seed"/>, epoch).</summary>
    public bool Shuffle { get; }

    /// <summary>Seeds the sample order and each sample's augmentation.</summary>
    public int Seed { get; }

    /// <summary>How image bytes become floats.</summary>
    public Normalization Normalization { get; }

    /// <summary>The random crop and flip applied to each normalised image.</summary>
    public Augmentation Augmentation { get; }

    /// <summary>Whether the final batch is left out when it would be smaller than <see cref="BatchSize"/>.</summary>
    public bool DropLast { get; }

    /// <summary>Prepare the next batch in the background while the caller uses the current one (default). Off,
    /// batches are prepared on the caller's thread; the batches are the same either way.</summary>
    public bool Prefetch { get; init; } = true;

    /// <summary>Batches each epoch yields: ⌈Count / BatchSize⌉, or ⌊Count / BatchSize⌋ with
    /// <see cref="DropLast"/>.</summary>
    public int BatchesPerEpoch => DropLast ? Data.Count / BatchSize : (Data.Count + BatchSize - 1) / BatchSize;

    /// <summary>The batches of epoch <paramref name="epoch"/> (0-based), a function of (seed, epoch) only.</summary>
    public IEnumerable<Batch> Epoch(int epoch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        ObjectDisposedException.ThrowIf(_disposed, this);
        return Batches(epoch);
    }

    /// <summary>Ends use of the loader: enumerations in progress stop at their next MoveNext.</summary>
    public void Dispose() => _disposed = true;

    private IEnumerable<Batch> Batches(int epoch)
    {
        int[] order = Shuffle
            ? new DeterministicRandom(Seed, (long)RandomStream.Order, epoch).Permutation(Data.Count)
            : Enumerable.Range(0, Data.Count).ToArray();
        (int Start, int Count) SliceOf(int count) =>
            ((int)((long)ShardIndex * count / ShardCount),
                (int)((long)(ShardIndex + 1) * count / ShardCount - (long)ShardIndex * count / ShardCount));
        Batch[] fullBuffers = [NewBatch(SliceOf(BatchSize).Count), NewBatch(SliceOf(BatchSize).Count)];
        Batch Prepare(int index)
        {
            int count = Math.Min(BatchSize, Data.Count - index * BatchSize);
            var (start, slice) = SliceOf(count);
            var buffer = count == BatchSize ? fullBuffers[index % 2] : NewBatch(slice);
            return Fill(buffer, epoch, order.AsSpan(index * BatchSize + start));
        }

        Task<Batch>? next = null;
        try
        {
            for (int index = 0; index < BatchesPerEpoch; index++)
            {
                Batch current = next is null ? Prepare(index) : next.GetAwaiter().GetResult();
                int following = index + 1;
                next = Prefetch && following < BatchesPerEpoch ? Task.Run(() => Prepare(following)) : null;
                yield return current;
                ObjectDisposedException.ThrowIf(_disposed, this);
            }
        }
        finally
        {
            // An abandoned enumeration still lets its prefetch finish (WaitAny does not rethrow its failure:
            // nobody asked for that batch).
            if (next is not null) Task.WaitAny(next);
        }
    }

    private Batch NewBatch(int count) => new(new float[count * Data.ImageSize], new int[count], count);

    /// <summary>Fills <paramref name="batch"/> with the samples listed first in <paramref name="samples"/>.</summary>
    private Batch Fill(Batch batch, int epoch, ReadOnlySpan<int> samples)
    {
        int size = Data.ImageSize;
        var normalised = Augmentation.IsNone ? null : new float[size];
        for (int i = 0; i < batch.Count; i++)
        {
            int sample = samples[i];
            batch.Labels[i] = Data.Labels[sample];
            var destination = batch.Images.AsSpan(i * size, size);
            if (normalised is null)
            {
                Normalization.Apply(Data.Image(sample), destination);
                continue;
            }
            Normalization.Apply(Data.Image(sample), normalised);
            var random = new DeterministicRandom(Seed, (long)RandomStream.Augmentation, epoch, sample);
            Augmentation.Draw(ref random).Apply(normalised, destination, Data.Channels, Data.Height, Data.Width);
        }
        return batch;
    }
}
