from llmpipe.cleaning import clean_documents, clean_text


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


def test_nfc_keeps_fullwidth_chinese_punctuation_and_nfkc_folds_it():
    assert clean_text("你好，世界！")[0] == "你好，世界！"
    assert clean_text("你好，世界！", "NFKC")[0] == "你好,世界!"
    assert clean_text("e\u0301")[0] == "\u00e9"  # combining accent composed


def test_clean_documents_counts_drops_and_keeps_first_duplicate_by_id():
    docs = [
        {"id": "b", "text": "the same text, long enough"},
        {"id": "a", "text": "\x1b[1mthe same text, long enough\x1b[0m"},
        {"id": "c", "text": "short"},
        {"id": "d", "text": "   "},
        {"id": "e", "text": "x" * 50},
    ]
    kept, counts = clean_documents(docs, "NFC", min_chars=10, max_chars=40, dedup=True)
    assert [d["id"] for d in kept] == ["a"]
    assert counts["dropped_duplicate"] == 1 and counts["dropped_too_short"] == 1
    assert counts["dropped_empty"] == 1 and counts["dropped_too_long"] == 1
    assert counts["docs_in"] == 5 and counts["docs_out"] == 1 and counts["fixed_ansi_escapes"] == 1
