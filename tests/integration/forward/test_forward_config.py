"""The ``forward`` config section: strict, one kind of auth, secrets redacted, env overrides."""

from __future__ import annotations

import pytest

from control_plane.config import ControlPlaneConfig, load_config
from haetae.config import ConfigError, load, redacted


def forward_yaml(body: str) -> ControlPlaneConfig:
    return load(ControlPlaneConfig, "forward:\n" + body)


def test_off_by_default_and_a_full_section_loads() -> None:
    assert load(ControlPlaneConfig, "").forward.url is None
    cfg = forward_yaml(
        "  url: https://vm.example/api/v1/write\n"
        "  bearer_token: tok\n"
        "  external_labels: {cluster: prod}\n"
        "  max_samples_per_request: 2000\n"
        "  max_in_flight: 2\n"
        "  timeout_s: 10\n"
    ).forward
    assert cfg.url == "https://vm.example/api/v1/write"
    assert cfg.external_labels == {"cluster": "prod"}
    assert (cfg.max_samples_per_request, cfg.max_in_flight, cfg.timeout_s) == (2000, 2, 10.0)
    assert redacted(cfg)["bearer_token"] == "**********"


@pytest.mark.parametrize(
    "body",
    [
        "  url: ftp://vm/api/v1/write\n",
        "  url: http://vm/w\n  bearer_token: t\n  basic_auth_username: u\n",
        "  url: http://vm/w\n  basic_auth_password: p\n",
        "  url: http://vm/w\n  retry_base_s: 10\n  retry_max_s: 1\n",
        "  url: http://vm/w\n  max_in_flight: 0\n",
        "  url: http://vm/w\n  batch: 5\n",  # unknown key
    ],
)
def test_bad_sections_are_refused(body: str) -> None:
    with pytest.raises(ConfigError):
        forward_yaml(body)


def test_environment_overrides_set_the_url_and_secret() -> None:
    env = {
        "HAETAE_FORWARD_URL": "http://vm:8428/api/v1/write",
        "HAETAE_FORWARD_BASIC_AUTH_USERNAME": "vm",
        "HAETAE_FORWARD_BASIC_AUTH_PASSWORD": "s3cret",
    }
    cfg = load_config(None, env).forward
    assert cfg.url == "http://vm:8428/api/v1/write"
    assert cfg.basic_auth_password is not None
    assert cfg.basic_auth_password.get_secret_value() == "s3cret"
