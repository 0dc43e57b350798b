"""Chinese word segmentation that returns exactly what `jieba.lcut(text)` returns (jieba 0.42.1,
default dictionary, HMM on, nothing added to or deleted from the dictionary), several times faster.

How jieba cuts (`Tokenizer.cut` and `__cut_DAG` in jieba/__init__.py):
1. The text is split into "Han" blocks (runs of CJK U+4E00..U+9FD5, ASCII letters and digits, and
   `+#&._%-`) and other blocks.
2. Another block gives one word per character, except that "\\r\\n" stays one word.
3. A Han block gets a route: the split into dictionary words (single characters where no word
   fits) with the highest sum of log(freq / total). Words of two or more characters are emitted as
   they are. A run of single-character steps (jieba's `buf`) is one word if it is one character,
   its characters if the run is itself a dictionary word, and otherwise the HMM's words
   (`finalseg.cut`).

Step 3's route is where jieba spends most of its time, in Python. Here rjieba (jieba-rs) computes
it, and everything else is done as jieba does it. rjieba is not used for the rest because it
differs from jieba there:
- its Han blocks include more of CJK (Extension A, U+9FD6.., compatibility ideographs, ...);
- its HMM emission probabilities are rounded to 6 decimals, so near-ties can go the other way
  (jieba: '日君君', '君人'; rjieba: '日君', '君君人');
- its HMM keeps "a-1", "x_2", "1.5a" as one word where jieba splits them;
- its dictionary total is 3 less than jieba's: jieba counts the duplicated line "B超 3 n" twice.
  A dummy word of frequency 3 that cannot occur in a Han block makes the totals equal.

The route comes from `cut(block, hmm=False)`, which is the route itself except that consecutive
single-character steps that are ASCII letters or digits are joined into one word. No dictionary
word consists of ASCII letters and digits only, so such a word is always single-character steps.
"""

from functools import cache, lru_cache

# jieba's own block patterns (so they cannot drift from the jieba installed): Han blocks and
# whitespace in the text, CJK runs and letter-digit runs inside the HMM's input.
from jieba import re_han_default as RE_HAN_BLOCK
from jieba import re_skip_default as RE_WHITESPACE
from jieba.finalseg import re_han as RE_HMM_HAN
from jieba.finalseg import re_skip as RE_HMM_SKIP

# jieba's dictionary total counts "B超 3 n" twice; rjieba's counts it once.
TOTAL_MISSING_IN_RJIEBA = 3
# A private-use character: never in a Han block, so the dummy word never takes part in a route.
DUMMY_WORD = "\ue000"

MIN_FLOAT = -3.14e100  # jieba.finalseg.MIN_FLOAT: the log-probability of what the HMM never saw


def load():
    """Load the dictionary and the HMM's tables now (about 0.3 s) rather than on the first text."""
    rjieba_instance()
    hmm_tables()


def segment(text: str) -> list[str]:
    """Exactly `jieba.lcut(text)`."""
    words: list[str] = []
    # re.split with one group alternates: other block, Han block, other block, ... (possibly empty)
    for i, block in enumerate(RE_HAN_BLOCK.split(text)):
        if i % 2:
            words.extend(cut_han_block(block))
        elif block:
            words.extend(cut_other_block(block))
    return words


def cut_other_block(block: str) -> list[str]:
    """One word per character, "\\r\\n" kept whole (what jieba does with re_skip_default)."""
    if "\r\n" not in block:
        return list(block)
    words = []
    for piece in RE_WHITESPACE.split(block):
        if RE_WHITESPACE.match(piece):
            words.append(piece)
        else:
            words.extend(piece)
    return words


def cut_han_block(block: str) -> list[str]:
    """jieba's `__cut_DAG`: the route's words, with each run of single-character steps cut by
    `cut_single_steps`."""
    words: list[str] = []
    singles: list[str] = []  # single-character steps not yet emitted (jieba's `buf`)
    for word in rjieba_instance().cut(block, False):
        # an ASCII letter-and-digit word of 2+ characters is joined single steps (module docstring)
        if len(word) == 1 or (word.isascii() and word.isalnum()):
            singles.append(word)
        else:
            if singles:
                words.extend(cut_single_steps("".join(singles)))
                singles = []
            words.append(word)
    if singles:
        words.extend(cut_single_steps("".join(singles)))
    return words


@lru_cache(maxsize=1 << 16)
def cut_single_steps(run: str) -> tuple[str, ...]:
    """A run of single-character route steps, as jieba's `__cut_DAG` cuts its `buf`. Cached: runs
    repeat (ANSI colour codes, numbers, common unknown pairs), and the HMM is the costly part."""
    if len(run) == 1:
        return (run,)
    if rjieba_instance().has_word(run):  # jieba: FREQ.get(buf) is not 0 (no dictionary word has 0)
        return tuple(run)
    return tuple(hmm_cut(run))


