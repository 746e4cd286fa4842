using System.Collections;
using System.Globalization;
using System.Management.Automation;
using System.Reflection;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.PowerShell;

/// <summary>
/// Makes a Scene again of the property bag that Start-Job, remoting and Import-Clixml deliver
/// ('Deserialized.Mnemosyne.Engine.Pipeline.Scene'), so that it can be saved, measured and piped as
/// the scene it was. Mnemosyne.types.ps1xml names this converter for Scene and Scene as the target of
/// the deserialised type, and serialises scenes deep enough to carry their pixels and latents.
/// </summary>
public sealed class SceneConverter : PSTypeConverter
{
    private static readonly string DeserializedTypeName = "Deserialized." + typeof(Scene).FullName;

    /// <summary>Every setting a scene is made with: its settable properties.</summary>
    private static readonly PropertyInfo[] Settings = typeof(Scene).GetProperties(BindingFlags.Public | BindingFlags.Instance)
        .Where(property => property.CanWrite).ToArray();

    public override bool CanConvertFrom(object sourceValue, Type destinationType)
        => destinationType == typeof(Scene) && sourceValue is PSObject serialized && serialized.TypeNames.Contains(DeserializedTypeName);

    public override object ConvertFrom(object sourceValue, Type destinationType, IFormatProvider formatProvider, bool ignoreCase)
    {
        if (!CanConvertFrom(sourceValue, destinationType))
            throw new PSInvalidCastException($"Only a deserialised scene ({DeserializedTypeName}) converts to a Scene here.");
        var serialized = (PSObject)sourceValue;
        // Scene's required members are a compiler rule; the properties are set one by one below, every one it had.
        var scene = (Scene)Activator.CreateInstance(typeof(Scene))!;
        foreach (var property in Settings)
        {
            var value = serialized.Properties[property.Name]?.Value;
            if (value is null) continue;
            property.SetValue(scene, Convert(value, property.PropertyType));
        }
        if (scene.Image is null || scene.FinalLatents is null || scene.Prompt is null || scene.Model is null)
            throw new PSInvalidCastException("The deserialised scene lacks its image, latents, prompt or model: it was serialised without Mnemosyne's types.");
        return scene;
    }

    public override bool CanConvertTo(object sourceValue, Type destinationType) => false;

    public override object ConvertTo(object sourceValue, Type destinationType, IFormatProvider formatProvider, bool ignoreCase)
        => throw new PSInvalidCastException($"A Scene converts to {destinationType} by PowerShell's own rules, not by {nameof(SceneConverter)}.");

    private static object Convert(object value, Type type)
    {
        if (type == typeof(RgbImage))
            return new RgbImage(Property<int>(value, nameof(RgbImage.Width)), Property<int>(value, nameof(RgbImage.Height)), Property<byte[]>(value, nameof(RgbImage.Rgb)));
        if (type == typeof(FloatTensor))
            return new FloatTensor(Property<float[]>(value, nameof(FloatTensor.Data)), Property<int[]>(value, nameof(FloatTensor.Shape)));
        // The deserialiser gives lists as ArrayLists: an array of their elements has every list interface.
        if (type.IsInterface && type.IsGenericType && typeof(IEnumerable).IsAssignableFrom(type))
            type = type.GetGenericArguments()[0].MakeArrayType();
        return LanguagePrimitives.ConvertTo(value, type, CultureInfo.InvariantCulture);
    }

    private static T Property<T>(object value, string name)
        => PSObject.AsPSObject(value).Properties[name]?.Value is { } property
            ? (T)LanguagePrimitives.ConvertTo(property, typeof(T), CultureInfo.InvariantCulture)
            : throw new PSInvalidCastException($"The deserialised scene's image or latents lack their '{name}'.");
}
