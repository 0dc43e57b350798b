"""Each quality rule with English and Chinese examples: what it removes, and what it must keep."""

import pytest
import yaml

from llmpipe.clean import quality
from llmpipe.clean.quality import TextStats, first_failure, rules_for

from ..conftest import REPO, fortune_docs

CONF = yaml.safe_load((REPO / "conf" / "clean" / "default.yaml").read_text())["quality"]
POEM = "《静夜思》\n作者：李白\n床前明月光，疑是地上霜。\n举头望明月，低头思故乡。"
CI = (
    "《水调歌头》\n作者：苏轼\n明月几时有？把酒问青天。不知天上宫阙，今夕是何年。\n"
    "我欲乘风归去，又恐琼楼玉宇，高处不胜寒。"
)
PROSE_ZH = "在 Debian 这种规模的项目中，很难避免遇到与你意见不和的人。请接受这一事实，并保持礼貌。"
QUIP = "A celebrity is a person who is known for his well-knownness."
QUOTE = "Immature poets imitate, mature poets steal.\n\t\t-- T. S. Eliot"


def failure(text: str, lang: str, **overrides) -> str | None:
    return first_failure(TextStats(text, lang), {**rules_for(lang, CONF), **overrides})


@pytest.mark.parametrize("text,lang", [(POEM, "zh"), (CI, "zh"), (PROSE_ZH, "zh"), (QUIP, "en"), (QUOTE, "en")])
def test_well_formed_prose_and_poems_pass_every_rule(text, lang):
    assert failure(text, lang) is None


def test_chinese_words_come_from_rjieba_not_spaces():
    words = TextStats("我们所经历的每个平凡的日常", "zh").words
    assert len(words) > 4 and "".join(words) == "我们所经历的每个平凡的日常"
    assert TextStats("the quick brown fox", "en").words == ["the", "quick", "brown", "fox"]


def test_chinese_segmentation_gives_dictionary_words_on_real_text():
    words = quality.segment_chinese(PROSE_ZH)
    assert "".join(words) == PROSE_ZH  # a segmentation: nothing lost or added
    assert {"项目", "规模", "避免", "意见", "接受", "事实", "礼貌", "Debian"} <= set(words)
    poem_words = quality.segment_chinese("举头望明月，低头思故乡。")
    assert {"举头", "低头", "故乡"} <= set(poem_words)
    # whitespace is a token of its own, never part of a word (split_words relies on it)
    assert all(w.isspace() or not any(c.isspace() for c in w) for w in quality.segment_chinese(CI + "\r\n a b"))


def test_too_few_words():
    assert failure("HOLY MACRO!", "en") == "too_few_words"
    assert failure("(╯‵□′)╯︵┻━┻", "zh") == "too_few_words"
    assert failure("E Pluribus Unix", "en") is None  # three words are enough


def test_too_many_words():
    assert failure(QUIP, "en", max_words=5) == "too_many_words"
    assert failure(POEM, "zh", max_words=5) == "too_many_words"


def test_mean_word_length():
    glued = "TheysaidDoyouseethebiggreenglowinthedarkhouseuponthehill andIsaidYesIseethebiggreenglow"
    assert failure(glued + " ok then", "en") == "mean_word_length"
    # An unsegmentable run of Latin letters inside Chinese makes one huge "word"
    assert failure("配置" + "x" * 60 + "文件说明", "zh") == "mean_word_length"
    assert failure("I am what I am, and so it is.", "en") is None  # 2.1 letters a word: Gopher's 3 drops it
    assert failure("第一章的预算一共是1000000元，请大家注意节约开支，不要浪费。", "zh") is None  # a number is no word


def test_symbol_ratio_catches_ascii_art_and_box_drawing_but_not_chinese_punctuation():
    art = "(  /\\__________/\\  )\n  \\(^ @___..___@ ^)/\n   /\\ (\\/\\/\\/\\/) /\\\n  /  \\(/\\/\\/\\/\\)/  \\"
    table = (
        "┌──────────┬──────┐\n│ 软件包   │ 流行度 │\n├──────────┼──────┤\n│ vim      │ 高     │\n└──────────┴──────┘"
    )
    assert failure(art + " ascii art", "en") == "symbol_ratio"
    assert failure(table, "zh") == "symbol_ratio"
    assert failure("床前明月光，疑是地上霜。举头望明月，低头思故乡。", "zh") is None


def test_hash_and_ellipsis_ratio():
    assert failure("Unix will self-destruct... 4... 3... 2... 1...", "en") == "hash_ellipsis_ratio"
    assert failure("#tags #everywhere #in #this #post", "en") == "hash_ellipsis_ratio"
    assert failure("肿么办啊……肿么办啊……怎么办……", "zh") == "hash_ellipsis_ratio"
    assert failure("The horror... the horror!", "en") is None


def test_digit_ratio():
    assert failure("FACILITY REJECTED 100044200000;", "en") == "digit_ratio"
    assert failure("电话号码是13800138000和18612345678还有02112345678", "zh") == "digit_ratio"
    assert failure("In 1492 Columbus sailed the ocean blue.", "en") is None


