"""Write every board to ``dashboards/json/<uid>.json``: ``python -m dashboards.build``.

``--check`` writes nothing and exits 1 when a file differs from what the code builds (CI runs
it, so the committed JSON never drifts from its source).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards.boards import BOARDS

JSON_DIR = Path(__file__).parent / "json"


def render(uid: str) -> dict[str, Any]:
    """The board as Grafana's dashboard JSON model, with panel ids numbered in order."""
    model = BOARDS[uid]().build()
    for i, panel in enumerate(model.panels or [], start=1):
        panel.id_val = i
    doc: dict[str, Any] = json.loads(JSONEncoder().encode(model))
    return doc


def text(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards.build", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a JSON file is stale")
    args = parser.parse_args(argv)
    stale = []
    JSON_DIR.mkdir(exist_ok=True)
    for uid in BOARDS:
        path = JSON_DIR / f"{uid}.json"
        want = text(render(uid))
        if path.exists() and path.read_text() == want:
            continue
        if args.check:
            stale.append(path.name)
        else:
            path.write_text(want)
            print(f"wrote {path}")
    expected = {f"{uid}.json" for uid in BOARDS}
    extra = sorted(p.name for p in JSON_DIR.glob("*.json") if p.name not in expected)
    if stale or extra:
        print(f"stale: {stale}; not built by any board: {extra}", file=sys.stderr)
        print("run: python -m dashboards.build", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
