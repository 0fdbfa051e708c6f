using LiveLearning.Numerics;

namespace LiveLearning.Storage;

/// <summary>Element types of the safetensors format (the <c>dtype</c> strings of the header).</summary>
public enum SafeTensorsDType : byte
{
    /// <summary><c>BOOL</c>: one byte per element.</summary>
    Bool,

    /// <summary><c>U8</c>.</summary>
    U8,

    /// <summary><c>I8</c>.</summary>
    I8,

    /// <summary><c>F8_E5M2</c>: 8-bit float (recognised, not usable as weights).</summary>
    F8E5M2,

    /// <summary><c>F8_E4M3</c>: 8-bit float (recognised, not usable as weights).</summary>
    F8E4M3,

    /// <summary><c>I16</c>.</summary>
    I16,

    /// <summary><c>U16</c>.</summary>
    U16,

    /// <summary><c>F16</c>: IEEE 754 binary16.</summary>
    F16,

    /// <summary><c>BF16</c>: bfloat16.</summary>
    BF16,

    /// <summary><c>I32</c>.</summary>
    I32,

    /// <summary><c>U32</c>.</summary>
    U32,

    /// <summary><c>F32</c>: IEEE 754 binary32.</summary>
    F32,

    /// <summary><c>I64</c>.</summary>
    I64,

    /// <summary><c>U64</c>.</summary>
    U64,

    /// <summary><c>F64</c>: IEEE 754 binary64.</summary>
    F64,
}

/// <summary>Names, sizes and conversions of <see cref="SafeTensorsDType"/>.</summary>
public static class SafeTensorsDTypes
{
    /// <summary>Parses a header <c>dtype</c> string (exact, case-sensitive, as the format defines them).</summary>
    /// <param name="text">The dtype string, e.g. <c>"BF16"</c>.</param>
    /// <param name="dtype">The parsed type.</param>
    /// <returns>False for unknown strings (including newer exotic types this library does not read).</returns>
    public static bool TryParse(string text, out SafeTensorsDType dtype)
    {
        switch (text)
        {
            case "BOOL": dtype = SafeTensorsDType.Bool; return true;
            case "U8": dtype = SafeTensorsDType.U8; return true;
            case "I8": dtype = SafeTensorsDType.I8; return true;
            case "F8_E5M2": dtype = SafeTensorsDType.F8E5M2; return true;
            case "F8_E4M3": dtype = SafeTensorsDType.F8E4M3; return true;
            case "I16": dtype = SafeTensorsDType.I16; return true;
            case "U16": dtype = SafeTensorsDType.U16; return true;
            case "F16": dtype = SafeTensorsDType.F16; return true;
            case "BF16": dtype = SafeTensorsDType.BF16; return true;
            case "I32": dtype = SafeTensorsDType.I32; return true;
            case "U32": dtype = SafeTensorsDType.U32; return true;
            case "F32": dtype = SafeTensorsDType.F32; return true;
            case "I64": dtype = SafeTensorsDType.I64; return true;
            case "U64": dtype = SafeTensorsDType.U64; return true;
            case "F64": dtype = SafeTensorsDType.F64; return true;
            default: dtype = default; return false;
        }
    }

    /// <summary>The header string of a dtype (e.g. <c>"F8_E4M3"</c>).</summary>
    /// <param name="dtype">The type.</param>
    /// <returns>The string written in the header.</returns>
    public static string ToName(SafeTensorsDType dtype) => dtype switch
    {
        SafeTensorsDType.Bool => "BOOL",
        SafeTensorsDType.U8 => "U8",
        SafeTensorsDType.I8 => "I8",
        SafeTensorsDType.F8E5M2 => "F8_E5M2",
        SafeTensorsDType.F8E4M3 => "F8_E4M3",
        SafeTensorsDType.I16 => "I16",
        SafeTensorsDType.U16 => "U16",
        SafeTensorsDType.F16 => "F16",
        SafeTensorsDType.BF16 => "BF16",
        SafeTensorsDType.I32 => "I32",
        SafeTensorsDType.U32 => "U32",
        SafeTensorsDType.F32 => "F32",
        SafeTensorsDType.I64 => "I64",
        SafeTensorsDType.U64 => "U64",
        SafeTensorsDType.F64 => "F64",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Unknown safetensors dtype."),
    };

    /// <summary>Bytes per element.</summary>
    /// <param name="dtype">The type.</param>
    /// <returns>1, 2, 4 or 8.</returns>
    public static int ElementSize(SafeTensorsDType dtype) => dtype switch
    {
        SafeTensorsDType.Bool or SafeTensorsDType.U8 or SafeTensorsDType.I8 or SafeTensorsDType.F8E5M2 or SafeTensorsDType.F8E4M3 => 1,
        SafeTensorsDType.I16 or SafeTensorsDType.U16 or SafeTensorsDType.F16 or SafeTensorsDType.BF16 => 2,
        SafeTensorsDType.I32 or SafeTensorsDType.U32 or SafeTensorsDType.F32 => 4,
        SafeTensorsDType.I64 or SafeTensorsDType.U64 or SafeTensorsDType.F64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Unknown safetensors dtype."),
    };

    /// <summary>The weight storage type for F32/F16/BF16 tensors.</summary>
    /// <param name="dtype">The type.</param>
    /// <param name="weightType">The matching <see cref="WeightType"/>.</param>
    /// <returns>False for types that cannot back a <see cref="WeightMatrix"/>.</returns>
    public static bool TryGetWeightType(SafeTensorsDType dtype, out WeightType weightType)
    {
        switch (dtype)
        {
            case SafeTensorsDType.F32: weightType = WeightType.F32; return true;
            case SafeTensorsDType.F16: weightType = WeightType.F16; return true;
            case SafeTensorsDType.BF16: weightType = WeightType.BF16; return true;
            default: weightType = default; return false;
        }
    }

    /// <summary>The safetensors dtype of a weight storage type.</summary>
    /// <param name="weightType">The weight type.</param>
    /// <returns>F32, F16 or BF16.</returns>
    public static SafeTensorsDType FromWeightType(WeightType weightType) => weightType switch
    {
        WeightType.F32 => SafeTensorsDType.F32,
        WeightType.F16 => SafeTensorsDType.F16,
        WeightType.BF16 => SafeTensorsDType.BF16,
        _ => throw new ArgumentOutOfRangeException(nameof(weightType), weightType, "Unknown weight type."),
    };
}
