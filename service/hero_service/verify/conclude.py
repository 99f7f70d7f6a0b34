"""The maths a sentence concludes with: extraction's last resort, and answer phrases.

`last_math(text)` is `extract_answer`'s fallback (source `last_math`), used only when the
response has no box, no "the answer is" / "final answer" phrase and no "Answer:" line. It
reads the final sentence of the last 2,000 characters, and only if that sentence ends with
`.`/`!`, has a concluding word (so, thus, therefore, is, gives, ...), no hedge word (or,
maybe, might, could, not, ...) and no trailing-reasoning word (let, check, substitute, ...).
The answer is the candidate the sentence concludes with: the last `$...$` / `\\(...\\)` /
`\\[...\\]` span, `**bold**` span or number (a number keeps up to three unit words:
`144 dollars`, `9.1 miles per hour`; a span drops them: `$0.9a$ billion yuan` -> `0.9a`),
after any further words only units, punctuation or a qualifier. Trailing qualifiers are
skipped: a candidate introduced by for / where / with / when / if / on / `(`, or a domain
span after a comma (`, $k \\in \\mathbb{Z}$`). Candidates joined by `,` / `and` / `or` are
returned together, so `3 or 4` reaches the hedge guard and `$(t,3t,6t)$ and $(t,2t,3t)$`
stays a list; another, different plain value earlier in the sentence ("16 ... and 20 ...")
gives no answer: the fallback never picks one of two values. A bare variable (`$x$`) is no
answer.

Chains: the semantic stages do not read `a = b = c` (a relation with three sides), so a
chain whose inner sides are expressions and whose last side is a plain value, with no
letter the value lacks, becomes `first = value` when the first side is a name
(`x = \\frac{-4+2}{2} = -1` -> `x = -1`) and the value otherwise (`(1-10\\%)a = 0.9a` ->
`0.9a`). An equation (`x + 1 = 0`) or any other chain is kept whole.

`refine(line)` applies the same choice, without the sentence checks, to an answer phrase or
line that mixes words and maths ("The answer is: all $k$ of the form $2^j$, $j \\in
\\mathbb{N}_0$" -> `2^j`); it gives None (the caller keeps the text) unless exactly one
candidate is left besides bare variables.

Linear: the tokenizer is one pass over the text (an opener without a closer is never
searched for again), every regex is free of nested or overlapping quantifiers, and the
input is capped. No sympy, no eval.
"""

from __future__ import annotations

import re

from hero_service.verify.latex import split_relations

__all__ = ["last_math", "refine"]

_COMMAND = re.compile(r"\\[A-Za-z]+")
_TAIL_CHARS = 2000


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


_CLOSER = {"$$": "$$", "\\[": "\\]", "\\(": "\\)", "$": "$", "**": "**"}
_SPECIAL = re.compile(r"\\[(\[]|\$\$?|\*\*|\\.")
_BOUNDARY = re.compile(r"(?<!\bi\.e)(?<!\be\.g)(?<!approx)[.!?](?=\s|$)|\n[ \t]*\n")
_NUMBER = re.compile(
    r"(?<![\w.,\\^_{}])-?\d+(?:,\d{3})*(?:\.\d+)?(?:[ \t]?(?::|to\b)[ \t]?\d+(?:\.\d+)?)?"
    r"(?:π|%|°)?(?![A-Za-z\d])"
)
_LETTER = re.compile(r"[A-Za-z]")
_TEXT_WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")
_QUAL_INTRO = re.compile(
    r"[\s,;]*(?:\(|(?:for|where|with|when|whenever|if|on|provided|assuming)\b)", re.IGNORECASE
)
_DOMAIN = re.compile(r"\s*(?:(?:[A-Za-z]|\\[A-Za-z]+)\s*)?\\in\s*\\mathbb")
_GREEK = r"\\(?:alpha|beta|gamma|delta|epsilon|theta|lambda|mu|rho|sigma|tau|phi|varphi|omega)"
_BARE = re.compile(r"\s*(?:[a-z]|[F-Z]|" + _GREEK + r")(?:_\{?\w{1,4}\}?)?'?\s*")
_NAME = re.compile(
    r"\s*(?:\\[A-Za-z]+\s?)?\{?[A-Za-z]{1,3}\}?(?:_\{?\w{1,4}\}?)?(?:\([^()]{1,12}\))?\s*"
)
_PLAIN = re.compile(
    r"-?(?:\d+(?:\.\d+)?|\\[dt]?frac\{-?\d+(?:\.\d+)?\}\{\d+(?:\.\d+)?\})?"
    r"(?:\\pi|π|\\sqrt\{?\d+\}?|[A-Za-z])?(?:\^\{?\\circ\}?|°|\\%|%)?"
)
_CUES = _wordset(
    "so thus therefore hence is are was were equals equal gives give get gets obtain yields"
    " satisfies satisfy measures measure differ differs becomes totals"
)
_HEDGES = _wordset(
    "or either maybe perhaps possibly might could probably alternatively guess unsure not"
    " cannot never unless otherwise"
)
_REASONING = _wordset(
    "let let's suppose assume whether try consider wait need want check verify recall"
    " compute calculate substitute plug next first expand simplify factor rewrite start begin"
)
_STOP = _wordset(
    "the a an of to into in and or is are was we it this that then so by from at as be which"
    " but since because after before than each all these those its our"
)
_Item = tuple[str, str]  # (kind, text); kind: text | math | bold | num


