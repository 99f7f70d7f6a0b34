"""Text answers: decide a worded answer against a worded reference by its content words.

`compare(ref, ans)` returns `correct`, `incorrect` or None (undecided: the caller's later
stages decide). Both sides become clauses of *concepts*: lower case, LaTeX text wrappers,
`$` and punctuation off; articles, copulas, pronouns and answer filler dropped; plurals read
off; spellings of one idea collapsed by the small family table below (`impossible` = `not
possible` = `cannot` = `no`; `2nd` = `second` = `II` next to `quadrant`; `monotonically
increasing` = `increasing`); `not X` is the concept `¬X`. Generic nouns that only repeat what
was asked (`triangle`, `function`, `quadrant`, ...) are neither required nor distinguishing.

* `correct`: one clause of the answer (or all of it) has exactly the reference's concepts,
  and the rest adds no family word the reference lacks and no condition (`only`, `if`,
  `unless`, `except`, `but`, `when`): `No - it is not possible to end up with 2007 pieces`
  for `This is impossible`; a parenthetical aside is ignored unless it contradicts.
* `incorrect`: a family member other than the reference's (`third` for `second`,
  `externally` for `internally`, `acute` for `obtuse`, `possible`/`yes` for `impossible`) or
  the negation of a reference concept (`not equal` for `equal`).
* None otherwise: `right triangle` for `isosceles right triangle` is not decided here.

Pure; a few linear regex passes and set operations; no maths is read.
"""

from __future__ import annotations

import re
from typing import Literal

from hero_service.verify.units import UNITS

__all__ = [
    "compare",
    "concepts",
    "texts_differ",
]

# Families of words that recur in worded math answers: spelling -> concept. Concepts in one
# family exclude each other (`_FAMILY`); a word outside every family is ordinary content.
_SYNONYMS: dict[str, str] = {
    # possibility: a yes/no question answered in words
    "impossible": "impossible", "cannot": "impossible", "no": "impossible",
    "possible": "possible", "can": "possible", "could": "possible", "yes": "possible",
    # equality of two quantities
    "equal": "equal", "equally": "equal", "same": "equal", "identical": "equal",
    "more": "more", "greater": "more", "larger": "more", "bigger": "more", "higher": "more",
    "less": "less", "fewer": "less", "smaller": "less", "lower": "less",
    # composite numbers (`composed` is the literal rendering of the same word)
    "composite": "composite", "composed": "composite", "prime": "prime",
    # monotonicity and change
    "increasing": "increasing", "increase": "increasing", "increases": "increasing",
    "decreasing": "decreasing", "decrease": "decreasing", "decreases": "decreasing",
    "constant": "unchanged", "unchanged": "unchanged", "invariant": "unchanged",
    # parity
    "even": "even", "odd": "odd",
    # kinds of triangles and angles (`obtuse-angled` is `obtuse`)
    "acute": "acute", "obtuse": "obtuse", "right": "right",
    "isosceles": "isosceles", "equilateral": "equilateral", "scalene": "scalene",
    # relative position of two circles
    "internally": "internally", "internal": "internally", "inside": "internally",
    "externally": "externally", "external": "externally", "outside": "externally",
    "tangent": "tangent", "intersect": "intersect", "intersecting": "intersect",
    "separate": "separate", "disjoint": "separate",
    # signs
    "positive": "positive", "negative": "negative",
    # ordinals (quadrants, places, terms): words, `2nd`, and roman numerals by `quadrant`
    "first": "first", "second": "second", "third": "third", "fourth": "fourth",
    "fifth": "fifth", "sixth": "sixth",
}  # fmt: skip
_FAMILY: tuple[frozenset[str], ...] = tuple(
    frozenset(f)
    for f in (
        ("possible", "impossible"),
        ("equal", "more", "less"),
        ("composite", "prime"),
        ("increasing", "decreasing", "unchanged"),
        ("even", "odd"),
        ("acute", "obtuse", "right"),
        ("isosceles", "equilateral", "scalene"),
        ("internally", "externally"),
        ("tangent", "intersect", "separate"),
        ("positive", "negative"),
        ("first", "second", "third", "fourth", "fifth", "sixth"),
    )
)
_FAMILY_OF = {c: f for f in _FAMILY for c in f}
# `not X` said in one word, or the other member of a two-way family
_NEGATED = {
    "possible": "impossible", "impossible": "possible", "prime": "composite",
    "even": "odd", "odd": "even", "change": "unchanged", "changed": "unchanged",
}  # fmt: skip


