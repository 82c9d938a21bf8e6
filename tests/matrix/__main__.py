"""python -m tests.matrix: play the fault matrix, keep its records, rewrite the README's table.

python -m tests.matrix                 play it, save the records, rewrite README.md
python -m tests.matrix --from-records  rewrite README.md from the saved records (no playing)
python -m tests.matrix --check         play it and exit 1, showing the diff, if README.md differs
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from tests.matrix.columns import COLUMNS
from tests.matrix.records import Records
from tests.matrix.rows import ROWS
from tests.matrix.run import timed
from tests.matrix.table import current, section, write_readme

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"
RECORDS = ROOT / "test-artifacts" / "fault-matrix" / "records.json"


def diff(readme: Path, block: str) -> str:
    """What rewriting the README's matrix would change, as a unified diff ("" when nothing)."""
    old = current(readme.read_text(encoding="utf-8"))
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), block.splitlines(keepends=True), "README.md", "generated", n=0
    )
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.matrix", description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=Path, default=RECORDS, help=f"the records file (default {RECORDS})")
    parser.add_argument("--from-records", action="store_true", help="write the table from the saved records")
    parser.add_argument("--check", action="store_true", help="only compare with README.md; exit 1 on a difference")
    parser.add_argument("--readme", type=Path, default=README, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.from_records:
        records = Records.load(args.records)
    else:
        records, took = timed(ROWS, COLUMNS)
        records.save(args.records)
        print(f"played {len(records.cells)} cells in {took:.1f} s; records in {args.records}", file=sys.stderr)
    block = section(records, ROWS, COLUMNS)
    if args.check:
        changes = diff(args.readme, block)
        print(changes or f"{args.readme} is up to date")
        return 1 if changes else 0
    changed = write_readme(args.readme, block)
    print(f"{args.readme}: {'rewritten' if changed else 'unchanged'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