def test_alphabetic_words():
    assert failure("1 apple 2 bananas 3 cherries 4 dates 5 elderberries 6 figs 7 grapes", "en") == "alphabetic_words"
    assert failure("Take 2 tablets 3 times a day with water.", "en") is None


def test_stop_words_rule_is_off_by_default_and_works_when_set():
    assert CONF["default"]["min_stop_words"] is None
    assert failure("Lensmen eat Jedi for breakfast.", "en", min_stop_words=2) == "stop_words"
    assert failure("The cat and the dog have a bone.", "en", min_stop_words=2) is None
    assert failure(PROSE_ZH, "zh", min_stop_words=2) is None  # 的, 与, 你, 并 ...
    assert failure("春眠不觉晓，处处闻啼鸟。", "zh", min_stop_words=2) == "stop_words"  # why it is off for zh


def test_bullet_lines():
    menu = "* Home\n* About us\n* Products and services\n* Contact the team"
    assert failure(menu, "en") == "bullet_lines"
    assert failure("• 首页\n• 关于我们\n• 产品与服务\n• 联系方式", "zh") == "bullet_lines"
    assert failure("* UNIX is a Trademark of Bell Laboratories.", "en") is None  # one line is not a list


def test_ellipsis_lines():
    cut = "Read more about the offer...\nClick for the full story...\nSee all our deals today..."
    assert failure(cut, "en") == "ellipsis_lines"
    assert (
        failure(
            "今天天气很好，我们一起去公园散步吧……\n晚上回家以后还要写作业，真是累……\n明天早上又要早起去学校上课……", "zh"
        )
        == "ellipsis_lines"
    )
    assert failure("That's no moon...\n\t\t-- Obi-wan Kenobi", "en") is None


def test_paragraph_punctuation():
    links = "Home\n\nProducts and services\n\nAbout the company\n\nContact us today"
    assert failure(links, "en") == "paragraph_punctuation"
    assert failure("首页\n\n产品与服务介绍\n\n关于我们公司\n\n联系我们吧", "zh") == "paragraph_punctuation"
    # hard-wrapped lines inside a paragraph do not count as unpunctuated lines
    wrapped = "A rose is a rose is a rose.  Just ask Jean Marsh, known to millions of\nPBS viewers as Rose."
    assert failure(wrapped, "en") is None


def test_duplicate_lines():
    chorus = "Row row row your boat\nRow row row your boat\nRow row row your boat\nGently down the stream."
    assert failure(chorus, "en") == "duplicate_lines"
    assert failure("我爱北京天安门\n我爱北京天安门\n我爱北京天安门\n天安门上太阳升。", "zh") == "duplicate_lines"


def test_top_ngram_only_judges_long_documents():
    spam = " ".join(["buy now"] * 40) + " and save money on everything in the store today."
    assert failure(spam, "en") == "top_ngram"
    assert failure("Art is the tree of life.  Science is the tree of death.", "en") is None
    zh_spam = "，".join(["快来买吧"] * 40) + "。"
    assert failure(zh_spam, "zh") in ("top_ngram", "duplicate_lines", "duplicate_ngrams")


def test_duplicate_ngrams():
    story = (
        "Once upon a time in a small village by the sea there lived an old fisherman who mended nets "
        "every morning. His daughter sold bread at the market while her brother repaired boats for "
        "neighbours. Winter storms came early that year, and everyone gathered wood before snow fell."
    )
    repeated = "please remember to close every door behind you when leaving"
    assert failure(f"{repeated}. {story} {repeated}.", "en") == "duplicate_ngrams"
    assert failure(story, "en") is None
    ci = "明月几时有把酒问青天不知天上宫阙今夕是何年我欲乘风归去又恐琼楼玉宇高处不胜寒"
    assert failure("，".join([ci] * 3), "zh") in ("duplicate_ngrams", "top_ngram")


def test_bad_phrase():
    assert failure("Lorem ipsum dolor sit amet, consectetur adipiscing elit.", "en") == "bad_phrase"
    assert failure("Please enable JavaScript to view this page.", "en") == "bad_phrase"
    assert failure("您的浏览器不支持此功能，请升级到最新版本后再试。", "zh") == "bad_phrase"
    assert failure("请启用JavaScript以查看本页面的全部内容。", "zh") == "bad_phrase"


def test_a_null_threshold_switches_a_rule_off():
    assert failure("HOLY MACRO!", "en", min_words=None) is None


def test_misspelt_thresholds_are_named():
    with pytest.raises(ValueError, match=r"clean.quality.zh.min_wrds: unknown threshold \(did you mean min_words\?\)"):
        quality.check_thresholds({"default": {}, "zh": {"min_wrds": 3}})
    quality.check_thresholds(CONF)


def test_no_rule_removes_the_tang_poems_or_song_ci(fortunes_installed):
    from llmpipe.clean.normalize import clean_text

    poems = list(fortune_docs(fortunes_installed, ["tang300", "song100"], []))
    poems = [p for p in poems if p["label"] in ("tang300", "song100")]
    assert len(poems) > 300
    removed = [p["id"] for p in poems if failure(clean_text(p["text"])[0], "zh") is not None]
    assert removed == []
