// Runs every fixture derived from DeviceFixture once per device kind (NUnit TestFixtureSource): ILGPU's CPU
// accelerator always, CUDA and OpenCL where present. An absent kind is reported as ignored (not run), never as
// passed.
using Engine.Core;
using NUnit.Framework;

namespace Engine.Tests;

public static class DeviceKinds
{
    public static IEnumerable<TestFixtureData> All() =>
        Device.Kinds.Select(kind => new TestFixtureData(kind).SetArgDisplayNames(kind));
}

[TestFixtureSource(typeof(DeviceKinds), nameof(DeviceKinds.All))]
public abstract class DeviceFixture(string kind)
{
    private Device? _device;

    protected string Kind { get; } = kind;

    protected Device Device => _device ?? throw new InvalidOperationException("Device not created.");

    [OneTimeSetUp]
    public void CreateDevice()
    {
        if (!Device.IsAvailable(Kind))
            Assert.Ignore($"No {Kind} device on this machine: not run.");
        _device = Device.Create(Kind);
    }

    [OneTimeTearDown]
    public void DisposeDevice() => _device?.Dispose();

    private TensorScope? _scope;

    [SetUp]
    public void OpenScope() => _scope = TensorScope.Begin();

    [TearDown]
    public void CloseScope() => _scope?.Dispose();

    protected Tensor<T> Normal<T>(Shape shape, int seed) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T> =>
        Tensor.RandomNormal<T>(shape, seed, device: Device);

    /// <summary>A leaf that requires grad, with values away from zero (so kinks such as ReLU's are not within ε).</summary>
    protected Tensor<double> Variable(Shape shape, int seed)
    {
        var data = Tensor.RandomNormal<double>(shape, seed, device: Device).ToArray()
            .Select(v => Math.CopySign(0.1 + Math.Abs(v), v)).ToArray();
        var x = Tensor.FromArray(data, shape, Device);
        x.RequiresGrad = true;
        return x;
    }
}
