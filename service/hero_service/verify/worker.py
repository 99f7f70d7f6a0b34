"""Code that runs inside a verifier worker process (never in the server process).

Math-Verify's own timeout is SIGALRM, which only works on a process's main thread:
pebble runs tasks on the worker's main thread, and the parent adds a hard deadline.
"""

from __future__ import annotations

import logging
import os
import re
import resource
import signal
from collections import OrderedDict
from typing import Any

_CFG: dict[str, Any] = {}
_GOLD: OrderedDict[str, Any] = OrderedDict()


class _TimeoutFlag(logging.Handler):
    """Math-Verify reports its own SIGALRM timeouts only as log warnings: catch them."""

    hit = False

    def emit(self, record: logging.LogRecord) -> None:
        if "Timeout during" in record.getMessage():
            _TimeoutFlag.hit = True


def init_worker(memory_mb: int, cpu_s: int, max_files: int) -> None:
    """pebble initializer: resource caps, default SIGTERM, pre-import Math-Verify."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # die at once when the parent stops us
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))
    resource.setrlimit(resource.RLIMIT_NOFILE, (max_files, max_files))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # a worker never writes files
    from math_verify import ExprExtractionConfig, LatexExtractionConfig
    from math_verify.parser import NormalizationConfig

    # Recall-oriented config from Math-Verify's README for rewards: boxed first,
    # malformed-operator and nits fixes off (they are a false-positive source).
    norm = NormalizationConfig(
        basic_latex=True,
        units=True,
        malformed_operators=False,
        nits=False,
        boxed="all",
    )
    for name in ("math_verify.grader", "math_verify.parser", "math_verify"):
        lg = logging.getLogger(name)
        lg.addHandler(_TimeoutFlag())
        lg.propagate = False
    _CFG["extraction"] = [
        LatexExtractionConfig(boxed_match_priority=0, normalization_config=norm),
        ExprExtractionConfig(),
    ]
    # pay sympy's lazy imports (numbers, intervals, sets, matrices, functions, equations)
    # before serving: a cold first parse of each kind costs a request up to a second
    for ref, ans in _WARM:
        math_verify_task(ref, ans, 5)


_WARM = (
    ("\\frac{1}{2}", "0.5"),
    ("[1, \\sqrt{2})", "(1, \\sqrt{2}]"),
    ("\\{1, 2\\}", "\\{2, 1\\}"),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "(1, 2)"),
    ("x \\cos(\\ln x) + C_1 \\sin x", "x \\cos(\\ln x) + C_2 \\sin x"),
    ("y = 2x + 1", "2x - y + 1 = 0"),
    ("x \\le 3", "x < 3"),
    ("\\frac{\\pi}{4}", "45^{\\circ}"),
)


def ping() -> int:
    return os.getpid()


def math_verify_pairs(pairs: list[tuple[str, str]], timeout: int) -> str:
    """Every (reference part, answer part) must hold: the first verdict that is not
    'correct' is the answer's. One task per answer, however many parts it has."""
    out = "correct"
    for reference, answer in pairs:
        out = math_verify_task(reference, answer, timeout)
        if out != "correct":
            return out
    return out


def _parse_gold(reference: str, timeout: int) -> Any:
    """Parsed gold, cached: a group's distinct answers all share its reference."""
    from math_verify import parse

    hit = _GOLD.get(reference)
    if hit is not None:
        _GOLD.move_to_end(reference)
        return hit
    gold = parse("\\boxed{" + reference + "}", extraction_config=_CFG["extraction"],
                 parsing_timeout=timeout)  # fmt: skip
    if gold and not _TimeoutFlag.hit:
        _GOLD[reference] = gold
        while len(_GOLD) > 512:
            _GOLD.popitem(last=False)
    return gold


_UNREADABLE = re.compile(r"\\(?:dots|cdots|ldots)(?![A-Za-z])|…|\\\{[^{}|]*(?:\||\\mid)")


def _fragment(text: str, parsed: Any) -> bool:
    """A plain number read out of maths Math-Verify cannot parse: `1 \\times 3 \\times \\dots
    \\times (2n+1)` reads as 3 and `\\{x \\mid -1 < x \\le 4\\}` as 4, and two such
    fragments compare equal. An ellipsis or a set-builder never has a plain number value."""
    import sympy

    return bool(_UNREADABLE.search(text)) and isinstance(parsed[0], sympy.Number)


def math_verify_task(reference: str, answer: str, timeout: int) -> str:
    """'correct' | 'incorrect' | 'timeout' | 'unparsed_gold' | 'no_parse'. Both sides are
    boxed so the same extraction path sees them (verl's recall-improving wrapper)."""
    from math_verify import parse, verify

    if not _CFG:
        init_worker(2048, 3600, 256)
    ext = _CFG["extraction"]
    _TimeoutFlag.hit = False
    gold = _parse_gold(reference, timeout)
    if not gold or _fragment(reference, gold):
        return "timeout" if _TimeoutFlag.hit else "unparsed_gold"
    pred = parse("\\boxed{" + answer + "}", extraction_config=ext, parsing_timeout=timeout)
    if not pred or _fragment(answer, pred):
        return "timeout" if _TimeoutFlag.hit else "no_parse"
    # float_rounding 8 (library: 6) so 0.142857 is not 1/7
    ok = verify(gold, pred, float_rounding=8, timeout_seconds=timeout)
    if ok:
        return "correct"
    return "timeout" if _TimeoutFlag.hit else "incorrect"