def _list(words: str) -> frozenset[str]:
    return frozenset(words.split())


# articles, copulas, pronouns, modal and answer filler, degree adverbs, light prepositions
_FILLER = _list(
    "the a an is are was were be been being it its this that these those they them there "
    "to of on in at each other both must should will would shall stays stay remains remain "
    "so thus hence therefore answer final we get has have does do which always monotonically "
    "monotone monotonic strictly lies lie"
)
# nouns that only repeat what was asked: neither required nor distinguishing
_GENERIC = _list(
    "triangle function quadrant number circle probability set symbol box shape figure "
    "angled value graph sequence result"
)
# function names: `sin x` is maths, whatever its letters
_MATH_WORDS = _list(
    "sin cos tan cot sec csc arcsin arccos arctan sinh cosh tanh log ln lg exp lim max min "
    "det gcd lcm mod sqrt frac"
)
_CONDITION = _list("only if unless except but when whenever provided or")
_ORDINAL_DIGITS = {"1": "first", "2": "second", "3": "third", "4": "fourth", "5": "fifth",
                   "6": "sixth"}  # fmt: skip
_ROMAN = {"i": "first", "ii": "second", "iii": "third", "iv": "fourth"}

_WRAP = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mbox|textnormal|emph)\s*\{([^{}]*)\}")
_ASIDE = re.compile(r"(?<=\s)\(([^()]*)\)")  # `decision symbol (diamond)`, not `f(x)`
_TEXT_CHARS = re.compile(r"[A-Za-z0-9 ',.;:!?-]*")
_ORDINAL = re.compile(r"\b(\d)\s*(?:st|nd|rd|th)\b")
_CLAUSE = re.compile(r"[,;:.!?]|\s-+\s|\band\b")
_WORD = re.compile(r"[a-z]+|\d+")

Clause = frozenset[str]


def _stem(w: str) -> str:
    if w in _SYNONYMS or len(w) <= 3:
        return w
    if w.endswith("ies"):
        return w[:-3] + "y"
    if w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


def _concepts(text: str) -> Clause:
    """The concepts of one clause of plain words."""
    toks = _WORD.findall(text.lower())
    for i, t in enumerate(toks):  # `Quadrant II`, `the II quadrant`
        near = toks[i - 1 : i] + toks[i + 1 : i + 2]
        if t in _ROMAN and "quadrant" in near:
            toks[i] = _ROMAN[t]
    out: set[str] = set()
    negate = False
    for i, t in enumerate(toks):
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        if t in ("not", "never") or (t == "no" and nxt is not None and nxt not in _FILLER):
            negate = not negate  # `not possible`, `no solution`; a lone `No` is the answer
            continue
        if t in _FILLER:
            continue
        c = _SYNONYMS.get(t) or _SYNONYMS.get(_stem(t)) or _stem(t)
        if negate:
            c = _NEGATED.get(c, "¬" + c)
            negate = False
        out.add(c)
    if negate:  # a final `not`: `it is not`
        out.add("¬")
    return frozenset(out - _GENERIC)


