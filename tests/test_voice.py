"""Voice packs and announcement rendering (voice/pack.py), on the real shipped pack."""

from __future__ import annotations

import json
import math
import os
import shutil
from array import array
from pathlib import Path

import pytest
from queuehall.voice.pack import (
    CHIME_KEY,
    DEFAULT_PACK_DIR,
    VoiceError,
    VoicePack,
    build_default_pack,
    check_mandarin_phonemes,
    chinese_numeral,
    compose_call,
    duration,
    english_number_words,
    load_pack,
    main_build,
    prompt_keys,
    read_wav,
    render_announcement,
    required_keys,
    rms,
    trim_silence,
    write_wav,
)

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
HAVE_ESPEAK = shutil.which("espeak-ng") is not None
# In CI the engine is part of the install scripts, so a missing espeak-ng must fail there, not skip.
needs_espeak = pytest.mark.skipif(
    not HAVE_ESPEAK and os.environ.get("CI") != "true",
    reason="espeak-ng not installed (apt-get install espeak-ng sox)",
)


@pytest.fixture(scope="module")
def pack() -> VoicePack:
    return load_pack()


def _tone(seconds: float, rate: int = 16000, amplitude: float = 0.5, freq: float = 440.0) -> array:
    n = int(seconds * rate)
    return array("h", (int(amplitude * 32767 * math.sin(2 * math.pi * freq * i / rate)) for i in range(n)))


# -- composition -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "counter", "expected"),
    [
        ("A012", 3, "请 A 零 一 二 号 到 三 号 窗口 办理"),
        ("B105", 12, "请 B 一 零 五 号 到 十 二 号 窗口 办理"),
        ("VIP7", 20, "请 V I P 七 号 到 二 十 号 窗口 办理"),
        ("C000", 105, "请 C 零 零 零 号 到 一 百 零 五 号 窗口 办理"),
        ("a9", 1, "请 A 九 号 到 一 号 窗口 办理"),  # lower case is read as the letter
    ],
)
def test_compose_call_mandarin(label: str, counter: int, expected: str) -> None:
    assert compose_call(label, counter, "zh") == [f"zh:{w}" for w in expected.split()]


@pytest.mark.parametrize(
    ("label", "counter", "expected"),
    [
        ("A012", 3, "number|A|zero|one|two|please go to|counter|three"),
        ("B105", 12, "number|B|one|zero|five|please go to|counter|twelve"),
        ("Z9", 20, "number|Z|nine|please go to|counter|twenty"),
        ("K40", 45, "number|K|four|zero|please go to|counter|forty|five"),
        ("C000", 105, "number|C|zero|zero|zero|please go to|counter|one|hundred|five"),
    ],
)
def test_compose_call_english(label: str, counter: int, expected: str) -> None:
    assert compose_call(label, counter, "en") == [f"en:{w}" for w in expected.split("|")]


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (1, "一"), (3, "三"), (10, "十"), (12, "十二"), (19, "十九"), (20, "二十"), (21, "二十一"),
        (99, "九十九"), (100, "一百"), (101, "一百零一"), (105, "一百零五"), (110, "一百一十"),
        (115, "一百一十五"), (200, "二百"), (999, "九百九十九"), (1000, "一千"), (1005, "一千零五"),
        (1050, "一千零五十"), (1200, "一千二百"), (9999, "九千九百九十九"),
    ],
)  # fmt: skip
def test_chinese_numerals(n: int, text: str) -> None:
    assert chinese_numeral(n) == text


@pytest.mark.parametrize("bad", [0, -3, 10000, True, 2.0])
def test_chinese_numeral_out_of_range(bad: object) -> None:
    with pytest.raises(VoiceError) as err:
        chinese_numeral(bad)  # type: ignore[arg-type]
    assert err.value.code == "VOICE_BAD_COUNTER"


def test_english_numbers_cover_every_counter_with_pack_clips(pack: VoicePack) -> None:
    assert english_number_words(13) == ["thirteen"]
    assert english_number_words(70) == ["seventy"]
    assert english_number_words(99) == ["ninety", "nine"]
    for counter in range(1, 1000):
        for lang in ("zh", "en"):
            keys = compose_call("A1", counter, lang)
            assert all(k in pack.clips for k in keys), (counter, lang)


