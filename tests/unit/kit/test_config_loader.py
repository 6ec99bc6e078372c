from pathlib import Path

import pytest
from pydantic import SecretStr

from agent.config import AgentConfig
from control_plane.config import ControlPlaneConfig, load_config
from haetae.config import ConfigError, load, load_file, redacted


def test_defaults_load_from_empty_text() -> None:
    cfg = load(ControlPlaneConfig, "")
    assert cfg.http.port == 8340
    assert cfg.postgres.dsn is None


def test_unknown_key_is_rejected_with_its_path_and_source() -> None:
    with pytest.raises(ConfigError) as err:
        load(ControlPlaneConfig, "ingest:\n  retention_dayz: 3\n", source="cp.yaml")
    assert err.value.key == "ingest.retention_dayz"
    assert err.value.source == "cp.yaml"
    assert "unknown key" in str(err.value)


def test_wrong_type_names_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        load(ControlPlaneConfig, "http:\n  port: high\n")
    assert err.value.key == "http.port"


def test_invalid_yaml_and_non_mapping_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="invalid YAML"):
        load(ControlPlaneConfig, "http: [", source="x.yaml")
    with pytest.raises(ConfigError, match="mapping"):
        load(ControlPlaneConfig, "- a\n- b\n")


def test_env_overrides_walk_fields_with_underscores() -> None:
    env = {
        "HAETAE_POSTGRES_DSN": "postgresql://db/x",
        "HAETAE_POSTGRES_POOL_MAX_SIZE": "42",
        "HAETAE_RETENTION_RETENTION_DAYS": "3",
        "HAETAE_NOT_A_FIELD": "ignored",
        "OTHER": "1",
    }
    cfg = load(ControlPlaneConfig, "http:\n  port: 1\n", env=env, env_prefix="HAETAE")
    assert cfg.postgres.dsn is not None
    assert cfg.postgres.dsn.get_secret_value() == "postgresql://db/x"
    assert cfg.postgres.pool_max_size == 42
    assert cfg.retention.retention_days == 3
    assert cfg.http.port == 1


def test_env_error_names_the_variable() -> None:
    with pytest.raises(ConfigError) as err:
        load(ControlPlaneConfig, "", env={"HAETAE_HTTP_PORT": "-5"}, env_prefix="HAETAE")
    assert err.value.source == "$HAETAE_HTTP_PORT"
    assert err.value.key == "http.port"


def test_secrets_are_redacted_when_printed() -> None:
    cfg = load(ControlPlaneConfig, "postgres:\n  dsn: postgresql://u:pw@h/db\n")
    dumped = redacted(cfg)
    assert dumped["postgres"]["dsn"] == "**********"
    assert "pw" not in repr(cfg)
    assert isinstance(cfg.postgres.dsn, SecretStr)


def test_load_file_reports_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_file(ControlPlaneConfig, tmp_path / "nope.yaml")


def test_control_plane_load_config_reads_file_and_env(tmp_path: Path) -> None:
    path = tmp_path / "cp.yaml"
    path.write_text("logging:\n  level: DEBUG\n")
    cfg = load_config(path, env={"HAETAE_HTTP_PORT": "9000"})
    assert cfg.logging.level == "DEBUG"
    assert cfg.http.port == 9000


def test_agent_config_rejects_unknown_collector_and_short_interval() -> None:
    with pytest.raises(ConfigError, match="unknown collector 'gpu'"):
        load(AgentConfig, "collectors: [host, gpu]\n")
    with pytest.raises(ConfigError) as err:
        load(AgentConfig, "interval_s: 0.1\n")
    assert err.value.key == "interval_s"


def test_example_configs_in_deploy_are_valid() -> None:
    root = Path(__file__).resolve().parents[3] / "deploy"
    load_file(ControlPlaneConfig, root / "control-plane.yaml")
    load_file(AgentConfig, root / "agent.yaml")
