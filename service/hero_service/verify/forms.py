"""Answer forms: what a multi-part answer's parts are and what value each part names.

* components: top-level `,` `;` `and` split, so every part is compared, never only the first
  (`30 red, 40 blue` is not `30 red, 50 blue`);
* labels: `Min: 2`, `a = 3`, `S_{\\max} = 2n+3`, `f(x) = ...` name a value; the name is
  kept apart so named parts can be matched by name;
* decorations: ordinals (`12^{\\text{th}}`, `15\\text{th day}`), trailing words
  (`9 \\text{ apples}`), domain qualifiers (`k \\in \\mathbb{Z}`);
* vectors: `\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}` is the tuple `(1, 2)`.

Input is in `notation.canonical` form. Pure; each function is a bounded number of passes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hero_service.verify.latex import depths, split_top, strip_outer

__all__ = [
    "Part",
    "components",
    "cut_quantifier",
    "part",
    "rename_bound",
    "rename_declared",
    "rename_params",
    "split_domain",
    "vector_to_tuple",
]

_SEP = re.compile(r",|;|\band\b|\bor\b|\\quad")
_LABEL = re.compile(
    r"\s*(?P<name>(?:\\text\{[^{}]{1,30}\}|[A-Za-z][A-Za-z ]{0,20}?|\\[A-Za-z]+"
    r"|\(\s*[A-Za-z](?:\s*,\s*[A-Za-z]){1,3}\s*\))"
    # a subscript `_{n+1}` / `_n`, a power `^{2}` / `^2` (never `^2+y^2`), arguments `(x)`
    r"(?:_(?:\{[^{}=<>]{1,12}\}|\w))?(?:\^(?:\{[^{}=<>+-]{1,6}\}|\w))?(?:\([A-Za-z, ]{1,10}\))?)"
    r"\s*(?P<sep>=|:)(?!=)\s*(?P<value>.+)",
    re.DOTALL,
)
_FUNC = re.compile(r"(?P<f>[A-Za-z])(?:_\{?\w+\}?)?\s*\(\s*(?P<v>[A-Za-z])\s*\)")
_ORDINAL = re.compile(
    r"(?<=\d)\s*(?:\^\s*\{?\s*\\text\{\s*(?:st|nd|rd|th)\s*\}\s*\}?|\^\s*\{\s*(?:st|nd|rd|th)\s*\}"
    r"|\\text\{\s*(?:st|nd|rd|th)\b[^{}]*\}|(?:st|nd|rd|th)\b(?:\s+[A-Za-z]+)?)"
)
_TRAIL_WORDS = re.compile(
    r"(?<=[\d}])\s*\\(?:text|mathrm|textrm|mbox)\{\s*[A-Za-z][A-Za-z .'-]*\}\s*$"
)
_TRAIL_PLAIN = re.compile(r"(?<=\d)\s+[A-Za-z][a-z]+(?:\s+[a-z]+)?\s*$")
_QUALIFIER = re.compile(
    r"^\s*(?:[A-Za-z]|\\[A-Za-z]+)\s*\\in\s*\\mathbb\{?[ZNQR]\}?\s*$|^\s*\\text\{\s*where\b.*$"
)
_PMATRIX = re.compile(
    r"\\begin\{(?:pmatrix|bmatrix|matrix|array)\}(?:\{[lcr|]*\})?(?P<body>.*?)"
    r"\\end\{(?:pmatrix|bmatrix|matrix|array)\}",
    re.DOTALL,
)
_SYSTEM = re.compile(
    r"(?:\\\{)?\s*\\begin\{(?P<env>cases|array|aligned)\}(?:\{[lcr|]*\})?(?P<body>.*?)"
    r"\\end\{(?P=env)\}\s*(?:\\\}|\.)?",
    re.DOTALL,
)
_ROW = re.compile(r"\\\\")
_NOT_NAME = frozenset({"or", "and", "so", "thus", "hence"})
_PARAMS = ("k", "n", "m")
# `... \forall n`, `... \text{ for all } x`, `... for some integer m \ge 0`, `... \text{ for
# constants } k, m`: a quantifier or a declaration of parameters ends the answer proper
_QUANTIFIER = re.compile(
    r"\\forall(?![A-Za-z])|\\text\{\s*[,;]?\s*(?:for|where)\b[^{}]*\}"
    r"|\bfor\s+(?:all|any|every|each|some)\b"
    r"|\\text\{\s*(?:with|and)\s+(?:arbitrary\s+)?(?:constants?|parameters?)\b[^{}]*\}"
)
_TEXT_FOR = re.compile(r"\s*\\text\{\s*\(\s*(?:for|where|when)\s*\}\s*")
_RANGE_TAIL = re.compile(
    r"[,;]\s*(?P<v>[A-Za-z])\s*=\s*-?\d+\s*,\s*-?\d+\s*(?:,\s*-?\d+\s*)*,\s*\\dots\s*$"
)
# a trailing domain condition: `2-\sqrt{x+1} (x \ge -1)`, `y = 12-2x (3 < x < 6)`
_DOMAIN_PAREN = re.compile(
    r"^(?P<main>.+?)\s*\((?P<cond>[^()]*(?:<|>|\\le |\\ge |\\in(?![A-Za-z])|\\neq )[^()]*)\)\s*$"
)
_REL = r"(?:<|>|\\le |\\ge |\\neq )"
_CONDITION = re.compile(rf"^\s*(?:[^=<>]*{_REL}\s*)?[A-Za-z]\s*(?:{_REL}|\\in(?![A-Za-z]))[^=]*$")
_BB = re.compile(r"\\mathbb\s*\{?\s*[A-Z]\s*\}?(?:[_^]\{?[^{}\s]*\}?)?")
_TEXT_AND = re.compile(r"\\text\{([^{}]*)\b(?:and|or)\b([^{}]*)\}")
_EMPTY_TEXT = re.compile(r"\\text\{\s*\}")


@dataclass(frozen=True)
class Part:
    name: str | None  # a label naming the value (`a`, `S_{\\max}`, `\\text{Min}`), if any
    value: str
    func_var: str | None = None  # `f(t) = ...`: the bound variable `t`


def vector_to_tuple(s: str) -> str:
    """A one-row or one-column matrix becomes `(a, b, c)`; other matrices are left alone."""
    m = _PMATRIX.fullmatch(s.strip())
    if m is None:
        return s
    rows = [r.strip() for r in _ROW.split(m.group("body")) if r.strip()]
    cells = [[c.strip() for c in r.split("&")] for r in rows]
    if len(cells) == 1:
        return "(" + ", ".join(cells[0]) + ")"
    if all(len(r) == 1 for r in cells):
        return "(" + ", ".join(r[0] for r in cells) + ")"
    return s


def system_to_list(s: str) -> str:
    """`\\begin{cases} x=2 \\\\ y=1 \\end{cases}` (every row an equation) -> `x=2, y=1`."""
    m = _SYSTEM.fullmatch(s.strip())
    if m is None:
        return s
    rows = [r.replace("&", "").strip().strip("{}").strip() for r in _ROW.split(m.group("body"))]
    rows = [r for r in rows if r]
    if len(rows) < 2 or not all(r.count("=") == 1 for r in rows):
        return s
    return ", ".join(rows)


def components(s: str) -> list[str]:
    """Top-level parts; qualifiers such as `k \\in \\mathbb{Z}` are dropped."""
    s = _TEXT_AND.sub(r"\\text{\1}, \\text{\2}", s)  # `9 \\text{ apples and } 4`
    s = _EMPTY_TEXT.sub(" ", s)
    parts = [p.strip() for p in split_top(s, _SEP)]
    parts = [p for p in parts if p and not _QUALIFIER.match(p)]
    return parts


def _undecorate(v: str) -> str:
    v = _ORDINAL.sub("", v)
    v = _TRAIL_WORDS.sub("", v)
    v = _TRAIL_PLAIN.sub("", v)
    return v.strip()


def part(s: str) -> Part:
    """Split a label off a part and strip its decorations."""
    s = s.strip()
    m = _LABEL.fullmatch(s)
    if m is not None:
        name = m.group("name").strip()
        value = m.group("value")
        bare = name.replace("\\text{", "").replace("}", "").strip().lower()
        balanced = name.count("{") == name.count("}")  # not `\\sum_{k` of `\\sum_{k=1}`
        if bare not in _NOT_NAME and "=" not in value and value.strip() and balanced:
            f = _FUNC.fullmatch(name)
            return Part(re.sub(r"\s+", "", name), _undecorate(value), f.group("v") if f else None)
    return Part(None, _undecorate(s))


def _letters(s: str) -> set[str]:
    """Standalone single letters (not part of a command or word)."""
    return set(re.findall(r"(?<![A-Za-z\\])([A-Za-z])(?![A-Za-z])", s))


def rename_params(ref: str, ans: str) -> str:
    """Rename the answer's integer parameter (`n\\pi`) to the reference's (`k\\pi`)."""
    rl, al = _letters(ref), _letters(ans)
    rp = [p for p in _PARAMS if p in rl and p not in al]
    ap = [p for p in _PARAMS if p in al and p not in rl]
    if len(rp) == 1 and len(ap) == 1:
        return re.sub(rf"(?<![A-Za-z\\]){ap[0]}(?![A-Za-z])", rp[0], ans)
    return ans


def rename_var(value: str, old: str, new: str) -> str:
    """Rename a bound variable (`f(t) = 3t-1` read with `x` for `t`)."""
    if old == new:
        return value
    return re.sub(rf"(?<![A-Za-z\\]){re.escape(old)}(?![A-Za-z])", new, value)


def bracketed(s: str) -> tuple[str, list[str], str] | None:
    """`(1, 2, 3)` / `\\{1, 2\\}` / `[1, 2]` -> (open, parts, close); None otherwise."""
    got = strip_outer(s, (("(", ")"), ("\\{", "\\}"), ("[", "]"), ("\\langle", "\\rangle")))
    if got is None:
        return None
    op, inner, cl = got
    parts = [p.strip() for p in split_top(inner, re.compile(r",|;"))]
    if len(parts) < 2 or any(not p for p in parts):
        return None
    return op, parts, cl


def cut_quantifier(s: str) -> tuple[str, set[str]]:
    """`f(x) = kx + m \\text{ for constants } k, m \\in \\mathbb{R}` -> (`f(x) = kx + m`,
    {k, m}): the answer without its quantifier tail, and the letters the tail declares."""
    m = _RANGE_TAIL.search(s)  # `(x^2+x+1)^k, k = 0, 1, 2, \\dots`
    if m is not None and m.start() > 0:
        return s[: m.start()].rstrip(), {m.group("v")}
    depth = depths(s)
    for m in _QUANTIFIER.finditer(s):
        if depth[m.start()] == 0 and m.start() > 0:
            head = s[: m.start()].rstrip().rstrip(",;").rstrip()
            if head:
                return head, _letters(_BB.sub(" ", s[m.start() :]))
    return s, set()


def split_domain(s: str) -> tuple[str, str | None]:
    """A trailing condition on a variable of the answer, split off: `2-\\sqrt{x+1} (x \\ge
    -1)`, `y = 12-2x, 3 < x < 6`, `y = 12 - 2x, x \\in (3, 6)` -> (main, condition)."""
    s = _TEXT_FOR.sub(" (", s)  # `x^2 - 1 \\text{ (for } x \\ge -1)`
    m = _DOMAIN_PAREN.match(s)
    if m is not None and _letters(m.group("cond")) & _letters(m.group("main")):
        cond = m.group("cond").strip()
        if _CONDITION.match(cond):
            return m.group("main").strip(), cond
    parts = split_top(s, re.compile(r",|;"))
    if len(parts) == 2:
        main, cond = parts[0].strip(), parts[1].strip()
        main_rel = re.search(r"<|>|\\le |\\ge |\\neq |\\in(?![A-Za-z])", main)
        shared = _letters(cond) & _letters(main)
        one = len(_letters(_BB.sub(" ", cond))) == 1  # `k \\in \\mathbb{Z}`: one letter
        if not main_rel and _CONDITION.match(cond) and one and shared:
            return main, cond
    return s, None


def rename_declared(ref: str, ans: str, declared: set[str]) -> str:
    """Rename the parameters an answer declares (`for any integer t`, `for constants k, m`)
    to the reference's free letters, in order of first appearance. Declared letters are bound:
    the name does not matter. Undeclared letters are never renamed."""
    rl, al = _math_letters(ref), _math_letters(ans)
    src = [c for c in al if c in declared and c not in rl]
    dst = [c for c in rl if c not in al]
    if not src or len(src) != len(dst):
        return ans
    table = dict(zip(src, dst, strict=True))

    def swap(m: re.Match[str]) -> str:
        run = m.group()
        if run.startswith("\\") or run.lower() in _WORDS or len(run) > 4:
            return run
        return "".join(table.get(c, c) for c in run)

    return _RUN.sub(swap, ans)


_RUN = re.compile(r"\\[A-Za-z]+|[A-Za-z]+")
_WORDS = frozenset({"or", "and", "for", "all", "any", "some", "with", "where", "if", "cm", "km"})


def _math_letters(s: str) -> list[str]:
    """Single-letter symbols in order of first appearance; `kx` is `k` times `x`, commands
    (`\\frac`) and words (`or`) are not letters."""
    seen: dict[str, None] = {}
    for run in _RUN.findall(_BB.sub(" ", s)):
        if not run.startswith("\\") and run.lower() not in _WORDS and len(run) <= 4:
            for c in run:
                seen.setdefault(c, None)
    return list(seen)


_BOUND = re.compile(r"\s*+\\(?:forall|exists)\s*+([A-Za-z](?:_\{?\w{1,3}\}?)?)(?![A-Za-z])")


def rename_bound(ref: str, ans: str) -> str:
    """The variable a leading quantifier binds, named as in the reference."""
    mr, ma = _BOUND.match(ref), _BOUND.match(ans)
    if mr is None or ma is None or mr.group(1) == ma.group(1):
        return ans
    name = re.compile(rf"(?<![A-Za-z\\]){re.escape(ma.group(1))}(?![A-Za-z0-9_])")
    if re.search(rf"(?<![A-Za-z\\]){re.escape(mr.group(1))}(?![A-Za-z0-9_])", ans):
        return ans  # the reference's name is taken in the answer
    return name.sub(mr.group(1), ans)
