from llmpipe.clean.normalize import clean_text, dedup_key, fix_mojibake, screen


def test_ansi_colour_codes_are_removed_from_a_poem_title():
    raw = "\x1b[32m《静夜思》\x1b[m\n\x1b[33m作者：李白\x1b[m\n床前明月光，疑是地上霜。"
    text, changed = clean_text(raw)
    assert text == "《静夜思》\n作者：李白\n床前明月光，疑是地上霜。"
    assert changed == ["ansi_escapes"]


def test_overstrike_bold_and_underline_keep_the_printed_character():
    text, changed = clean_text("_\bH_\bi and B\bBo\bol\bld\bd")
    assert text == "Hi and Bold"
    assert "overstrike" in changed


def test_control_characters_and_whitespace():
    text, changed = clean_text("  a\x00b\x07c   \r\n\n\n\n\nd\t \n")
    assert text == "abc\n\nd"
    assert {"control_chars", "whitespace"} <= set(changed)


def test_unicode_spaces_become_spaces_but_the_ideographic_space_stays():
    text, _ = clean_text("no\u00a0break\u2009thin\u200bzero\u3000全角")
    assert text == "no break thinzero\u3000全角"


def test_nfc_keeps_fullwidth_chinese_punctuation_and_nfkc_folds_it():
    assert clean_text("你好，世界！")[0] == "你好，世界！"
    assert clean_text("你好，世界！", "NFKC")[0] == "你好,世界!"
    assert clean_text("e\u0301")[0] == "\u00e9"  # combining accent composed


def test_mojibake_is_repaired_in_english_and_chinese_and_clean_text_is_left_alone():
    # UTF-8 read as cp1252, as in Debian's fortunes (law, pets, computers)
    assert clean_text("HereÃ¢Â\x80Â\x99s Â£5, donâ\x80\x99t")[0] == "Here’s £5, don’t"
    assert clean_text("é\x9d\x99å¤\x9cæ\x80\x9d")[0] == "静夜思"
    text, changed = clean_text("Ça coûte 5 € — naïve café, “quoted”, 静夜思")
    assert changed == [] and text == "Ça coûte 5 € — naïve café, “quoted”, 静夜思"
    assert clean_text("cafÃ©", mojibake=False)[0] == "cafÃ©"


def test_screen_names_what_is_wrong_with_a_record():
    assert screen("fine text", max_bytes=100, max_binary_ratio=0.1) is None
    assert screen("x" * 101, max_bytes=100, max_binary_ratio=0.1) == "too_large"
    assert screen("静" * 34, max_bytes=100, max_binary_ratio=0.1) == "too_large"  # bytes, not characters
    assert screen(" \n\t ", max_bytes=100, max_binary_ratio=0.1) == "empty"
    assert screen("text\x00more", max_bytes=100, max_binary_ratio=0.1) == "binary"
    assert screen("\x01\x02\x03\ufffd\ufffd abc", max_bytes=100, max_binary_ratio=0.1) == "binary"


def test_terminal_effects_that_fortunes_use_are_not_binary():
    bell = "Look out!  Behind you!" + "\x07" * 22
    underline = "At least they're ___________" + "\b" * 11 + "EXPERIENCED incompetents"
    colour = "\x1b[1;31mred\x1b[0m " * 20
    for text in (bell, underline, colour):
        assert screen(text, max_bytes=10_000, max_binary_ratio=0.1) is None


def test_dedup_key_ignores_case_and_spacing_only():
    assert dedup_key("Hello  World\n") == dedup_key("hello world")
    assert dedup_key("Hello, World") != dedup_key("Hello World")


def test_the_clean_report_keeps_the_smallest_ids_as_examples_even_with_repeated_ids():
    from llmpipe.clean.report import Tally

    tally = Tally(["en"])
    for i, doc_id in enumerate(["d", "b", "b", "e", "a", "c"]):
        tally.add_removed("quality", {"id": doc_id, "text": f"text {i}", "lang": "en"})
    assert [(r["id"], r["text"]) for r in tally.examples_of("quality")] == [
        ("a", "text 4"),
        ("b", "text 1"),
        ("b", "text 2"),
    ]
    tally.account(6)
    assert tally.metrics({})["removed"]["quality"]["docs"] == 6


def test_mojibake_built_by_misdecoding_utf8_is_repaired_by_ftfy():
    cases = [
        ("Le café coûte 3 € — don’t you think? Ünïcödé", "cp1252"),  # no byte cp1252 leaves undefined
        ("Le café coûte 3 € — “naïve”, and 静夜思 is by 李白.", "latin-1"),
    ]
    for original, wrong in cases:
        garbled = original.encode("utf-8").decode(wrong)
        assert garbled != original
        assert fix_mojibake(garbled) == original, wrong


def test_ascii_text_is_returned_without_calling_ftfy():
    text = "It's 5 o'clock -- time for tea & cake; 100% <b>sure</b>."
    assert fix_mojibake(text) is text


def test_ftfys_test_on_windows_agrees_with_its_test_on_the_whole_text(fortunes_installed):
    """may_hold_mojibake reads windows around non-ASCII characters only: on every fortune, and on
    every fortune with the mojibake of each Latin-1 and cp1252 letter or sign planted at the start,
    in the middle and at the end, it says what ftfy.badness.is_bad says of the whole text."""
    import random

    import ftfy.badness

    from llmpipe.clean.normalize import may_hold_mojibake

    texts = []
    for path in sorted(fortunes_installed.iterdir()):
        if path.is_file() and not path.suffix:
            texts += path.read_text(encoding="utf-8", errors="replace").split("\n%\n")
    rng = random.Random(0)
    specials = [chr(cp) for cp in range(0xA0, 0x100)] + list("€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ")
    planted = []
    for char in specials:
        for wrong in ("latin-1", "cp1252"):
            try:
                garbled = char.encode("utf-8").decode(wrong)
            except UnicodeDecodeError:
                continue  # a byte cp1252 leaves undefined
            text = rng.choice(texts)
            at = rng.randrange(len(text) + 1)
            planted += [garbled + " " + text, text[:at] + garbled + text[at:], text + garbled]
    mismatched = [t for t in texts + planted if may_hold_mojibake(t) != ftfy.badness.is_bad(t)]
    assert not mismatched, mismatched[:3]
    assert sum(map(ftfy.badness.is_bad, planted)) > len(planted) // 2  # the planted ones are found
