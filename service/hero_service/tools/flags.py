"""Every Settings field as a command-line flag (`hero serve`, `hero score`), with its
env var, default and choices in --help."""

from __future__ import annotations

import argparse
from typing import Any, Literal, get_args, get_origin

from pydantic.fields import FieldInfo

from hero_service.config import Settings


def _choices(annotation: Any) -> list[str] | None:
    """The allowed values of a Literal (or bool) setting, for --help and argparse."""
    if annotation is bool:
        return ["true", "false"]
    if get_origin(annotation) is Literal:
        return [str(a) for a in get_args(annotation)]
    return None


def default_text(f: FieldInfo) -> str:
    d = f.get_default(call_default_factory=True)
    if d is None:
        return "unset"
    if isinstance(d, list):
        return ",".join(d) or "empty"
    if isinstance(d, bool):
        return str(d).lower()
    return repr(d) if d == "" else str(d)


def add_settings_flags(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    for name, f in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        choices = _choices(f.annotation)
        help_ = (f.description or "") + f" [env HERO_{name.upper()}; default {default_text(f)}"
        help_ += f"; one of {', '.join(choices)}]" if choices else "]"
        p.add_argument(
            flag,
            dest=name,
            default=None,
            choices=None if f.annotation is bool else choices,  # pydantic also takes 1/0, yes/no
            metavar=name.upper(),
            help=help_.replace("%", "%%"),
        )


def settings_from(ns: argparse.Namespace) -> Settings:
    given: dict[str, Any] = {
        k: v for k, v in vars(ns).items() if k in Settings.model_fields and v is not None
    }
    if "auth_tokens" in given:
        given["auth_tokens"] = [t for t in given["auth_tokens"].split(",") if t]
    return Settings(**given)
