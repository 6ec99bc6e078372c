"""What the control plane accepts of a series (docs/wire-format.md, "Validation and limits").

The same bounds as its decode: one sample it would refuse gets the
whole report refused (and dead-lettered), so samples are checked before they are spooled: the
app scrape leaves such samples out (counted), a push answers 400 naming the field.
"""

from __future__ import annotations

import re

import orjson

# The values of haetae.web.validation, which the agent does not import at run time (it pulls in
# pydantic and aiohttp); tests/unit/agent/test_agent_wire.py keeps the two equal.
MAX_METRIC_NAME = 256
MAX_LABELS = 64
MAX_LABEL_NAME = 128
MAX_LABEL_VALUE = 1024
MAX_LABEL_SET_BYTES = 2048

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def series_problem(name: str, labels: dict[str, str]) -> tuple[str, str] | None:
    """None if the control plane accepts ``name`` and ``labels``; else the field at fault
    (``name``, ``labels``, ``labels.<name>``) and why."""
    if len(name) > MAX_METRIC_NAME or _NAME.fullmatch(name) is None:
        return "name", f"[a-zA-Z_:][a-zA-Z0-9_:]*, at most {MAX_METRIC_NAME} characters"
    if len(labels) > MAX_LABELS:
        return "labels", f"more than {MAX_LABELS} labels"
    for key, value in labels.items():
        if len(key) > MAX_LABEL_NAME or _LABEL_NAME.fullmatch(key) is None:
            return "labels", f"{key[:64]!r} is not a label name"
        if len(value) > MAX_LABEL_VALUE:
            return f"labels.{key}", f"longer than {MAX_LABEL_VALUE} characters"
        if "\x00" in value:
            return f"labels.{key}", "must not contain a NUL character"
    try:
        stored = orjson.dumps(labels, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # a lone surrogate (e.g. a process name decoded with surrogateescape)
        return "labels", "not valid UTF-8"
    if len(stored) > MAX_LABEL_SET_BYTES:
        return "labels", f"{len(stored)} bytes as stored, over the limit of {MAX_LABEL_SET_BYTES}"
    return None
