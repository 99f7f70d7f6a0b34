"""Final-answer extraction from model outputs.

Pure string code: no sympy, no eval. Every scan here is linear in the input size
(brace matching is latex.py's one pass with a stack; every regex is free of nested or
overlapping quantifiers), so a hostile 100k-character response costs milliseconds.

Order of preference in `extract_answer`: the last `\\boxed{...}` / `\\fbox{...}` /
`\\boxed ...`, then the last "the answer is X" / "final answer: X", then the last
Minerva-style "Answer: X" line; an answer phrase or line that mixes words and `$...$`
maths gives the maths it concludes with (`conclude.refine`). When none of these exists, the
maths the final sentence concludes with (`conclude.last_math`, source `last_math`).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Literal

from hero_service.verify.conclude import last_math, refine
from hero_service.verify.latex import match_braces

__all__ = [
    "Extraction",
    "all_boxed",
    "extract_answer",
    "extract_choice",
    "last_boxed",
    "normalize_choice",
]

AnswerSource = Literal["boxed", "answer_is", "answer_line", "last_math", "none"]

_BOX_CMD = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
# The space form `\boxed 5` runs to the end of the math span or of the line.
_SPACE_FORM_STOP = re.compile(r"\$|\n|\\\]|\\\)")
_MAX_UNWRAP = 8
_THINK_END = "</think>"
# "The final answer is $\\boxed{7}$", "**Final Answer**\n\\[\\boxed{7}\\]": the box a
# response names as its answer (earlier boxes are then intermediate results)
_FINAL_CUE = re.compile(
    r"(?:final\s+answer(?:\s+is)?|the\s+answer\s+is|answer\s*:)(?:\s|\$|:|\*|\\\[|\\\(){0,12}$",
    re.IGNORECASE,
)
_CUE_SPAN = 60

_ANSWER_IS = re.compile(
    r"\bthe\s+(?:final\s+)?answer\s+is\b"
    r"|\bfinal\s+answer\b(?:\s*is\b|[ \t*_]*:|[ \t*_#]*(?=\n))",
    re.IGNORECASE,
)
_ANSWER_LINE = re.compile(r"\banswer[ \t*_]*:", re.IGNORECASE)
_SENTENCE_END = re.compile(r"\.(?:\s|$)")
_COMMAND = re.compile(r"\\[A-Za-z]+")
_WORD = re.compile(r"[A-Za-z]+")
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]+")
_GOLD_PREFIX = re.compile(r"(?:option|choice|answer)\s*:?\s*", re.IGNORECASE)
_INLINE_WRAPPERS = (("\\(", "\\)"), ("\\[", "\\]"), ("$$", "$$"), ("$", "$"))


@dataclass(frozen=True)
class Extraction:
    """The extracted final answer, where it came from and how many boxes the text has."""

    answer: str | None
    source: AnswerSource
    n_boxed: int
    final_marked: bool = False  # the last box follows "the final answer is" / "Answer:"


@dataclass(frozen=True)
class _Box:
    start: int
    end: int  # exclusive end of the whole box in the scanned text
    content: str | None  # None: the brace group never closes


def _scan_boxes(text: str) -> list[_Box]:
    """Top-level boxes in order; a box nested in another box is part of its content."""
    boxes: list[_Box] = []
    match: dict[int, int] | None = None
    n = len(text)
    pos = 0
    while True:
        m = _BOX_CMD.search(text, pos)
        if m is None:
            return boxes
        j = m.end()
        k = j
        while k < n and text[k] in " \t":
            k += 1
        if k < n and text[k] == "{":
            if match is None:
                match = match_braces(text)
            close = match.get(k)
            if close is None:
                boxes.append(_Box(m.start(), k + 1, None))
                pos = k + 1
                continue
            boxes.append(_Box(m.start(), close + 1, text[k + 1 : close]))
            pos = close + 1
        elif k < n and (k > j or text[k].isalnum() or text[k] == "\\"):
            stop = _SPACE_FORM_STOP.search(text, k)
            end = stop.start() if stop is not None else n
            boxes.append(_Box(m.start(), end, text[k:end].strip().rstrip(".,;")))
            pos = end
        else:
            pos = j


def _unwrap(content: str) -> str:
    """`\\boxed{\\boxed{5}}` -> `5` (bounded, so linear overall)."""
    for _ in range(_MAX_UNWRAP):
        inner_text = content.strip()
        if _BOX_CMD.match(inner_text) is None:
            break
        inner = _scan_boxes(inner_text)
        if len(inner) != 1 or inner[0].content is None or inner[0].end != len(inner_text):
            break
        content = inner[0].content
    return content


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{}` / `\\fbox{}` / `\\boxed x`; None if absent or unbalanced."""
    boxes = _scan_boxes(text)
    if not boxes:
        return None
    content = boxes[-1].content
    return None if content is None else _unwrap(content)


