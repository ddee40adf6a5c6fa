// a·b + c rounded once, as one instruction on a GPU: ILGPU 1.5.3 compiles `a * b + c` to a separate multiply and
// add and `MathF.FusedMultiplyAdd` to an unresolved extern, so the tiled GEMM calls Apply, which the PTX backend
// replaces with `fma.rn.f32` / `fma.rn.f64` (registered by Register on every context that compiles kernels). The
// CPU accelerator runs the managed body and OpenCL compiles it: a multiply and an add (two roundings; OpenCL's
// compiler may contract them), since ILGPU cannot compile the managed FusedMultiplyAdd for a device.
using System.Numerics;
using System.Reflection;
using ILGPU;
using ILGPU.Backends;
using ILGPU.Backends.OpenCL;
using ILGPU.Backends.PTX;
using ILGPU.IR;
using ILGPU.IR.Intrinsics;
using ILGPU.IR.Values;

namespace Engine.Kernels.Ilgpu;

/// <summary>The fused multiply-add of kernel code, and its PTX code generator.</summary>
public static class FusedMultiplyAdd
{
    /// <summary>a·b + c: one <c>fma.rn</c> (single rounding) on CUDA, a multiply and an add elsewhere.</summary>
    [IntrinsicImplementation]
    public static T Apply<T>(T a, T b, T c) where T : unmanaged, IFloatingPointIeee754<T> => a * b + c;

    /// <summary>Registers the implementations of <see cref="Apply{T}"/> for float and double on a context being
    /// built: PTX code generation, and for OpenCL a redirect to <see cref="MultiplyAdd{T}"/>.</summary>
    public static void Register(Context.Builder builder)
    {
        const BindingFlags flags = BindingFlags.NonPublic | BindingFlags.Static;
        var generator = typeof(FusedMultiplyAdd).GetMethod(nameof(GeneratePtx), flags)!;
        var apply = typeof(FusedMultiplyAdd).GetMethod(nameof(Apply))!;
        var plain = typeof(FusedMultiplyAdd).GetMethod(nameof(MultiplyAdd), flags)!;
        var manager = builder.GetIntrinsicManager();
        foreach (var element in new[] { typeof(float), typeof(double) })
        {
            var method = apply.MakeGenericMethod(element);
            manager.RegisterMethod(method, new PTXIntrinsic(generator, IntrinsicImplementationMode.GenerateCode));
            manager.RegisterMethod(method,
                new CLIntrinsic(plain.MakeGenericMethod(element), IntrinsicImplementationMode.Redirect));
        }
    }

    /// <summary>a·b + c as a multiply and an add: <see cref="Apply{T}"/> on OpenCL.</summary>
    private static T MultiplyAdd<T>(T a, T b, T c) where T : unmanaged, IFloatingPointIeee754<T> => a * b + c;

    /// <summary>Emits <c>fma.rn.f32</c> or <c>fma.rn.f64</c> for a call of <see cref="Apply{T}"/>.</summary>
    private static void GeneratePtx(PTXBackend backend, PTXCodeGenerator generator, Value value)
    {
        var call = (MethodCall)value;
        var a = generator.LoadPrimitive(call[0]);
        var b = generator.LoadPrimitive(call[1]);
        var c = generator.LoadPrimitive(call[2]);
        var result = generator.AllocateHardware(value);
        using var command = generator.BeginCommand(
            call[0].BasicValueType == BasicValueType.Float64 ? "fma.rn.f64" : "fma.rn.f32");
        command.AppendArgument(result);
        command.AppendArgument(a);
        command.AppendArgument(b);
        command.AppendArgument(c);
    }
}