def concepts(s: str) -> tuple[list[Clause], list[Clause]] | None:
    """(clauses, asides) of a worded answer, or None for maths and bare symbols."""
    t = _WRAP.sub(lambda m: m.group(1), _WRAP.sub(lambda m: m.group(1), s))
    t = t.replace("\\(", "").replace("\\)", "").replace("$", "").replace("**", "")
    t = t.replace("—", " - ").replace("–", " - ").replace("\u2019", "'")
    t = re.sub(r"n't\b", " not", t)
    asides = [m.group(1) for m in _ASIDE.finditer(t)]
    t = _ASIDE.sub(" ", t)
    if _TEXT_CHARS.fullmatch(t) is None or not re.search(r"[A-Za-z]{2}", t):
        return None  # maths, or too short to be words: `x - y`, `B`
    if _MATH_WORDS.intersection(_WORD.findall(t.lower())):
        return None
    t = _ORDINAL.sub(lambda m: " " + _ORDINAL_DIGITS.get(m.group(1), m.group(1)) + " ", t)
    t = re.sub(r"(?<=[A-Za-z])-(?=[A-Za-z])", " ", t)  # `obtuse-angled`
    t = re.sub(r"\bcan\s+not\b|\bcould\s+not\b", " cannot ", t, flags=re.IGNORECASE)
    clauses = [c for c in (_concepts(x) for x in _CLAUSE.split(t)) if c]
    side = [_concepts(re.sub(r"[^A-Za-z0-9' ]", " ", a)) for a in asides]
    return clauses, [a for a in side if a]


def _conflicts(ref: Clause, got: Clause) -> bool:
    """A family member other than the reference's, or a concept and its negation."""
    for c in got:
        fam = _FAMILY_OF.get(c)
        if fam is not None and (fam & ref) and c not in ref:
            return True
        if ("¬" + c) in ref or (c.startswith("¬") and c[1:] in ref):
            return True
    return False


def _adds(ref: Clause, got: Clause) -> bool:
    """Words that could change the answer: a family word, a negation or a condition."""
    extra = got - ref
    return any(c in _FAMILY_OF or c.startswith("¬") or c in _CONDITION for c in extra)


def compare(ref: str, ans: str) -> Literal["correct", "incorrect"] | None:
    """Decide a worded answer against a worded reference; None when undecided."""
    r, a = concepts(ref), concepts(ans)
    if r is None or len(r[0]) == 0:
        return None
    want = frozenset().union(*r[0])
    if "or" in want or not want:
        return None  # a choice between parts is the components stage's business
    if a is None:
        bare = ans.strip()  # `2\\text{nd}` whose ordinal was already read off: `2`
        if bare in _ORDINAL_DIGITS and len(want) == 1 and next(iter(want)) in _FAMILY_OF:
            got = _ORDINAL_DIGITS[bare]
            if _FAMILY_OF[got] is _FAMILY_OF[next(iter(want))]:
                return "correct" if got in want else "incorrect"
        return None
    clauses, asides = a
    if not clauses:
        return None
    if any(_conflicts(want, c) for c in clauses + asides):
        return "incorrect"
    whole = frozenset().union(*clauses)
    if "or" in whole:
        return None  # a hedge
    if whole == want:
        return "correct"
    for i, c in enumerate(clauses):
        rest = clauses[:i] + clauses[i + 1 :]
        if c == want and not any(_adds(want, x) for x in rest + asides):
            return "correct"
    return None


def texts_differ(ref: str, ans: str) -> bool:
    """Both sides carry words in `\\text{...}` and not the same ones (units aside): string
    normalization drops text, so `n \\text{ even}` would equal `n \\text{ any number}`."""
    r, a = _text_words(ref), _text_words(ans)
    return bool(r) and bool(a) and r != a


def labels_differ(ref: str, ans: str) -> bool:
    """Both values carry words that are not units or fillers, and not the same ones:
    `9 apples` is not `9 pears`, `4 units left` is not `4 units right` (the parts stage drops
    such words to read `9 apples and 4 pears` as `9, 4`)."""
    r, a = _plain_words(ref), _plain_words(ans)
    return bool(r) and bool(a) and r != a


def _plain_words(s: str) -> frozenset[str]:
    s = re.sub(r"\\[A-Za-z]+", " ", s)
    got = {_stem(w) for w in re.findall(r"[A-Za-z]{2,}", s.lower())}
    return frozenset(w for w in got if w not in _FILLER and w not in _UNIT_WORDS)


def _text_words(s: str) -> frozenset[str]:
    got = {_stem(w) for t in _WRAP.findall(s) for w in re.findall(r"[A-Za-z]{2,}", t.lower())}
    return frozenset(w for w in got if w not in _FILLER and w not in _UNIT_WORDS)


_UNIT_WORDS = frozenset(
    _stem(w) for names, _, _ in UNITS.values() for w in names if w.isalpha() and len(w) > 1
)
