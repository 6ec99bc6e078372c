"""Asking promtool what Prometheus gets for PromQL expressions, for parity tests.

``promtool test rules`` with empty expectations prints, for each expression and evaluation time,
what Prometheus's engine got; this reads that back as label set -> value.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import yaml

PROMTOOL = shutil.which("promtool")

Result = dict[frozenset[tuple[str, str]], float]
# (name, labels, values); a value None is a missing sample ("_").
Series = tuple[str, dict[str, str], Sequence[float | None]]

_GOT = re.compile(r'expr: "((?:[^"\\]|\\.)*)", time: (\S+),\n.*?\n\s*got: (.*)')
_SAMPLE = re.compile(r"([a-zA-Z_:][\w:]*)?\{([^}]*)\} (\S+?)(?:, |$)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def promtool_results(
    tmp_path: Path, series: Sequence[Series], exprs: Sequence[str], eval_times: Sequence[str]
) -> tuple[dict[tuple[str, float], Result], str]:
    """Prometheus's value of every expression at every time (series at 1 m intervals), and
    promtool's whole output (for errors)."""
    assert PROMTOOL is not None
    (tmp_path / "rules.yml").write_text("groups: []\n")
    input_series = []
    for name, labels, values in series:
        selector = name + "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
        text = " ".join("_" if v is None else repr(v) for v in values)
        input_series.append({"series": selector, "values": text})
    test = {
        "interval": "1m",
        "input_series": input_series,
        "promql_expr_test": [
            {"expr": e, "eval_time": t, "exp_samples": []} for e in exprs for t in eval_times
        ],
    }
    doc = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": [test]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(doc))
    proc = subprocess.run(
        [PROMTOOL, "test", "rules", "test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out = proc.stdout + proc.stderr
    results: dict[tuple[str, float], Result] = {}
    for m in _GOT.finditer(out):
        expr = m[1].replace('\\"', '"').replace("\\n", "\n")
        results[(expr, seconds(m[2]))] = _parse_got(m[3])
    return results, out


def seconds(text: str) -> float:
    """``1h2m3s`` -> 3723."""
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    assert m, text
    return int(m[1] or 0) * 3600 + int(m[2] or 0) * 60 + int(m[3] or 0)


def _parse_got(text: str) -> Result:
    got: Result = {}
    if text.strip() == "nil":
        return got
    for m in _SAMPLE.finditer(text.strip()):
        labels = dict(_LABEL.findall(m[2]))
        if m[1]:
            labels["__name__"] = m[1]
        got[frozenset(labels.items())] = float(m[3])
    return got
