"""BLEU, chrF, ROUGE and exact match against hand-computed cases, in English and Chinese."""

import math

import pytest

from llmpipe.evaluation.generation_metrics import exact_match, generation_scores, rouge_tokens, scores_by_language


def test_chinese_bleu_by_hand():
    # one character short of the reference: every n-gram precision is 1 (4/4, 3/3, 2/2, 1/1),
    # the brevity penalty is exp(1 - 5/4)
    scores = generation_scores(["床前明月"], ["床前明月光"])
    assert scores["bleu"] == pytest.approx(100 * math.exp(1 - 5 / 4))


def test_english_bleu_by_hand():
    # one word of six substituted: 1-grams 5/6; 2-grams the cat, cat sat, sat on of 5; 3-grams
    # the cat sat, cat sat on of 4; 4-grams the cat sat on of 3; same length, so no brevity penalty
    scores = generation_scores(["the cat sat on a mat"], ["the cat sat on the mat"])
    precisions = [5 / 6, 3 / 5, 2 / 4, 1 / 3]
    assert scores["bleu"] == pytest.approx(100 * math.exp(sum(map(math.log, precisions)) / 4))


def test_chrf_by_hand():
    # character n-grams of "ab" against "abc": 1-grams P 2/2 R 2/3, 2-grams P 1/1 R 1/2, none longer;
    # chrF averages over the orders both have, then F-beta with beta 2
    p, r = 1.0, (2 / 3 + 1 / 2) / 2
    assert generation_scores(["ab"], ["abc"])["chrf"] == pytest.approx(100 * 5 * p * r / (4 * p + r))


def test_rouge_on_chinese_counts_characters():
    scores = generation_scores(["床前明月"], ["床前明月光"])
    assert scores["rouge1"] == pytest.approx(2 * 1 * (4 / 5) / (1 + 4 / 5))  # P 4/4, R 4/5
    assert scores["rouge2"] == pytest.approx(2 * 1 * (3 / 4) / (1 + 3 / 4))  # 3 of the reference's 4 bigrams
    assert scores["rougeL"] == scores["rouge1"]  # the longest common subsequence is the whole output


def test_rouge_on_english_counts_words_and_ignores_case_and_punctuation():
    scores = generation_scores(["The cat, the hat."], ["the cat sat"])
    # words: the cat the hat | the cat sat -> overlap the, cat: P 2/4 R 2/3
    assert scores["rouge1"] == pytest.approx(2 * (2 / 4) * (2 / 3) / (2 / 4 + 2 / 3))
    assert rouge_tokens("Hello, 世界! x2") == ["hello", "世", "界", "x2"]


def test_exact_match_ignores_spacing_only():
    assert exact_match(" 疑是地上霜。\n", "疑是地上霜。")
    assert exact_match("a  b", "a b") and not exact_match("a b", "a b.")
    assert generation_scores(["x", "y"], ["x", "z"])["exact_match"] == 0.5


def test_scores_per_language_use_only_that_languages_pairs():
    scores = scores_by_language(["床前明月", "the cat"], ["床前明月光", "a dog"], ["zh", "en"])
    assert scores["pairs"] == 2 and scores["zh"]["pairs"] == 1 and scores["en"]["pairs"] == 1
    assert scores["zh"]["rouge1"] == generation_scores(["床前明月"], ["床前明月光"])["rouge1"]
    assert scores["en"]["rouge1"] == 0.0
    assert generation_scores([], []) == {"pairs": 0}
