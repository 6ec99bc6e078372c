"""What can go wrong with a rule, grouped by what the caller does next.

:class:`ExprError` is misuse (a bad expression: fix it, the position says where);
:class:`RuleError` is a bad rule definition (a field other than the expression). Both are
permanent: retrying the same input fails the same way.
"""

from __future__ import annotations


class RuleError(ValueError):
    """A rule definition is wrong; ``field`` names the key at fault (``for``, ``labels.x``)."""

    def __init__(self, field: str, message: str, *, source: str | None = None) -> None:
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{field}: {message}")
        self.field = field
        self.message = message
        self.source = source


class ExprError(RuleError):
    """An expression does not parse or does not type-check; ``position`` is the 0-based offset
    of the offending character in the expression text."""

    def __init__(self, message: str, position: int, *, source: str | None = None) -> None:
        super().__init__("expr", f"{message} (at position {position})", source=source)
        self.detail = message
        self.position = position
