namespace Mnemosyne.Engine.Models;

/// <summary>A model name the catalog does not know; the message lists the known ones.</summary>
public sealed class UnknownModelException(string message, string name, string? parameter = null)
    : ArgumentException(message, parameter)
{
    public string ModelName { get; } = name;
}