@pytest.mark.parametrize(("label", "culprit"), [("A-12", "-"), ("请12", "请"), ("A 1", " "), ("Ä1", "Ä")])
def test_bad_label_names_the_character(label: str, culprit: str) -> None:
    with pytest.raises(VoiceError) as err:
        compose_call(label, 3, "zh")
    assert err.value.code == "VOICE_BAD_LABEL"
    assert repr(culprit) in err.value.message_en
    assert f"“{culprit}”" in err.value.message_zh


def test_empty_or_long_label_counter_and_language_errors() -> None:
    for label in ("", "A" * 17):
        with pytest.raises(VoiceError, match="VOICE_BAD_LABEL"):
            compose_call(label, 1, "en")
    for counter in (0, 1000, "3"):
        with pytest.raises(VoiceError, match="VOICE_BAD_COUNTER"):
            compose_call("A1", counter, "en")  # type: ignore[arg-type]
    with pytest.raises(VoiceError, match="VOICE_BAD_LANGUAGE"):
        compose_call("A1", 1, "fr")


# -- the shipped pack ----------------------------------------------------------------------------


def test_default_pack_loads_with_every_clip(pack: VoicePack) -> None:
    meta = json.loads((DEFAULT_PACK_DIR / "pack.json").read_text(encoding="utf-8"))
    assert pack.name == "default"
    assert set(pack.languages) == {"zh", "en"}
    assert pack.missing_keys() == []
    assert set(required_keys()) <= set(pack.clips)
    prompts = set(prompt_keys())
    for key, rel in meta["clips"].items():
        rate, samples = read_wav((DEFAULT_PACK_DIR / rel).read_bytes())
        assert rate == pack.sample_rate, key
        # Trimmed: no long silences. The kiosk's prompts are sentences, the call clips words.
        assert 0.1 < len(samples) / rate < (6.0 if key in prompts else 2.0), key
        assert pack.clips[key] == samples
    for phrase, parts in pack.phrases.items():
        assert phrase in pack.clips and all(p in pack.clips for p in parts)
    assert CHIME_KEY in pack.clips
    sizes = {rel: (DEFAULT_PACK_DIR / rel).stat().st_size for rel in meta["clips"].values()}
    calls = sum(size for key, rel in meta["clips"].items() if key not in prompts for size in [sizes[rel]])
    assert calls < 1.7 * 1024 * 1024  # the display's clips, as before the kiosk's prompts were added
    assert sum(sizes.values()) < 5 * 1024 * 1024
    assert pack.missing_prompts() == [] and len(prompts) == 49


def test_the_pack_ships_as_package_data_read_through_importlib_resources() -> None:
    """The pack is package data of queuehall.voice: every file is matched by pyproject.toml's package-data
    globs (so a wheel carries it), and load_pack() reads it through importlib.resources."""
    import fnmatch
    import tomllib
    from importlib import resources

    from queuehall.voice.pack import default_pack

    root = Path(__file__).resolve().parent.parent
    setuptools = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert setuptools["package-dir"]["queuehall.voice"] == "voice"
    globs = setuptools["package-data"]["queuehall.voice"]
    package = root / "voice"
    shipped = [f.relative_to(package).as_posix() for f in (package / "voices").rglob("*") if f.is_file()]
    assert shipped and all(any(fnmatch.fnmatch(rel, g) and rel.count("/") == g.count("/") for g in globs)
                           for rel in shipped), shipped
    pack_dir = default_pack()
    assert pack_dir == resources.files("queuehall.voice") / "voices" / "default"
    assert (pack_dir / "pack.json").is_file()
    assert load_pack() is load_pack() and load_pack().path == pack_dir


def test_phrases_replace_word_runs(pack: VoicePack) -> None:
    keys = compose_call("A012", 3, "zh")
    assert pack.merge_phrases(keys) == ["zh:请", "zh:A", "zh:零", "zh:一", "zh:二", "zh:号到", "zh:三", "zh:号窗口办理"]
    assert pack.merge_phrases(compose_call("A1", 3, "en"))[-2:] == ["en:please go to counter", "en:three"]


# -- rendering ----------------------------------------------------------------------------------


