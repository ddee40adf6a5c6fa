// Four consecutive elements as one value: a view cast to Quad<float> compiles to 16-byte vector loads and stores
// (ld.global.v4.f32, ld.shared.v4.f32). The host checks that such a view starts at a multiple of four elements.
namespace Engine.Kernels.Ilgpu;

/// <summary>Four consecutive elements, loaded and stored as one vector (16 bytes in float32).</summary>
public struct Quad<T> where T : unmanaged
{
    /// <summary>Elements 0, 1, 2 and 3.</summary>
    public T X, Y, Z, W;
}
