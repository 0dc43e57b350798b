"""ftfy's mojibake test searched only around the characters its matches need (llmpipe.data.mojibake) answers
as ftfy's own search of the whole text, and the repair is ftfy's."""

import random

import ftfy
from ftfy.badness import is_bad as ftfy_is_bad

from llmpipe.data import mojibake

# characters ftfy's pattern is made of (Latin-1, cp1252, box drawing, Cyrillic and Greek mojibake),
# with ASCII and Chinese (which no match needs) around them
POOL = "Ã©â€™Â°ÃØÙ×²³à¹é’“”ŒœÂÎÐ€ŠšŸž\xa0\xad®©·»–—´ВГРСЂΒΓΞΟ‚Ä│─" + "abcXYZ .,?!-1\n\t" + "数据清洗，。"


def test_the_fast_path_is_taken_with_this_ftfy():
    assert mojibake.search_plan() is not None  # ftfy's pattern still has the properties it relies on


def test_same_answer_as_ftfy_on_random_text_and_at_the_edges():
    rng = random.Random(0)
    texts = ["", "plain", "Ã ", "x Ã ", "Ã" + "a" * 20 + " Ã ", "naïve café", "l’été", "cafÃ©", "Ã©" + "x" * 100]
    for _ in range(5000):
        body = "".join(rng.choice(POOL) for _ in range(rng.randrange(1, 40)))
        texts += [body, "ascii words " * rng.randrange(5) + body + " more ascii" * rng.randrange(5)]
    answers = [(mojibake.is_bad(t), ftfy_is_bad(t)) for t in texts]
    assert all(ours == theirs for ours, theirs in answers)
    assert sum(theirs for _, theirs in answers) > 1000  # the sample holds plenty of mojibake


def test_repairs_are_ftfys():
    for text in ["cafÃ©", "The Mona Lisa doesnâ€™t have eyebrows.", "naïve", "数据清洗", "plain text", "Ã "]:
        assert mojibake.fix_encoding(text) == ftfy.fix_encoding(text)
