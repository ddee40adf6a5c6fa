// Convolution and pooling geometry: paddings whose padded extent passes 2^31 − 1 are rejected naming the padding,
// instead of wrapping around in 32-bit arithmetic to a small, valid-looking output.
using Engine.Kernels;
using NUnit.Framework;

namespace Engine.Tests.Kernels;

[TestFixture]
public sealed class GeometryTests
{
    [Test]
    public void ConvolutionPaddingThatOverflowsIsRejected()
    {
        var error = Assert.Throws<ArgumentException>(() =>
            ConvGeometry.Square(1, 1, 3, 3, 1, kernel: 1, stride: 1, padding: int.MaxValue))!;
        Assert.That(error.Message, Does.StartWith("conv2d: padding (top 2147483647"));
        Assert.That(error.Message, Does.Contain("padded input 4294967297x4294967297, over 2^31 − 1"));
        error = Assert.Throws<ArgumentException>(() =>
            new ConvGeometry(1, 1, 3, 3, 1, 1, 1, 1, 1, 0, 0, int.MaxValue, 0).Validated())!;
        Assert.That(error.Message, Does.Contain("padded input 3x2147483650"));
    }

    [Test]
    public void PoolingPaddingThatOverflowsIsRejected()
    {
        // 2·padding wraps to −2 in 32 bits, which passed the "at most half the window" check.
        var error = Assert.Throws<ArgumentException>(() =>
            new PoolGeometry(1, 1, 3, 3, Kernel: 3, Stride: 1, Padding: int.MaxValue).Validated())!;
        Assert.That(error.Message, Does.StartWith("max-pool: padding 2147483647 must be at most half the window 3"));
        error = Assert.Throws<ArgumentException>(() =>
            new PoolGeometry(1, 1, int.MaxValue, 3, Kernel: int.MaxValue, Stride: 1, Padding: (1 << 30) - 1).Validated())!;
        Assert.That(error.Message, Does.Contain("padding 1073741823 makes the padded input 4294967293x2147483649"));
    }

    [Test]
    public void LargeButRepresentableExtentsStillWork()
    {
        var g = new ConvGeometry(1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, int.MaxValue / 2, int.MaxValue / 2).Validated();
        Assert.That((g.OutHeight, g.OutWidth), Is.EqualTo((1, int.MaxValue)));
    }
}
