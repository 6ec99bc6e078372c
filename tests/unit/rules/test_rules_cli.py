from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from control_plane.rules.cli import main

REPO_RULES = Path(__file__).resolve().parents[3] / "rules"


def test_check_reports_rules_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(REPO_RULES / "defaults.yml")]) == 0
    assert "SUCCESS" in capsys.readouterr().out
    bad = tmp_path / "bad.yml"
    bad.write_text("groups: [{name: g, rules: [{alert: A, expr: 'rate(x[5m) > 1'}]}]")
    assert main(["check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.yml" in err and "position 9" in err
    assert main(["check", str(tmp_path / "missing.yml")]) == 1


def test_export_prometheus(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--format", "prometheus", str(REPO_RULES)]) == 0
    doc = yaml.safe_load(capsys.readouterr().out)
    names = [r["alert"] for r in doc["groups"][0]["rules"]]
    assert "CacheHitRatioDrop" in names
