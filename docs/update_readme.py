"""Regenerate the generated parts of README.md from the code (run after changing reason codes).

    python docs/update_readme.py          # rewrite README.md in place
    python docs/update_readme.py --check  # exit 1 if README.md is out of date

The reason-code table lives between ``<!-- reason-codes:begin -->`` and ``<!-- reason-codes:end -->``
and is built from :data:`onnx2litert.errors.REASON_DESCRIPTIONS`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEGIN = "<!-- reason-codes:begin -->"
END = "<!-- reason-codes:end -->"


def reason_table() -> str:
    """The markdown table of every reason code, in declaration order."""
    sys.path.insert(0, str(REPO))
    from onnx2litert.errors import REASON_DESCRIPTIONS, Reason

    rows = ["| reason code | meaning |", "|---|---|"]
    rows += [f"| `{r.value}` | {REASON_DESCRIPTIONS[r]} |" for r in Reason]
    return "\n".join(rows)


def render(readme: str) -> str:
    """README text with the generated block replaced."""
    head, sep, rest = readme.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError(f"README.md lacks the {BEGIN} ... {END} markers")
    return f"{head}{BEGIN}\n{reason_table()}\n{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when out of date")
    args = parser.parse_args()
    path = REPO / "README.md"
    old = path.read_text()
    new = render(old)
    if args.check:
        if new != old:
            print("README.md is out of date: run python docs/update_readme.py", file=sys.stderr)
            return 1
        return 0
    path.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