def all_boxed(text: str) -> list[str]:
    """Contents of all balanced top-level boxes, in order of appearance."""
    return [_unwrap(b.content) for b in _scan_boxes(text) if b.content is not None]


def _strip_inline(answer: str) -> str:
    """Strip markdown emphasis, `$`, `\\(..\\)`, `\\[..\\]` and trailing punctuation."""
    s = answer.strip().strip("*_").strip()
    for left, right in _INLINE_WRAPPERS:
        if len(s) >= len(left) + len(right) and s.startswith(left) and s.endswith(right):
            s = s[len(left) : len(s) - len(right)].strip()
            break
    s = s.strip("$").strip()
    return s.rstrip(".,;").strip()


def _rest_of_line(text: str, start: int) -> str:
    """Text from `start` to the end of its line, or the next non-empty line if blank."""
    end = text.find("\n", start)
    line = text[start:] if end < 0 else text[start:end]
    if line.strip(" \t*_:#>") or end < 0:
        return line
    nxt = end + 1
    while True:
        end = text.find("\n", nxt)
        line = text[nxt:] if end < 0 else text[nxt:end]
        if line.strip() or end < 0:
            return line
        nxt = end + 1


def _after_answer_is(text: str) -> str | None:
    last = None
    for m in _ANSWER_IS.finditer(text):
        last = m
    if last is None:
        return None
    line = _rest_of_line(text, last.end()).lstrip(" \t*_:#")
    stop = _SENTENCE_END.search(line)
    if stop is not None:
        line = line[: stop.start()]
    return refine(line) or _strip_inline(line) or None


def _after_answer_line(text: str) -> str | None:
    last = None
    for m in _ANSWER_LINE.finditer(text):
        last = m
    if last is None:
        return None
    line = _rest_of_line(text, last.end())
    return refine(line) or _strip_inline(line) or None


def extract_answer(text: str) -> Extraction:
    """Final answer: last box, else "the answer is", else "Answer:" line, else the maths
    the final sentence concludes with (`last_math`). After a reasoning block (`</think>`)
    only the text after it counts, when it gives an answer."""
    cut = text.rfind(_THINK_END)
    if cut >= 0 and text[cut + len(_THINK_END) :].strip():
        after = extract_answer(text[cut + len(_THINK_END) :])
        if after.answer is not None:
            return after
    boxes = _scan_boxes(text)
    n_boxed = sum(1 for b in boxes if b.content is not None)
    if boxes and boxes[-1].content is not None:
        boxed = _unwrap(boxes[-1].content).strip()
        if boxed:
            lead = text[max(0, boxes[-1].start - _CUE_SPAN) : boxes[-1].start]
            marked = _FINAL_CUE.search(lead) is not None
            return Extraction(boxed, "boxed", n_boxed, marked)
    answer = _after_answer_is(text)
    if answer is not None:
        return Extraction(answer, "answer_is", n_boxed)
    answer = _after_answer_line(text)
    if answer is not None:
        return Extraction(answer, "answer_line", n_boxed)
    answer = last_math(text)
    if answer is not None:
        return Extraction(answer, "last_math", n_boxed)
    return Extraction(None, "none", n_boxed)


def _choice_letters(answer: str, allowed: frozenset[str]) -> set[str]:
    """Upper-case choice letters named by an answer (`\\text{...}` etc. unwrapped)."""
    letters: set[str] = set()
    for word in _WORD.findall(_COMMAND.sub(" ", answer)):
        if word.isupper() and all(ch in allowed for ch in word):
            letters.update(word)  # "B", but also "ABCD" / "ACE": every letter counts
    return letters


def _single_lower(answer: str, allowed: frozenset[str]) -> str | None:
    core = _NOT_ALNUM.sub("", _COMMAND.sub(" ", answer))
    if len(core) == 1 and core.upper() in allowed:
        return core.upper()
    return None


def extract_choice(text: str, choices: str = "ABCDE") -> str | None:
    """The single multiple-choice letter a response gives, else None.

    The answer comes from the last box (else from `extract_answer`). An answer that
    names two or more distinct letters ("A, B", "A or C", "ABCD") returns None.
    """
    allowed = frozenset(c.upper() for c in choices if c.isascii() and c.isalpha())
    answer = last_boxed(text)
    if answer is None or not answer.strip():
        answer = extract_answer(text).answer
    if answer is None:
        return None
    letters = _choice_letters(answer, allowed)
    if len(letters) == 1:
        return letters.pop()
    if letters:
        return None
    return _single_lower(answer, allowed)


def normalize_choice(ref: str) -> str | None:
    """Gold-side choice letter: "B", "(B)", "b", "\\text{(B)}", "Option B" -> "B"; else None."""
    s = _COMMAND.sub(" ", ref).strip()
    s = _GOLD_PREFIX.sub("", s, count=1) if _GOLD_PREFIX.match(s) else s
    core = _NOT_ALNUM.sub("", s)
    if len(core) == 1 and core in string.ascii_letters:
        return core.upper()
    return None
