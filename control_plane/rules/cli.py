"""``rules check FILE...`` and ``rules export --format prometheus [DIR]``: the commands behind
``haetae rules`` (also runnable as ``python -m control_plane.rules``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from control_plane.rules.errors import RuleError
from control_plane.rules.files import export_prometheus, load_rules_dir, load_rules_text


def build_parser(prog: str = "haetae rules") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Check and export alerting rules.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="validate rule files (expressions, durations, templates)")
    check.add_argument("files", nargs="+", type=Path)
    export = sub.add_parser("export", help="print the rules as one Prometheus rule file")
    export.add_argument("--format", choices=["prometheus"], default="prometheus")
    export.add_argument("folder", nargs="?", type=Path, default=Path("rules"))
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str = "haetae rules") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        if args.command == "check":
            total = 0
            for path in args.files:
                rules = load_rules_text(path.read_text(encoding="utf-8"), source=str(path))
                total += len(rules)
                print(f"{path}: {len(rules)} rules OK")
            print(f"SUCCESS: {total} rules found")
            return 0
        sys.stdout.write(export_prometheus(load_rules_dir(args.folder)))
        return 0
    except RuleError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"FAILED: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
