"""The link_analyzer config section: strict keys, per-platform TTLs, the Gemini key fallback."""

from __future__ import annotations

from pathlib import Path

import pytest

from control_plane.config import load_config
from haetae.config import ConfigError
from link_analyzer.config import LinkAnalyzerConfig
from link_analyzer.platforms import Platform
from link_analyzer.service import gemini_settings


def test_defaults_and_ttl_override(tmp_path: Path) -> None:
    path = tmp_path / "cp.yaml"
    path.write_text("link_analyzer:\n  cache:\n    ttl_s:\n      youtube: 60\n")
    cfg = load_config(path, env={}).link_analyzer
    assert cfg.cache.ttl_for(Platform.YOUTUBE) == 60
    assert cfg.cache.ttl_for(Platform.X) == 1800  # others keep their defaults
    assert cfg.fetch.max_redirects == 5 and cfg.fetch.allow_networks == []


@pytest.mark.parametrize(
    ("yaml", "key"),
    [
        ("link_analyzer:\n  cache:\n    ttl_s:\n      myspace: 60\n", "link_analyzer.cache.ttl_s"),
        ("link_analyzer:\n  fetch:\n    max_redirects: 9\n", "link_analyzer.fetch.max_redirects"),
        ("link_analyzer:\n  fetch:\n    allow_networks: [nonsense]\n", "link_analyzer.fetch"),
        ("link_analyzer:\n  typo: 1\n", "link_analyzer.typo"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, yaml: str, key: str) -> None:
    path = tmp_path / "cp.yaml"
    path.write_text(yaml)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert key in str(info.value)


def test_gemini_key_from_config_env_or_absent() -> None:
    assert gemini_settings(LinkAnalyzerConfig(), env={}) is None
    assert gemini_settings(LinkAnalyzerConfig(), env={"GEMINI_API_KEY": "  "}) is None
    from_env = gemini_settings(LinkAnalyzerConfig(), env={"GEMINI_API_KEY": "k1"})
    assert from_env is not None and from_env.api_key == "k1" and from_env.api_version == "v1beta"
    cfg = load_config(None, env={"HAETAE_LINK_ANALYZER_GEMINI_API_KEY": "k2"}).link_analyzer
    got = gemini_settings(cfg, env={"GEMINI_API_KEY": "k1"})
    assert got is not None and got.api_key == "k2"
    assert "k2" not in repr(cfg)  # the key is a secret
