import pytest

from llmpipe.data.language_id import decide, detect

from ..conftest import typed_section

CFG = typed_section("clean.language", candidates=["en", "zh", "de", "fr", "la"], min_confidence=0.8)


def test_clear_english_chinese_and_french_are_identified():
    assert detect("The quick brown fox jumps over the lazy dog.", ("en", "zh", "fr"))[0] == "en"
    assert detect("床前明月光，疑是地上霜。举头望明月，低头思故乡。", ("en", "zh", "fr"))[0] == "zh"
    lang, prob = detect("C'est magnifique, mais ce n'est pas la guerre.", ("en", "zh", "fr"))
    assert lang == "fr" and prob > 0.9


def test_an_unsure_detection_keeps_the_declared_language():
    lang, prob, detected = decide("Klatu barada nikto.", "en", CFG)  # alien, in a quote from a film
    assert (lang, detected) == ("en", False) and prob < 0.8
    assert decide("Klatu barada nikto.", "de", CFG)[0] == "de"  # the source's word stands
    assert decide("Alea iacta est, the die is cast, said Gaius Julius Caesar", None, CFG)[2]  # nothing declared


def test_an_unknown_candidate_is_named():
    with pytest.raises(ValueError, match=r"no model for \['xx'\]"):
        detect("text", ("en", "xx"))
