"""Generate client/hero_client/_sync.py (HeroClient) from _async.py (AsyncHeroClient), as
httpx does with its unasync step: one source, so the two clients cannot drift apart.

    python scripts/unasync.py          # rewrite _sync.py
    python scripts/unasync.py --check  # exit 1 if _sync.py is not what this would write
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

CLIENT = Path(__file__).resolve().parent.parent / "client" / "hero_client"

# (pattern, replacement), applied in order to the async source
RULES: list[tuple[str, str]] = [
    (
        r'\A"""The asyncio client, `AsyncHeroClient`\. The blocking `HeroClient` \(_sync\.py\) '
        r'is generated\nfrom this file by scripts/unasync\.py: edit here, then run the script\."""',
        '"""The blocking client, `HeroClient`. GENERATED from _async.py by scripts/unasync.py:\n'
        'do not edit; edit _async.py and run the script (tests/test_client_sync.py checks)."""',
    ),
    (r"^import asyncio\n", ""),
    (r"\bAwaitable, ", ""),
    (
        r"Callable\[\[float\], Awaitable\[None\]\] = asyncio\.sleep",
        "Callable[[float], None] = time.sleep",
    ),
    (r"\bAsyncHeroClient\b", "HeroClient"),
    (r"\bAsyncRetrying\b", "Retrying"),
    (r"\bhttpx\.AsyncBaseTransport\b", "httpx.BaseTransport"),
    (r"\bhttpx\.AsyncClient\b", "httpx.Client"),
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\.aclose\(\)", ".close()"),
    (r"\basync def ", "def "),
    (r"\basync with ", "with "),
    (r"\basync for ", "for "),
    (r"\bawait ", ""),
    (r"Asyncio client", "Blocking client"),
]


def unasync(source: str) -> str:
    for pattern, repl in RULES:
        source = re.sub(pattern, repl, source, flags=re.M)
    return source


def main(argv: list[str]) -> int:
    want = unasync((CLIENT / "_async.py").read_text(encoding="utf-8"))
    target = CLIENT / "_sync.py"
    if "--check" in argv:
        if target.read_text(encoding="utf-8") != want:
            print(f"{target} is stale: run python scripts/unasync.py", file=sys.stderr)
            return 1
        return 0
    target.write_text(want, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