def test_render_announcement_is_audible(pack: VoicePack) -> None:
    wav = render_announcement(pack, "A012", 3)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "announcement-A012-3.wav").write_bytes(wav)
    rate, samples = read_wav(wav)
    assert rate == pack.sample_rate
    assert rms(wav) > 0.05
    assert 2.0 < duration(wav) < 15.0
    # Not silent throughout: most 0.5 s windows of the body carry sound (gaps are short).
    window = rate // 2
    loud = [_rms(samples[i : i + window]) > 0.02 for i in range(0, len(samples) - window, window)]
    assert sum(loud) / len(loud) > 0.7


def _rms(samples: array) -> float:
    return math.sqrt(sum(s * s for s in samples) / len(samples)) / 32768


def test_render_options_shape_the_audio(pack: VoicePack) -> None:
    both = render_announcement(pack, "A012", 3)
    zh_only = render_announcement(pack, "A012", 3, languages=("zh",))
    en_only = render_announcement(pack, "A012", 3, languages=("en",), chime=False)
    twice = render_announcement(pack, "A012", 3, repeat=2)
    quiet = render_announcement(pack, "A012", 3, volume=0.5)
    silent = render_announcement(pack, "A012", 3, volume=0.0)
    assert duration(en_only) < duration(zh_only) < duration(both)
    chime = len(pack.clip(CHIME_KEY)) / pack.sample_rate
    speech = duration(both) - chime
    assert duration(twice) - chime == pytest.approx(2 * speech, rel=0.15)
    assert rms(quiet) == pytest.approx(rms(both) / 2, rel=0.01)
    assert rms(silent) == 0.0
    assert render_announcement(pack, "A012", 3) == both  # deterministic


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"repeat": 0}, "VOICE_BAD_OPTION"),
        ({"repeat": 6}, "VOICE_BAD_OPTION"),
        ({"volume": 1.5}, "VOICE_BAD_OPTION"),
        ({"volume": -0.1}, "VOICE_BAD_OPTION"),
        ({"languages": ()}, "VOICE_BAD_LANGUAGE"),
        ({"languages": ("zh", "de")}, "VOICE_BAD_LANGUAGE"),
    ],
)
def test_render_bad_options(pack: VoicePack, kwargs: dict[str, object], code: str) -> None:
    with pytest.raises(VoiceError) as err:
        render_announcement(pack, "A012", 3, **kwargs)  # type: ignore[arg-type]
    assert err.value.code == code


def test_render_bad_label(pack: VoicePack) -> None:
    with pytest.raises(VoiceError) as err:
        render_announcement(pack, "A#12", 3)
    assert err.value.code == "VOICE_BAD_LABEL"
    assert "#" in str(err.value)


# -- pack validation ----------------------------------------------------------------------------


def _copy_pack(tmp_path: Path) -> tuple[Path, dict]:
    folder = tmp_path / "pack"
    shutil.copytree(DEFAULT_PACK_DIR, folder)
    return folder, json.loads((folder / "pack.json").read_text(encoding="utf-8"))


def _save(folder: Path, meta: dict) -> None:
    (folder / "pack.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")


def test_pack_without_phrases_uses_word_clips(tmp_path: Path, pack: VoicePack) -> None:
    folder, meta = _copy_pack(tmp_path)
    del meta["phrases"]
    _save(folder, meta)
    plain = VoicePack.load(folder)
    assert plain.merge_phrases(compose_call("A012", 3, "zh")) == compose_call("A012", 3, "zh")
    assert rms(render_announcement(plain, "A012", 3)) > 0.05