def _tokens(s: str) -> list[_Item]:
    """Text, maths (`$`, `$$`, `\\(`, `\\[`) and `**bold**` spans, in one linear pass."""
    items: list[_Item] = []
    dead: set[str] = set()  # openers without a closer further on: never searched again
    pos = start = 0
    while (m := _SPECIAL.search(s, pos)) is not None:
        op = m.group()
        if op not in _CLOSER or op in dead:
            pos = m.end()
            continue
        close = s.find(_CLOSER[op], m.end())
        if close < 0:
            dead.add(op)
            pos = m.end()
            continue
        if m.start() > start:
            items.append(("text", s[start : m.start()]))
        items.append(("bold" if op == "**" else "math", s[m.end() : close]))
        pos = start = close + len(_CLOSER[op])
    if start < len(s):
        items.append(("text", s[start:]))
    return items


def _with_numbers(items: list[_Item]) -> list[_Item]:
    out: list[_Item] = []
    for kind, t in items:
        if kind != "text":
            out.append((kind, t))
            continue
        last = 0
        for m in _NUMBER.finditer(t):
            out += [("text", t[last : m.start()]), ("num", m.group())]
            last = m.end()
        out.append(("text", t[last:]))
    return out


def _final_sentence(items: list[_Item]) -> list[_Item] | None:
    """The last sentence if it ends in `.`/`!` (that mark dropped), else None."""
    if items and items[-1][0] == "text" and not items[-1][1].strip():
        items = items[:-1]  # never two text items in a row
    if not items:
        return None
    kind, t = items[-1]
    end = t.rstrip().rstrip("\"'")
    if not end.endswith((".", "!")) or end.endswith(".."):
        return None  # no full stop, or `...`: reasoning that trails off
    if kind == "text":
        items = [*items[:-1], ("text", end[:-1])]
    return _last_sentence(items)


def _last_sentence(items: list[_Item]) -> list[_Item]:
    """The items back to the last sentence boundary (full stop or blank line), in order."""
    sent: list[_Item] = []
    for kind, t in reversed(items):
        cut = None
        if kind == "text":
            for m in _BOUNDARY.finditer(t):
                cut = m.end()
        sent.append((kind, t if cut is None else t[cut:]))
        if cut is not None:
            break
    sent.reverse()
    return sent


def _words(items: list[_Item]) -> set[str]:
    return {w.lower() for k, t in items if k in ("text", "bold") for w in _TEXT_WORD.findall(t)} | (
        {"not"} if any("n't" in t for k, t in items if k == "text") else set()
    )


def _chain(s: str) -> str:
    """`x = \\frac{-4+2}{2} = -1` -> `x = -1`; `(1-10\\%)a = 0.9a` -> `0.9a`; else `s`.
    Every side but the first and last must be an expression, the last a plain value, and
    no side may use a letter the value lacks (`x + 1 = 0` is an equation, not a result)."""
    rel = split_relations(s, equals=True)
    if rel is None or set(rel[1]) != {"="} or len(s) > 400:
        return s
    sides = rel[0]
    if not _is_plain(sides[-1]) or _is_plain(sides[0]):
        return s
    if any(_is_plain(x) or _NAME.fullmatch(x) for x in sides[1:-1]):
        return s
    named = _NAME.fullmatch(sides[0]) is not None
    letters = _letters(sides[-1])
    if any(not _letters(x) <= letters for x in sides[int(named) : -1]):
        return s
    if named:
        return s if len(sides) == 2 else f"{sides[0]} = {sides[-1]}"
    return sides[-1]


