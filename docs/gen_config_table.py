"""The README configuration table, generated from the Settings object (the single source).

python docs/gen_config_table.py          # print it
python docs/gen_config_table.py --write  # replace it in README.md
"""

from __future__ import annotations

import sys
from pathlib import Path

from hero_service.config import Settings

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- config-table -->", "<!-- /config-table -->"


def table() -> str:
    rows = ["| setting (env / flag) | default | meaning |", "|---|---|---|"]
    for name, f in Settings.model_fields.items():
        default = f.get_default(call_default_factory=True)
        flag = "--" + name.replace("_", "-")
        desc = (f.description or "").replace("|", "\\|")
        rows.append(f"| `HERO_{name.upper()}` / `{flag}` | `{default!r}` | {desc} |")
    return "\n".join(rows)


def render_readme(text: str) -> str:
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table()}\n{END}{tail}"


if __name__ == "__main__":
    if "--write" in sys.argv:
        README.write_text(render_readme(README.read_text()))
    else:
        print(table())
