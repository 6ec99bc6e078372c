"""The rules in force: those of the ``rules/`` folder plus those made through the API.

File rules are re-read when a file in the folder changes (a bad edit is logged and the previous
rules stay); API rules are re-read when the table changes, so every control plane sees edits
made through any of them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from control_plane.rules.errors import RuleError
from control_plane.rules.files import load_rules_dir
from control_plane.rules.model import Rule
from control_plane.rules.store import AlertStore


class RuleSet:
    def __init__(
        self, store: AlertStore, rules_dir: Path | None, *, log: logging.Logger | None = None
    ) -> None:
        self._store = store
        self._dir = rules_dir
        self._log = log or logging.getLogger("control_plane.rules")
        self._file_rules: dict[str, Rule] = {}
        self._api_rules: dict[str, Rule] = {}
        self._dir_stamp: tuple[Any, ...] | None = None
        self._api_version: tuple[Any, ...] | None = None

    @property
    def rules(self) -> Mapping[str, Rule]:
        # File rules win; the API refuses to create a rule with a file rule's name.
        return {**self._api_rules, **self._file_rules}

    @property
    def file_rules(self) -> Mapping[str, Rule]:
        return self._file_rules

    async def load(self) -> None:
        """First load: a bad rule file is an error (the process should not start with it)."""
        self._dir_stamp = self._stamp()
        self._file_rules = self._read_dir()
        await self._read_api()

    async def refresh(self) -> bool:
        """Re-read what changed; True when the rules in force changed."""
        changed = False
        stamp = self._stamp()
        if stamp != self._dir_stamp:
            self._dir_stamp = stamp
            try:
                rules = self._read_dir()
            except (RuleError, OSError) as exc:
                self._log.error("rule files not reloaded, keeping the previous rules: %s", exc)
            else:
                changed = rules != self._file_rules
                self._file_rules = rules
                self._log.info("reloaded %d file rules", len(rules))
        version = await self._store.rules_version()
        if version != self._api_version:
            before = self._api_rules
            await self._read_api(version)
            changed = changed or before != self._api_rules
        return changed

    def _read_dir(self) -> dict[str, Rule]:
        if self._dir is None:
            return {}
        return {r.name: r for r in load_rules_dir(self._dir)}

    async def _read_api(self, version: tuple[Any, ...] | None = None) -> None:
        self._api_version = version or await self._store.rules_version()
        self._api_rules = {s.rule.name: s.rule for s in await self._store.api_rules()}

    def _stamp(self) -> tuple[Any, ...] | None:
        if self._dir is None or not self._dir.is_dir():
            return None
        return tuple(
            sorted(
                (p.name, st.st_mtime_ns, st.st_size)
                for p in self._dir.iterdir()
                if p.suffix in (".yml", ".yaml") and (st := p.stat())
            )
        )