def test_pack_errors(tmp_path: Path) -> None:
    with pytest.raises(VoiceError, match="VOICE_PACK_NOT_FOUND"):
        VoicePack.load(tmp_path / "nowhere")

    folder, meta = _copy_pack(tmp_path)
    (folder / "zh" / "hao.wav").unlink()
    with pytest.raises(VoiceError, match="VOICE_PACK_INVALID") as err:
        VoicePack.load(folder)
    assert "zh/hao.wav" in str(err.value)

    (folder / "zh" / "hao.wav").write_bytes(write_wav(_tone(0.3, rate=44100), 44100))
    with pytest.raises(VoiceError, match="44100 Hz") as err:
        VoicePack.load(folder)
    assert "sox" in err.value.message_en

    (folder / "zh" / "hao.wav").write_bytes(b"not a wav at all")
    with pytest.raises(VoiceError, match="VOICE_PACK_INVALID"):
        VoicePack.load(folder)

    (folder / "zh" / "hao.wav").write_bytes(write_wav(_tone(0.3), 16000))
    VoicePack.load(folder)  # repaired
    for broken in ({**meta, "clips": {**meta["clips"], "zh:号": "../../etc/passwd"}}, {**meta, "format": 99}):
        _save(folder, broken)
        with pytest.raises(VoiceError, match="VOICE_PACK_INVALID"):
            VoicePack.load(folder)
    (folder / "pack.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(VoiceError, match="VOICE_PACK_INVALID"):
        VoicePack.load(folder)


def test_missing_clip_is_reported_at_render(tmp_path: Path) -> None:
    folder, meta = _copy_pack(tmp_path)
    del meta["clips"]["en:counter"]
    del meta["phrases"]
    _save(folder, meta)
    partial = VoicePack.load(folder)
    assert partial.missing_keys() == ["en:counter"]
    render_announcement(partial, "A012", 3, languages=("zh",))  # Mandarin alone still works
    with pytest.raises(VoiceError) as err:
        render_announcement(partial, "A012", 3)
    assert err.value.code == "VOICE_CLIP_MISSING"
    assert "en:counter" in err.value.message_zh


# -- WAV helpers ----------------------------------------------------------------------------------


def test_rms_duration_and_trim() -> None:
    tone = _tone(0.5)
    assert rms(write_wav(tone, 16000)) == pytest.approx(0.5 / math.sqrt(2), rel=0.01)
    assert duration(write_wav(tone, 16000)) == pytest.approx(0.5)
    assert rms(write_wav(array("h", bytes(3200)), 16000)) == 0.0
    padded = array("h", bytes(2 * 8000)) + tone + array("h", bytes(2 * 16000))
    trimmed = trim_silence(padded, 16000)
    assert 0.5 <= len(trimmed) / 16000 <= 0.54  # the tone plus 10 ms + 25 ms margins
    assert trimmed[0] == 0 and trimmed[-1] == 0  # faded: no click at the splice
    assert len(trim_silence(array("h", bytes(100)), 16000)) == 0
    with pytest.raises(VoiceError, match="VOICE_BAD_WAV"):
        read_wav(b"RIFF....WAVE")


# -- building the pack with espeak-ng ----------------------------------------------------------


def test_build_reports_a_missing_engine(tmp_path: Path) -> None:
    with pytest.raises(VoiceError) as err:
        build_default_pack(tmp_path, engine="/nonexistent/espeak-ng")
    assert err.value.code == "VOICE_ENGINE_MISSING"
    assert "apt-get install" in err.value.message_en and "espeak-ng" in err.value.message_en
    assert "请安装" in err.value.message_zh
    assert not (tmp_path / "pack.json").exists()


@needs_espeak
def test_build_pack_with_espeak(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "built"
    assert main_build(["--out", str(out)]) == 0
    assert "154 clips" in capsys.readouterr().out  # 105 for the calls, 49 kiosk prompts
    built = VoicePack.load(out)
    shipped = load_pack()
    assert set(built.clips) == set(shipped.clips)
    assert built.missing_prompts() == []
    assert built.missing_keys() == []
    assert rms(render_announcement(built, "A012", 3)) > 0.05
    meta = json.loads((out / "pack.json").read_text(encoding="utf-8"))
    assert meta["generator"]["voices"] == {"zh": "cmn-latn-pinyin", "en": "en-us"}


@needs_espeak
def test_mandarin_phoneme_check_rejects_the_plain_cmn_voice() -> None:
    ipa = check_mandarin_phonemes("espeak-ng", "hao4 chuang1 kou3")
    assert "(en)" not in ipa and any(c in ipa for c in "12345")
    with pytest.raises(VoiceError) as err:
        check_mandarin_phonemes("espeak-ng", "hao4", voice="cmn")  # reads it as English spelling
    assert err.value.code == "VOICE_ENGINE_FAILED"


def test_main_build_usage_errors(tmp_path: Path) -> None:
    assert main_build(["--out", str(tmp_path), "--rate", "100"]) == 2
    assert main_build(["--no-such-flag"]) == 2
    assert not (tmp_path / "pack.json").exists()
