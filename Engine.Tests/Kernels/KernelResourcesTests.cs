// The loaded kernels' resources as the CUDA driver reports them (registers, spills, occupancy), which
// `kernels --conv-shapes` prints on a GPU; other ILGPU accelerators refuse with a clear exception.
using Engine.Core;
using Engine.Kernels.Ilgpu;
using NUnit.Framework;

namespace Engine.Tests.Kernels;

public sealed class KernelResourcesTests(string kind) : DeviceFixture(kind)
{
    [Test]
    public void CudaReportsTheTiledGemmsResourcesAndOtherAcceleratorsRefuse()
    {
        if (Device.Backend is not IlgpuBackend backend)
        {
            Assert.Ignore($"{Kind} runs no ILGPU kernels.");
            return;
        }
        var x = Normal<float>([2, 8, 6, 6], 1);
        var w = Normal<float>([8, 8, 3, 3], 2);
        Assert.That(x.Conv2d(w, null, stride: 1, padding: 1).ToArray(), Has.Length.EqualTo(2 * 8 * 6 * 6));
        if (backend.IlgpuKind != IlgpuKind.Cuda)
        {
            Assert.That(() => backend.LoadedKernelResources(),
                Throws.TypeOf<NotSupportedException>().With.Message.Contains(Kind));
            return;
        }
        var gemm = backend.LoadedKernelResources().Where(r => r.Kernel.StartsWith("Tiled<", StringComparison.Ordinal))
            .ToList();
        Assert.That(gemm, Is.Not.Empty, "the convolution's tiled GEMM is listed");
        foreach (var k in gemm)
        {
            Assert.That(k.Registers, Is.InRange(1, 255), k.Kernel);
            Assert.That(k.LocalBytes, Is.GreaterThanOrEqualTo(0), k.Kernel);
            Assert.That(k.GroupsOf256PerMultiprocessor, Is.GreaterThanOrEqualTo(1), k.Kernel);
        }
    }
}
