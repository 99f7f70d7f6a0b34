"""The blocking client is generated from the async one (scripts/unasync.py), so they
cannot drift: the file is current, and both expose the same methods and signatures."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

from hero_client import AsyncHeroClient, HeroClient

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "unasync.py"


def test_sync_client_is_generated_from_the_async_one() -> None:
    spec = importlib.util.spec_from_file_location("unasync", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--check"]) == 0, "run: python scripts/unasync.py"


def _public(cls: type) -> dict[str, inspect.Signature]:
    return {
        n: inspect.signature(f)
        for n, f in inspect.getmembers(cls, inspect.isfunction)
        if not n.startswith("_") or n in ("__init__",)
    }


def test_same_methods_same_signatures() -> None:
    sync, asyn = _public(HeroClient), _public(AsyncHeroClient)
    assert sorted(sync) == sorted(asyn)
    for name, sig in sync.items():
        a = asyn[name]
        assert list(sig.parameters) == list(a.parameters), name
        for p, q in zip(sig.parameters.values(), a.parameters.values(), strict=True):
            assert (p.kind, p.default) == (q.kind, q.default) or name == "__init__", (name, p)
        fn = getattr(AsyncHeroClient, name)
        assert name == "__init__" or inspect.iscoroutinefunction(fn), name
