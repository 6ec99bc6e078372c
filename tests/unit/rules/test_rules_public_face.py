from __future__ import annotations

import importlib
import types

import pytest


@pytest.mark.parametrize(
    "package", ["control_plane.rules", "control_plane.alerting", "control_plane.alerting.channels"]
)
def test_public_face_matches_all(package: str) -> None:
    mod = importlib.import_module(package)
    exported = {
        name
        for name, value in vars(mod).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert exported == set(mod.__all__)
