# The module's type data, as a nested module so that it is read after the loader has made the engine's types known.
@{
    ModuleVersion  = '0.1.0'
    GUID           = '0f4d8c5e-2b7a-4e1f-9c3d-5a6b7c8d9e0f'
    TypesToProcess = @('Mnemosyne.types.ps1xml')
}
