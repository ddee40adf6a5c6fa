// Device selection (API, environment variable, default order) and its error messages.
using Engine.Core;
using NUnit.Framework;

namespace Engine.Tests.Core;

[NonParallelizable]
public sealed class DeviceTests
{
    [Test]
    public void SizesBeyondMemoryOrArraysAreNamed()
    {
        var tooLong = Assert.Throws<ArgumentException>(() =>
            Tensor.RandomNormal<float>([1_000_000_000, 3, 32, 32], seed: 1))!;
        Assert.That(tooLong.Message, Does.Contain("[1000000000, 3, 32, 32]").And.Contain("3,072,000,000,000"));

        using var device = Device.Create("cpu");
        var tooLarge = Assert.Throws<OutOfMemoryException>(() => Tensor.Zeros<float>([1 << 24, 1 << 24], device))!;
        Assert.That(tooLarge.Message, Does.Contain("281,474,976,710,656 elements").And.Contain("GiB"));
        Assert.That(device.LiveBuffers, Is.Zero, "a failed allocation is not counted as live");
    }

    [Test]
    public void UnknownKindIsRejectedWithTheKnownKinds()
    {
        var error = Assert.Throws<ArgumentException>(() => Device.Create("tpu"))!;
        Assert.That(error.Message, Does.Contain("tpu").And.Contain("cuda").And.Contain("ilgpu-cpu"));
    }

    [Test]
    public void ExplicitRequestWins()
    {
        using var device = Device.Select("ilgpu-cpu");
        Assert.That(device.Kind, Is.EqualTo("ilgpu-cpu"));
        Assert.That(device.SelectionReason, Does.Contain("--device"));
    }

    [Test]
    public void EnvironmentVariableIsHonoured()
    {
        string? saved = Environment.GetEnvironmentVariable(Device.EnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable(Device.EnvironmentVariable, "ilgpu-cpu");
            using var device = Device.Select(null);
            Assert.That(device.Kind, Is.EqualTo("ilgpu-cpu"));
            Assert.That(device.SelectionReason, Does.Contain(Device.EnvironmentVariable));
            Environment.SetEnvironmentVariable(Device.EnvironmentVariable, "bogus");
            Assert.Throws<ArgumentException>(() => Device.Select(null));
        }
        finally
        {
            Environment.SetEnvironmentVariable(Device.EnvironmentVariable, saved);
        }
    }

    [Test]
    public void DefaultOrderFallsBackAndSaysWhy()
    {
        string? saved = Environment.GetEnvironmentVariable(Device.EnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable(Device.EnvironmentVariable, null);
            using var device = Device.Select(null);
            string expected = Device.DefaultOrder.First(Device.IsAvailable);
            Assert.That(device.Kind, Is.EqualTo(expected));
            Assert.That(device.SelectionReason, Does.StartWith("default"));
            if (expected == "cpu")
                Assert.That(device.SelectionReason, Does.Contain("no cuda or opencl device"));
        }
        finally
        {
            Environment.SetEnvironmentVariable(Device.EnvironmentVariable, saved);
        }
    }

    [Test]
    public void MissingKindIsReportedClearly()
    {
        if (Device.IsAvailable("cuda")) Assert.Ignore("A CUDA device is present: nothing to report missing.");
        var error = Assert.Throws<InvalidOperationException>(() => Device.Create("cuda"))!;
        Assert.That(error.Message, Does.Contain("No Cuda device"));
    }

    [Test]
    public void DisposedTensorIsReportedClearly()
    {
        using var device = Device.Create("ilgpu-cpu");
        var t = Tensor.Zeros<float>([2, 2], device);
        t.Dispose();
        var error = Assert.Throws<ObjectDisposedException>(() => t.ToArray())!;
        Assert.That(error.Message, Does.Contain("[2, 2]"));
    }
}
