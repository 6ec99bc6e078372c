"""The agent's lean run-time entry: ``python -m agent --settings-fd N``.

``haetae agent`` validates the config (``agent.config``, pydantic + YAML), writes the validated
tree as JSON to an anonymous file and replaces itself with this entry, which reads the tree from
that inherited descriptor and runs the agent without ever importing pydantic or PyYAML.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agent", description="Run the agent (started by `haetae agent`)."
    )
    parser.add_argument(
        "--settings-fd",
        type=int,
        required=True,
        help="descriptor to read the validated settings (JSON) from",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)

    from agent.service import main_async
    from agent.settings import from_json
    from haetae.logs import setup_logging

    with os.fdopen(args.settings_fd, "rb") as f:
        settings = from_json(f.read())
    setup_logging(args.log_level, service="haetae-agent")
    asyncio.run(main_async(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
