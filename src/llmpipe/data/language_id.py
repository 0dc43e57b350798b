"""Language identification with py3langid (langid.py's model of byte n-grams, shipped inside the
package: nothing is downloaded). Short texts are hard for any identifier, so a detection below
`min_confidence` leaves the document with the language its source declared."""

from functools import lru_cache

from llmpipe.schema import Language


@lru_cache(maxsize=8)
def identifier(candidates: tuple[str, ...]):
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    lid = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    unknown = sorted(set(candidates) - set(lid.nb_classes))
    if unknown:
        raise ValueError(f"clean.language.candidates: py3langid has no model for {unknown}")
    lid.set_languages(list(candidates))
    return lid


def detect(text: str, candidates: tuple[str, ...]) -> tuple[str, float]:
    """The most likely language among the candidates, and its probability (normalized over them)."""
    lang, prob = identifier(tuple(candidates)).classify(text)
    return lang, float(prob)


def decide(text: str, declared: str | None, cfg: Language) -> tuple[str, float, bool]:
    """(language, confidence, whether the identifier decided it) for one document."""
    lang, prob = detect(text, tuple(cfg.candidates))
    if prob >= cfg.min_confidence or not declared:
        return lang, prob, True
    return declared, prob, False
