"""dashboards/ is a build tool beside the packages, not installed with them: import it from the
repository root; the data test starts its processes with tests/e2e's stack helpers."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for path in (ROOT, ROOT / "tests" / "e2e"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