def _letters(s: str) -> set[str]:
    return set(_LETTER.findall(_COMMAND.sub(" ", s)))


def _has_value(s: str) -> bool:
    return any(c.isdigit() for c in s) or "\\pi" in s or "π" in s


def _is_plain(s: str) -> bool:
    return _PLAIN.fullmatch(s.replace(" ", "")) is not None and _has_value(s)


def _answer_of(kind: str, t: str) -> str | None:
    """The answer a candidate names; None for a bare variable or unreadable bold."""
    if kind == "num":
        return t
    t = t.strip().rstrip(".,;!").strip()
    if kind == "bold" and ("$" in t or "\\(" in t):
        return _conclude(_with_numbers(_tokens(t)), strict=False)
    if not t or (kind == "math" and _BARE.fullmatch(t)):
        return None
    return _chain(t)


def _conclude(items: list[_Item], strict: bool) -> str | None:
    """The answer a sentence concludes with (items: text and candidates), or None; when the
    whole sentence names none, the part before a restatement (`i.e.`, `that is`)."""
    got = _conclude_once(items, strict)
    if got is None and len(cut := _before_restatement(items)) < len(items):
        return _conclude_once(cut, strict)
    return got


def _conclude_once(items: list[_Item], strict: bool) -> str | None:
    cand = [i for i, (k, _) in enumerate(items) if k != "text"]
    if not cand:
        return None
    tail = "".join(t for _, t in items[cand[-1] + 1 :])
    words = [w.strip(".,;:!)") for w in tail.split()]
    units = ""
    if any(ch.isalnum() for ch in tail) and not _QUAL_INTRO.match(tail):
        if items[cand[-1]][0] not in ("num", "math") or len(words) > 3:
            return None
        if not all(w.replace("/", "").isalpha() and w.lower() not in _STOP for w in words):
            return None
        units = " ".join(words)
    quals: list[str] = []
    while cand:  # trailing qualifiers: `for $x \neq 0$`, `, $k \in \mathbb{Z}$`, `(...)`
        c = cand[-1]
        before = items[c - 1][1] if c > 0 and items[c - 1][0] == "text" else ""
        domain = _DOMAIN.match(items[c][1]) and not before.strip(" ,;")
        aside = _open_parens(items[:c]) > 0  # `constant (always equal to $\\frac{1}{16}$)`
        if not (_QUAL_INTRO.match(before) or (items[c][0] == "math" and domain) or aside):
            break
        if items[c][0] == "math" and not aside:
            quals.append(items[c][1].strip())
        cand.pop()
        units = ""
    if not cand:
        return None
    c = cand[-1]
    run = [c]  # built backwards, then reversed: linear however long the list
    k = len(cand) - 1
    while k > 0 and cand[k - 1] == run[-1] - 2:
        conn = " ".join(items[run[-1] - 1][1].replace(",", " , ").split())
        if conn not in (",", "and", "or", ", and", ", or", "and/or"):
            break
        run.append(cand[k - 1])
        k -= 1
    run.reverse()
    answers = [_answer_of(*items[i]) for i in run]
    if any(a is None for a in answers):
        return None
    pieces = [str(answers[0])]
    for i, a in zip(run[1:], answers[1:], strict=True):
        word = items[i - 1][1].replace(",", " ").strip()
        pieces.append(f" {word} {a}" if word else f", {a}")
    joined = "".join(pieces)
    lead = items[run[0] - 1][1].rstrip() if run[0] > 0 else ""
    # `at least 120 and at most 240: $120 \\le x \\le 240$`: what a colon introduces is
    # the answer, the values before it led up to it
    others = [] if lead.endswith(":") else [i for i in cand if i < run[0]]
    values = {"".join(str(a).split()) for a in answers}
    for i in others:
        kind, t = items[i]
        if kind == "num" or _is_plain(t):
            if "".join(t.strip().split()) not in values:
                return None  # two different values: a hedge or a list, not one answer
        elif not strict and not (kind == "math" and _BARE.fullmatch(t)):
            return None  # an answer phrase naming two things: keep its text
    connectors = {i - 1 for i in run[1:]}
    words_ = _words([x for i, x in enumerate(items) if i not in connectors])
    cued = bool(words_ & _CUES) or lead.endswith(":")  # `Union: $(-\infty, 27]$.`
    cued = cued or len(cand) == 1  # the one value of the last sentence: `It ends at 14:30.`
    if words_ & _HEDGES or (strict and (not cued or words_ & _REASONING)):
        return None
    if units and items[c][0] == "num" and len(run) == 1:
        return f"{joined} {units}"
    return _with_conditions(joined, quals) if len(run) == 1 else joined


