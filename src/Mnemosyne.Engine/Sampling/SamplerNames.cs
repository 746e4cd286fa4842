namespace Mnemosyne.Engine.Sampling;

/// <summary>
/// The schedulers under the names AUTOMATIC1111's web UI (and Forge, ComfyUI's A1111 importer, model sites) gives
/// them: a sampler ("Euler a", "DPM++ 2M") and, since A1111 1.9, a separate schedule type ("Karras"). Older
/// infotexts fold the schedule into the sampler ("DPM++ 2M Karras") and carry no schedule type; there a bare
/// "DPM++ 2M" meant the model's own (uniform) sigmas, while in 1.9 and later "DPM++ 2M" with the schedule type
/// "Automatic" means Karras sigmas (that sampler's default).
/// </summary>
public static class SamplerNames
{
    public const string Automatic = "Automatic";
    public const string Uniform = "Uniform";
    public const string Karras = "Karras";

    /// <summary>A1111's sampler names and their aliases (k_euler_a …) for each sampler Mnemosyne has, as (name, Automatic or no schedule type, Karras).</summary>
    private static readonly (string Name, string[] Aliases, SchedulerKind Plain, SchedulerKind? WithKarras)[] Samplers =
    [
        ("Euler", ["k_euler"], SchedulerKind.Euler, null),
        ("Euler a", ["k_euler_a", "k_euler_ancestral"], SchedulerKind.EulerAncestral, null),
        ("DPM++ 2M", ["k_dpmpp_2m"], SchedulerKind.DpmPlusPlus2M, SchedulerKind.DpmPlusPlus2MKarras),
        ("DDIM", [], SchedulerKind.Ddim, null),
        ("LCM", [], SchedulerKind.Lcm, null),
    ];

    /// <summary>The A1111 sampler and schedule type that name <paramref name="kind"/> (what a PNG's parameters say).</summary>
    public static (string Sampler, string ScheduleType) ToA1111(SchedulerKind kind) => kind switch
    {
        SchedulerKind.Euler => ("Euler", Automatic),
        SchedulerKind.EulerAncestral => ("Euler a", Automatic),
        // "Automatic" would read as Karras for this sampler in A1111 1.9 and later.
        SchedulerKind.DpmPlusPlus2M => ("DPM++ 2M", Uniform),
        SchedulerKind.DpmPlusPlus2MKarras => ("DPM++ 2M", Karras),
        SchedulerKind.Ddim => ("DDIM", Automatic),
        SchedulerKind.Lcm => ("LCM", Automatic),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown scheduler kind."),
    };

    /// <summary>
    /// The scheduler a sampler name and schedule type mean, or null when Mnemosyne has none like it. The sampler is an
    /// A1111 name or alias, optionally with the schedule type folded in ("DPM++ 2M Karras"), or a <see cref="SchedulerKind"/>
    /// name; case is ignored. A schedule type beside a SchedulerKind name must be the one that kind is written with (or
    /// Automatic).
    /// </summary>
    public static SchedulerKind? FromA1111(string sampler, string? scheduleType = null)
    {
        ArgumentNullException.ThrowIfNull(sampler);
        var name = sampler.Trim();
        var schedule = string.IsNullOrWhiteSpace(scheduleType) ? null : scheduleType.Trim();
        foreach (var folded in (ReadOnlySpan<string>)[Automatic, Uniform, Karras])
        {
            if (name.Length > folded.Length + 1 && name.EndsWith(" " + folded, StringComparison.OrdinalIgnoreCase))
            {
                if (schedule is not null && !IsSchedule(schedule, Automatic) && !IsSchedule(schedule, folded)) return null;
                name = name[..^(folded.Length + 1)].TrimEnd();
                schedule = folded;
                break;
            }
        }

        // "Euler" and "DDIM" are both A1111's names and SchedulerKind names: A1111's reading comes first.
        foreach (var (a1111, aliases, plain, withKarras) in Samplers)
        {
            if (!name.Equals(a1111, StringComparison.OrdinalIgnoreCase) && !aliases.Contains(name, StringComparer.OrdinalIgnoreCase)) continue;
            if (schedule is null || IsSchedule(schedule, Uniform)) return plain;
            if (IsSchedule(schedule, Automatic)) return withKarras ?? plain;
            return IsSchedule(schedule, Karras) ? withKarras : null;
        }
        if (Enum.GetNames<SchedulerKind>().FirstOrDefault(n => n.Equals(name, StringComparison.OrdinalIgnoreCase)) is { } enumName)
        {
            var kind = Enum.Parse<SchedulerKind>(enumName);
            return schedule is null || IsSchedule(schedule, Automatic) || IsSchedule(schedule, ToA1111(kind).ScheduleType) ? kind : null;
        }
        return null;
    }

    /// <summary>The A1111 names Mnemosyne reads, for messages and completion ("Euler", "Euler a", "DPM++ 2M", "DPM++ 2M Karras", "DDIM", "LCM").</summary>
    public static IReadOnlyList<string> Known { get; } = ["Euler", "Euler a", "DPM++ 2M", "DPM++ 2M Karras", "DDIM", "LCM"];

    private static bool IsSchedule(string schedule, string name) => schedule.Equals(name, StringComparison.OrdinalIgnoreCase);
}
