"""Locust load scenario for the link-analyzer API (issue 5, section 7).

Not a pytest module (pytest collects ``test_*.py`` only). Run against ``haetae up``::

    export HAETAE_TOKEN="$(cat .haetae/admin.token)"
    locust -f tests/performance/locustfile.py --host http://127.0.0.1:8340
    # or headless: --headless -u 20 -r 5 -t 2m

The analyzer only fetches globally routable addresses. To load-test with local pages (the demo
app's, by default) start the stack with loopback allowed::

    HAETAE_LINK_ANALYZER_FETCH_ALLOW_NETWORKS='[127.0.0.0/8]' haetae up

Environment:

* ``HAETAE_TOKEN``: an admin token with the ``write`` and ``read`` scopes (required).
* ``HAETAE_LOCUST_URLS``: comma-separated pages to analyse (default: a few demo-app pages).
  The first few form the *hot set* (analysed once, then cache hits); fresh URLs are made from
  them with a unique ``lt`` query parameter (other than tracking parameters, query parameters are
  part of the cache key), so each is a cache miss.
* ``HAETAE_LOCUST_POLL_S`` / ``HAETAE_LOCUST_POLL_MAX_S``: status polling interval and budget.

Request names group the statistics: ``analyze [hot]`` (cache hits after the first round),
``analyze [fresh]`` (uncached, synchronous, may answer 202 past the sync deadline),
``analyze/async``, ``status``, ``cache/stats``.
"""

from __future__ import annotations

import os
import time
import uuid
from urllib.parse import urlencode, urlsplit, urlunsplit

from locust import HttpUser, between, events, task

DEFAULT_URLS = (
    "http://127.0.0.1:8342/health,http://127.0.0.1:8342/metrics,http://127.0.0.1:8342/work"
)
URLS = [u.strip() for u in os.environ.get("HAETAE_LOCUST_URLS", DEFAULT_URLS).split(",") if u]
HOT = URLS[:5]
POLL_S = float(os.environ.get("HAETAE_LOCUST_POLL_S", "0.25"))
POLL_MAX_S = float(os.environ.get("HAETAE_LOCUST_POLL_MAX_S", "30"))
TERMINAL = {"done", "dead"}


def fresh(url: str) -> str:
    """The same page under a URL no one has analysed yet."""
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode({"lt": uuid.uuid4().hex[:12]})) if q)
    return urlunsplit(parts._replace(query=query))


@events.init.add_listener
def _check_token(environment: object, **_kw: object) -> None:
    if not os.environ.get("HAETAE_TOKEN"):
        raise SystemExit("set HAETAE_TOKEN to an admin token (e.g. $(cat .haetae/admin.token))")


class LinkAnalyzerUser(HttpUser):
    wait_time = between(0.2, 1.0)

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {os.environ['HAETAE_TOKEN']}"

    def _analyze(self, url: str, name: str) -> None:
        with self.client.post(
            "/api/v1/analyze", json={"url": url}, name=name, catch_response=True
        ) as resp:
            if resp.status_code in (200, 202):
                resp.success()
            elif resp.status_code in (422, 502, 504):
                # The service answered as designed about a bad page (problem+json); the
                # load test measures the service, so these are not its failures.
                resp.success()
            else:
                resp.failure(f"{resp.status_code}: {resp.text[:200]}")

    @task(6)
    def analyze_hot(self) -> None:
        self._analyze(HOT[int(time.monotonic() * 1000) % len(HOT)], "analyze [hot]")

    @task(1)
    def analyze_fresh(self) -> None:
        self._analyze(fresh(URLS[int(time.monotonic() * 1000) % len(URLS)]), "analyze [fresh]")

    @task(2)
    def analyze_async_and_poll(self) -> None:
        url = fresh(URLS[int(time.monotonic() * 1000) % len(URLS)])
        with self.client.post(
            "/api/v1/analyze/async",
            json={"url": url, "priority": "normal"},
            name="analyze/async",
            catch_response=True,
        ) as resp:
            if resp.status_code != 202:
                resp.failure(f"{resp.status_code}: {resp.text[:200]}")
                return
            status_url = resp.json()["status_url"]
        deadline = time.monotonic() + POLL_MAX_S
        while time.monotonic() < deadline:
            with self.client.get(status_url, name="status", catch_response=True) as resp:
                if resp.status_code != 200:
                    resp.failure(f"{resp.status_code}: {resp.text[:200]}")
                    return
                if resp.json()["status"] in TERMINAL:
                    return
            time.sleep(POLL_S)
        events.request.fire(
            request_type="POLL",
            name="status [not finished in budget]",
            response_time=POLL_MAX_S * 1000,
            response_length=0,
            exception=TimeoutError(f"{status_url} not finished within {POLL_MAX_S:g} s"),
            context={},
        )

    @task(1)
    def cache_stats(self) -> None:
        self.client.get("/api/v1/cache/stats", name="cache/stats")
