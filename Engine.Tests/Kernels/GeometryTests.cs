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
        var error = Assert.Throws<ArgumentException>(() =>
            PoolGeometry.Square(1, 1, 3, 3, kernel: 3, stride: 1, padding: int.MaxValue).Validated())!;
        Assert.That(error.Message, Does.StartWith("max-pool: padding before the input must be smaller than the (dilated) window 3x3"));
        Assert.That(error.Message, Does.Contain("padding (top 2147483647, bottom 2147483647"));
        error = Assert.Throws<ArgumentException>(() =>
            PoolGeometry.Square(1, 1, int.MaxValue, 3, kernel: int.MaxValue, stride: 1, padding: (1 << 30) - 1)
                .Validated())!;
        Assert.That(error.Message, Does.Contain("padding makes the padded input 4294967293x2147483649"));
        Assert.That(error.Message, Does.Contain("top 1073741823"));
    }

    [Test]
    public void LargeButRepresentableExtentsStillWork()
    {
        var g = new ConvGeometry(1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, int.MaxValue / 2, int.MaxValue / 2).Validated();
        Assert.That((g.OutHeight, g.OutWidth), Is.EqualTo((1, int.MaxValue)));
    }
}