_RELATION = re.compile(r"<|>|\\le\b|\\ge\b|\\neq\b|\\in\b|\\notin\b")


def _with_conditions(answer: str, quals: list[str]) -> str:
    """`$m < 2$ with $m \\neq 1$`: a condition on the one variable of a range is part of the
    range (`m < 2 \\text{ and } m \\neq 1`), not a qualifier to drop."""
    letters = _letters(answer)
    if not quals or len(letters) != 1 or not _RELATION.search(answer):
        return answer
    if not all(_RELATION.search(q) and _letters(q) == letters for q in quals):
        return answer
    return " \\text{ and } ".join([answer, *reversed(quals)])


_RESTATE = re.compile(r"[,;]?\s*+(?:\bi\.\s?e\.|\bthat is\b|\bnamely\b)", re.IGNORECASE)


def _before_restatement(items: list[_Item]) -> list[_Item]:
    """`$\\pm 5$, i.e. $5$ or $-5$`, `$\\bar z = 1+3i$, i.e. real part $1$ ...`: the part
    before what `i.e.` / `that is` / `namely` restates."""
    seen = False
    for i, (kind, t) in enumerate(items):
        if kind != "text":
            seen = True
        elif seen and (m := _RESTATE.search(t)) is not None:
            return [*items[:i], ("text", t[: m.start()])]
    return items


def _open_parens(items: list[_Item]) -> int:
    """Parentheses the text items leave open: a candidate inside one is an aside."""
    return sum(t.count("(") - t.count(")") for k, t in items if k == "text")


def refine(line: str) -> str | None:
    """The maths an answer phrase/line mixing words and maths concludes with, else None."""
    if len(line) > _TAIL_CHARS:
        return None
    items = _tokens(line)
    if not any(k == "math" for k, _ in items):
        return None
    if not any(len(w) > 1 for k, t in items if k == "text" for w in _TEXT_WORD.findall(t)):
        return None
    return _conclude(_with_numbers(items), strict=False)


_LEAD = re.compile(
    r"(?:(?:so|thus|hence|therefore|finally|answer|result)[ \t]*[,:]?|[^\n.!?]{0,40}:)[ \t]*",
    re.IGNORECASE,
)


def _final_display(items: list[_Item]) -> str | None:
    """A response that ends with maths on its own line (`$$a \\in [-2,2]$$`, `$M \\cap N =
    \\{2,3\\}$`), alone or after a lead (`So`, `Domain:`, `we get`), has that as its answer;
    not after a hedge or a reasoning word (`Let us check`)."""
    if items and items[-1][0] == "text" and not items[-1][1].strip():
        items = items[:-1]
    if not items or items[-1][0] != "math":
        return None
    before = items[-2][1] if len(items) > 1 and items[-2][0] == "text" else ""
    if len(items) > 1 and items[-2][0] != "text":
        return None  # two spans in a row
    line = before.rsplit("\n", 1)[-1]
    if len(items) > 2 and "\n" not in before:
        return None  # another span on the line: one answer is not clear
    words = [w.lower() for w in _TEXT_WORD.findall(line)]
    if _words(_last_sentence(items[:-1])) & (_HEDGES | _REASONING):  # the sentence it closes
        return None
    cued = bool(words) and words[-1] in _CUES  # `we get $$...$$`
    if line.strip() and not (_LEAD.fullmatch(line.strip()) or cued):
        return None
    answer = _answer_of("math", items[-1][1].strip().rstrip(".,;").strip())
    return answer.strip() if answer and answer.strip() else None


def last_math(text: str) -> str | None:
    """The maths the final sentence concludes with (module docstring), else None."""
    tail = text[-_TAIL_CHARS:]
    if len(text) > _TAIL_CHARS:
        nl = tail.find("\n")
        if nl < 0:
            return None
        tail = tail[nl + 1 :]
    items = _tokens(tail)
    sent = _final_sentence(items)
    if sent is None:
        return _final_display(items)
    if len(sent) == 1 and sent[0][0] == "bold":
        sent = _final_sentence(_tokens(sent[0][1]))  # a whole bold sentence: read inside
        if sent is None:
            return None
    answer = _conclude(_with_numbers(sent), strict=True)
    if answer and answer.strip():
        return answer.strip()
    return _final_display(items)
