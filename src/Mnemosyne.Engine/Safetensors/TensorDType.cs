namespace Mnemosyne.Engine.Safetensors;

public enum TensorDType
{
    F32, F16, BF16, F64, I64, I32, I16, I8, U8, Bool,
}
