"""Static target checks (no DNS): bare words are bad input, internal targets are SSRF refusals."""

from __future__ import annotations

import pytest

from link_analyzer.errors import SsrfRefused
from link_analyzer.ssrf import AddressPolicy
from link_analyzer.targets import checked_target
from link_analyzer.urls import UrlRefused

PRODUCTION = AddressPolicy()
LOOPBACK_ALLOWED = AddressPolicy.allowing(["127.0.0.0/8"])


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/",
        "http://LOCALHOST:8080/x",
        "http://localhost./",
        "http://app.localhost/",
        "http://127.0.0.1/",
        "http://2130706433/",
        "http://[::1]/",
        "http://[fe80::1]/",
        "http://10.1.2.3/",
        "http://169.254.169.254/",
        "http://metadata.google.internal/",
        "http://nas.local/",
        "http://db.corp/",
        "http://host.localdomain/",
    ],
)
def test_internal_targets_are_ssrf_refusals(url: str) -> None:
    with pytest.raises(SsrfRefused) as info:
        checked_target(url, PRODUCTION)
    assert not info.value.retryable


@pytest.mark.parametrize("url", ["not-a-number", "https://wiki/page", "http://intranet:8080/"])
def test_bare_words_are_bad_input(url: str) -> None:
    with pytest.raises(UrlRefused) as info:
        checked_target(url, PRODUCTION)
    assert "bare word" in info.value.detail


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/a",
        "example.com/a",
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        "http://93.184.216.34/",
        "http://[2606:2800:220:1:248:1893:25c8:1946]/",
        "https://xn--bcher-kva.example/",
        "https://localhost.example.com/",  # a public name that merely starts like one
    ],
)
def test_public_targets_pass_to_the_guard(url: str) -> None:
    assert checked_target(url, PRODUCTION).key


def test_an_allow_list_lets_its_networks_and_loopback_names_through() -> None:
    assert checked_target("http://127.0.0.1:8080/", LOOPBACK_ALLOWED)
    assert checked_target("http://localhost:8080/", LOOPBACK_ALLOWED)
    with pytest.raises(SsrfRefused):
        checked_target("http://10.0.0.1/", LOOPBACK_ALLOWED)
    with pytest.raises(SsrfRefused):
        checked_target("http://printer.local/", LOOPBACK_ALLOWED)
