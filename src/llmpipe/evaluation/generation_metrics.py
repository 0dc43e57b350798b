"""Scores of generated text against references: BLEU and chrF (sacrebleu), ROUGE-1/2/L (rouge-score)
and exact match, for English and Chinese alike.

Chinese has no spaces between words, so word-based metrics need a tokenization that does not rely on
them. Both libraries are given one:
  BLEU     sacrebleu's `zh` tokenizer: every Chinese character is a token, the rest goes through the
           standard 13a tokenizer (so English text is scored exactly as with 13a).
  ROUGE    our tokenizer below: every CJK character is a token, Latin words and numbers are tokens,
           lower-cased, punctuation dropped (rouge-score's default drops all non-ASCII letters, which
           would score Chinese as empty).
  chrF     character n-grams: needs no word boundaries.

Scales follow the libraries: BLEU and chrF in 0..100 (corpus-level), ROUGE F1 and exact match in
0..1 (mean over pairs).
"""

import re

import sacrebleu

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
# CJK Unified Ideographs with extension A and the compatibility block: one token per character
TOKEN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\W_]+")
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def rouge_tokens(text: str) -> list[str]:
    """Words for ROUGE: each Chinese character alone, runs of other letters and digits together."""
    tokens = []
    for token in TOKEN.findall(text.lower()):
        tokens += list(token) if CJK.match(token) else [token]
    return tokens


class RougeTokenizer:
    """What rouge_scorer.RougeScorer calls for words (it needs an object with tokenize())."""

    def tokenize(self, text: str) -> list[str]:
        return rouge_tokens(text)


def exact_match(output: str, reference: str) -> bool:
    """Equal once whitespace at the ends and runs of whitespace inside are ignored."""
    return " ".join(output.split()) == " ".join(reference.split())


def generation_scores(outputs: list[str], references: list[str]) -> dict:
    """Corpus BLEU and chrF, mean ROUGE-1/2/L F1 and exact match of outputs against references."""
    assert len(outputs) == len(references)
    if not outputs:
        return {"pairs": 0}
    from rouge_score import rouge_scorer  # here: it loads nltk (a second), which classifiers never need

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), tokenizer=RougeTokenizer())
    rouge = {name: 0.0 for name in ROUGE_TYPES}
    for output, reference in zip(outputs, references, strict=True):
        for name, score in scorer.score(reference, output).items():
            rouge[name] += score.fmeasure / len(outputs)
    return {
        "bleu": sacrebleu.corpus_bleu(outputs, [references], tokenize="zh").score,
        "chrf": sacrebleu.corpus_chrf(outputs, [references]).score,
        **rouge,
        "exact_match": sum(map(exact_match, outputs, references)) / len(outputs),
        "pairs": len(outputs),
    }


def scores_by_language(outputs: list[str], references: list[str], langs: list[str]) -> dict:
    """generation_scores over all pairs, and under each language's name over that language's pairs."""
    scores = generation_scores(outputs, references)
    for lang in sorted(set(langs)):
        keep = [i for i, pair_lang in enumerate(langs) if pair_lang == lang]
        scores[lang] = generation_scores([outputs[i] for i in keep], [references[i] for i in keep])
    return scores
