"""LaTeX structure helpers shared by the verifier stages: brace matching, top-level splits.

All linear in the input: one pass with a bracket stack.
"""

from __future__ import annotations

import re

__all__ = ["depths", "match_braces", "split_relations", "split_top", "strip_outer"]

_BRACE_TOKEN = re.compile(r"\\.|[{}]", re.DOTALL)
_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = frozenset(")]}")


def match_braces(s: str) -> dict[int, int]:
    """Position of each `{` -> position of its `}` (escaped braces `\\{` are skipped)."""
    stack: list[int] = []
    match: dict[int, int] = {}
    for m in _BRACE_TOKEN.finditer(s):
        tok = m.group()
        if tok == "{":
            stack.append(m.start())
        elif tok == "}" and stack:
            match[stack.pop()] = m.start()
    return match


def depths(s: str) -> list[int]:
    """Bracket depth before each character; `\\{`/`\\}` count as brackets, `\\(` etc. not."""
    out = [0] * len(s)
    depth = 0
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        out[i] = depth
        if c == "\\" and i + 1 < n:
            nxt = s[i + 1]
            if nxt in "{}":
                depth = depth + 1 if nxt == "{" else max(depth - 1, 0)
            if i + 1 < n:
                out[i + 1] = depth
            i += 2
            continue
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth = max(depth - 1, 0)
        i += 1
    return out


def split_top(s: str, seps: re.Pattern[str]) -> list[str]:
    """Split `s` at matches of `seps` that sit outside every bracket."""
    depths_ = depths(s)
    parts: list[str] = []
    last = 0
    for m in seps.finditer(s):
        if m.start() < len(depths_) and depths_[m.start()] == 0 and m.end() > m.start():
            parts.append(s[last : m.start()])
            last = m.end()
    parts.append(s[last:])
    return parts


def strip_outer(s: str, pairs: tuple[tuple[str, str], ...]) -> tuple[str, str, str] | None:
    """(open, inner, close) when one bracket pair from `pairs` encloses all of `s`."""
    t = s.strip()
    for op, cl in pairs:
        if t.startswith(op) and t.endswith(cl) and len(t) >= len(op) + len(cl):
            inner = t[len(op) : len(t) - len(cl)]
            # the opening bracket must close at the very end, not earlier: (1,2)\cup(3,4)
            if _balanced(inner):
                return op, inner, cl
    return None


def _balanced(s: str) -> bool:
    depth = 0
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\" and i + 1 < n:
            if s[i + 1] == "{":
                depth += 1
            elif s[i + 1] == "}":
                depth -= 1
            i += 2
        else:
            if c in _OPEN:
                depth += 1
            elif c in _CLOSE:
                depth -= 1
            i += 1
        if depth < 0:
            return False
    return depth == 0


_ORDER = re.compile(r"\\le |\\ge |\\le$|\\ge$|\\neq |\\neq$|<=|>=|<|>")
_ORDER_OR_EQ = re.compile(_ORDER.pattern + "|=")


def split_relations(s: str, equals: bool = True) -> tuple[list[str], list[str]] | None:
    """Split at top-level relation symbols (`<`, `\\le`, ..., and `=` when asked):
    (sides, operators), or None without one or with an empty side."""
    depth = depths(s)
    parts: list[str] = []
    ops: list[str] = []
    last = 0
    for m in (_ORDER_OR_EQ if equals else _ORDER).finditer(s):
        if depth[m.start()] != 0:
            continue  # inside brackets: `\\{x | x > 0\\}`, `f(x<1)`
        parts.append(s[last : m.start()].strip())
        op = m.group().strip()
        ops.append({"<=": "\\le", ">=": "\\ge"}.get(op, op))
        last = m.end()
    if not ops:
        return None
    parts.append(s[last:].strip())
    if any(not p for p in parts):
        return None
    return parts, ops