def hmm_cut(text: str) -> list[str]:
    """jieba's `finalseg.cut`: Viterbi on runs of CJK characters, re_skip on the rest."""
    words: list[str] = []
    for i, piece in enumerate(RE_HMM_HAN.split(text)):
        if i % 2:
            words.extend(viterbi_words(piece))
        else:
            words.extend(x for x in RE_HMM_SKIP.split(piece) if x)
    return words


def viterbi_words(text: str) -> list[str]:
    """jieba's `finalseg.__cut`: words from the B(egin)/M(iddle)/E(nd)/S(ingle) states."""
    states = viterbi_states(text)
    words = []
    begin = after_last = 0
    for i, state in enumerate(states):
        if state == "B":
            begin = i
        elif state == "E":
            words.append(text[begin : i + 1])
            after_last = i + 1
        elif state == "S":
            words.append(text[i])
            after_last = i + 1
    if after_last < len(text):
        words.append(text[after_last:])
    return words


def viterbi_states(text: str) -> list[str]:
    """jieba's `finalseg.viterbi` with the same sums in the same order, so the same floats and the
    same choice on ties: jieba takes max((score, previous state)), so the later letter wins a tie.
    Back-pointers replace jieba's copied path lists (quadratic in the run's length)."""
    start, trans, emit = hmm_tables()
    unseen = (MIN_FLOAT,) * 4
    t_bm, t_be, t_mm, t_me, t_eb, t_es, t_sb, t_ss = trans
    em_b, em_m, em_e, em_s = emit.get(text[0], unseen)
    vb, vm, ve, vs = start[0] + em_b, start[1] + em_m, start[2] + em_e, start[3] + em_s
    back = []  # for each later character: the states before B, M, E and S on their best paths
    for c in text[1:]:
        em_b, em_m, em_e, em_s = emit.get(c, unseen)
        from_e, from_s = ve + t_eb + em_b, vs + t_sb + em_b  # B comes after E or S
        nb, pb = (from_s, "S") if from_s >= from_e else (from_e, "E")
        from_m, from_b = vm + t_mm + em_m, vb + t_bm + em_m  # M comes after M or B
        nm, pm = (from_m, "M") if from_m >= from_b else (from_b, "B")
        from_b, from_m = vb + t_be + em_e, vm + t_me + em_e  # E comes after B or M
        ne, pe = (from_m, "M") if from_m >= from_b else (from_b, "B")
        from_s, from_e = vs + t_ss + em_s, ve + t_es + em_s  # S comes after S or E
        ns, ps = (from_s, "S") if from_s >= from_e else (from_e, "E")
        vb, vm, ve, vs = nb, nm, ne, ns
        back.append({"B": pb, "M": pm, "E": pe, "S": ps})
    state = "S" if vs >= ve else "E"  # a run ends in E or S
    states = [state]
    for before in reversed(back):
        state = before[state]
        states.append(state)
    states.reverse()
    return states


@cache
def hmm_tables() -> tuple:
    """jieba's own HMM log-probabilities: start (B, M, E, S), the 8 allowed transitions, and the
    emissions of each character as a (B, M, E, S) tuple, one look-up per character."""
    from jieba.finalseg.prob_emit import P as emit
    from jieba.finalseg.prob_start import P as start
    from jieba.finalseg.prob_trans import P as trans

    starts = tuple(start[s] for s in "BMES")
    pairs = ("BM", "BE", "MM", "ME", "EB", "ES", "SB", "SS")  # the order viterbi_states unpacks
    transitions = tuple(trans[a][b] for a, b in pairs)
    chars = set().union(*(emit[s] for s in "BMES"))
    emissions = {c: tuple(emit[s].get(c, MIN_FLOAT) for s in "BMES") for c in chars}
    return starts, transitions, emissions


@cache
def rjieba_instance():
    """rjieba's default dictionary (the same words and frequencies as jieba's dict.txt), with the
    dummy word that brings its total up to jieba's. An instance of our own: rjieba's module-level
    one may be changed by other code."""
    import rjieba

    instance = rjieba.Jieba()
    if instance.has_word(DUMMY_WORD):
        raise RuntimeError(f"rjieba's dictionary already has {DUMMY_WORD!r}; pick another dummy word")
    instance.add_word(DUMMY_WORD, TOTAL_MISSING_IN_RJIEBA, None)
    return instance
