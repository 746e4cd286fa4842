"""Tricky tokenizer cases: each prompt with the ids of both SDXL tokenizers, padded/truncated to 77 as the
StableDiffusionXLPipeline calls them (padding="max_length", max_length=77, truncation=True).

The tokenizers are the harness's CLIPTokenizer (transformers' interface over openai/CLIP's simple_tokenizer), as for
../shared/fidelity/tokenizer-cases.json. Real transformers cleans text with the full ftfy.fix_text, the harness with NFC
and html.unescape only; with --real-ftfy DIR (a folder holding the ftfy package) every prompt is checked to clean to the
same text both ways, so that the ids are those real transformers gives.

Run (see README.md beside this file for the set-up):
  PYTHONPATH=$HARNESS/stubs:$VENDOR /usr/bin/python3 make_tokenizer_cases.py MODEL_DIR OUT.json [--real-ftfy DIR]"""
import argparse, json, os, subprocess, sys

from transformers import CLIPTokenizer

WORDS_75 = " ".join(["cat"] * 75)  # exactly fills the 75 places between start and end
PROMPTS = [
    "Hello, World!",
    "A CAT. a Cat. a cAt. A cAT",
    "wow!!",
    "!!!!",
    "hello !! world !!! end!",
    "masterpiece!!, best quality!!!, (sharp:1.3)!",
    "tom &amp; jerry",
    "&quot;quoted&quot; &lt;3 and &#39;single&#39;",
    "fish &amp;amp; chips",
    "tab\tseparated\twords\t\there",
    "line one\nline two\n\nline three",
    "   leading and trailing   \t\n",
    "multiple     spaces    between     words",
    "\r\nwindows\r\nline\r\nbreaks",
    "she's here, they're there, I'm fine, we've gone, you'll see, he'd go, don't",
    "SHE'S HERE, IT'S OK, WE'RE DONE, DON'T",
    "rock 'n' roll, 'quoted' words'' and ''double''",
    "'s 't 're at the start",
    "1234567890 3.5mm f/1.8 1/125s ISO-100 24-70mm",
    "1,000,000 people in 2024, 0.001%, -273.15°C",
    "emoji 🐱🐶 party 🎉 thumbs 👍🏽",
    "日本語のプロンプト、美しい風景",
    "中文提示词 一只可爱的猫",
    "한국어 고양이 사진",
    "Ελληνικά και Кириллица",
    "ΣΟΦΟΣ ΟΔΥΣΣΕΥΣ",
    "İstanbul at night, DİYARBAKIR",
    "Straße STRASSE ß",
    "e\u0301le\u0300ve cafe\u0301 (decomposed accents)",
    "naïve façade résumé Ångström Øresund",
    "(masterpiece:1.2), [best quality], {detailed}, <lora:style:0.8>",
    "under_score snake_case kebab-case CamelCase XMLHttpRequest",
    "C++ & C# vs. F#; 50% off! $9.99 @home ~tilde~ `code` |pipe| \\back\\slash",
    "...---...!!!???,,,;;;",
    "email test@example.com or https://example.com/path?q=1&x=2#frag",
    "",
    "   ",
    WORDS_75,
    WORDS_75 + " dog",
    "a breathtaking ultra-detailed photograph of an ancient stone lighthouse on a rugged cliff at golden hour, "
    "crashing turquoise waves, dramatic storm clouds, seagulls circling, volumetric god rays, 85mm lens, f/2.8, "
    "bokeh, film grain, Kodak Portra 400, award-winning composition, trending on artstation, highly intricate, "
    "sharp focus, 8k resolution, cinematic colour grading!!",
]


def real_ftfy_texts(folder, prompts):
    """Each prompt cleaned as real transformers' CLIPTokenizer does (whitespace_clean(ftfy.fix_text(t)).lower()),
    in a child process so that the real ftfy does not meet the harness's stand-in."""
    code = ("import json, sys, re, ftfy\n"
            "ps = json.load(sys.stdin)\n"
            "json.dump([re.sub(r'\\s+', ' ', ftfy.fix_text(p)).strip().lower() for p in ps], sys.stdout)\n")
    env = dict(os.environ, PYTHONPATH=os.path.abspath(folder))
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(prompts), capture_output=True, text=True,
                         env=env, check=True)
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="SDXL checkpoint folder with tokenizer/ and tokenizer_2/")
    ap.add_argument("out", help="the JSON file to write")
    ap.add_argument("--real-ftfy", help="folder holding the real ftfy package, to check the text cleaning")
    a = ap.parse_args()
    tokenizers = {name: CLIPTokenizer.from_pretrained(os.path.join(a.model, name)) for name in ("tokenizer", "tokenizer_2")}
    if a.real_ftfy:
        from clip.simple_tokenizer import basic_clean, whitespace_clean
        harness = [whitespace_clean(basic_clean(p)).lower() for p in PROMPTS]
        real = real_ftfy_texts(a.real_ftfy, PROMPTS)
        differ = [(p, h, r) for p, h, r in zip(PROMPTS, harness, real) if h != r]
        assert not differ, f"real ftfy cleans these prompts differently: {differ}"
    cases = {"prompts": [], "note": (
        "ids padded/truncated to 77 as the SDXL pipeline calls each tokenizer (tokenizer pads with <|endoftext|> 49407, "
        "tokenizer_2 with '!' 0 and turns every '!' in a prompt into 0); made with the reference harness's "
        "CLIPTokenizer over openai/CLIP's simple_tokenizer" + (
            ", every prompt checked to clean (ftfy.fix_text, whitespace, lower case) to the same text as real "
            "transformers with ftfy 6.2.3" if a.real_ftfy else ""))}
    for p in PROMPTS:
        entry = {"prompt": p}
        for name, tokenizer in tokenizers.items():
            ids = tokenizer(p, padding="max_length", max_length=77, truncation=True).input_ids[0].tolist()
            assert len(ids) == 77
            entry[name] = ids
        cases["prompts"].append(entry)
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(cases, f, indent=1, ensure_ascii=False)
    print(len(PROMPTS), "prompts written to", a.out)


if __name__ == "__main__":
    main()
