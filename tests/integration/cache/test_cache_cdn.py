"""The L3 with a real edge: Debian's nginx (package ``nginx``) with ``proxy_cache`` in front of
the real control plane, purged through ``POST /admin/cdn/purge`` and ``/admin/cache/invalidate``
by the nginx cache-file purger. Also the CDN headers and the purge API's validation."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from tests_support import assert_problem, free_port

from control_plane.app import create_app
from control_plane.config import CdnConfig, ControlPlaneConfig
from haetae.cache import NginxPurger
from haetae.config import load

POLICY = "/api/v1/cache/policy"
NGINX = shutil.which("nginx", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
needs_nginx = pytest.mark.skipif(
    NGINX is None, reason="nginx not installed (CI: apt-get install -y nginx)"
)

NGINX_CONF = """\
{user}
daemon off;
master_process on;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy_temp;
    fastcgi_temp_path {root}/fastcgi_temp;
    uwsgi_temp_path {root}/uwsgi_temp;
    scgi_temp_path {root}/scgi_temp;
    proxy_cache_path {cache} levels=1:2 keys_zone=haetae:1m max_size=16m inactive=10m
                     use_temp_path=off;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_cache haetae;
            proxy_cache_key $scheme://$http_host$request_uri;
            add_header X-Cache-Status $upstream_cache_status always;
        }}
    }}
}}
"""


@dataclass
class Plane:
    client: TestClient[Any, Any]
    admin_token: str

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}


@dataclass
class Edge:
    url: str
    purger: NginxPurger

    def cached_file(self, path: str) -> Path:
        return self.purger.path_of(self.purger.key_of(self.url + path))


def plane_config(db_dsn: str, redis_url: str, tmp_path: Path, cdn: CdnConfig) -> ControlPlaneConfig:
    cfg = load(ControlPlaneConfig, "")
    return cfg.model_copy(
        update={
            "postgres": cfg.postgres.model_copy(update={"dsn": SecretStr(db_dsn)}),
            "redis": cfg.redis.model_copy(update={"url": SecretStr(redis_url)}),
            "auth": cfg.auth.model_copy(update={"bootstrap_token_file": tmp_path / "admin.token"}),
            "cdn": cdn,
        }
    )


@pytest.fixture
def edge_root(tmp_path: Path) -> Path:
    root = tmp_path / "edge"
    (root / "cache").mkdir(parents=True)
    return root


@pytest.fixture
async def plane(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    db_dsn: str,
    redis_url: str,
    tmp_path: Path,
    edge_root: Path,
) -> Plane:
    cdn = CdnConfig(provider="nginx", nginx_cache_dir=edge_root / "cache")
    client = await aiohttp_client(create_app(plane_config(db_dsn, redis_url, tmp_path, cdn)))
    return Plane(client, (tmp_path / "admin.token").read_text().strip())


@pytest.fixture
def nginx(plane: Plane, edge_root: Path) -> Iterator[Edge]:
    assert NGINX is not None
    port = free_port()
    conf = edge_root / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            # As root, nginx's workers would run as nobody and could not write our tmp dirs.
            user="user root root;" if os.geteuid() == 0 else "",
            root=edge_root,
            cache=edge_root / "cache",
            port=port,
            upstream=plane.client.server.port,
        )
    )
    proc = subprocess.Popen(
        [NGINX, "-p", str(edge_root), "-e", str(edge_root / "error.log"), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                assert proc.stderr is not None
                pytest.fail(f"nginx exited: {proc.stderr.read().decode()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("nginx did not start listening")
                time.sleep(0.05)
        yield Edge(f"http://127.0.0.1:{port}", NginxPurger(edge_root / "cache"))
    finally:
        proc.send_signal(signal.SIGQUIT)  # graceful stop
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.fixture
async def edge_client(nginx: Edge) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=nginx.url, timeout=5) as client:
        yield client


async def stored(edge: Edge) -> None:
    """nginx moves the cache file into place as the upstream response completes: wait for it."""
    deadline = time.monotonic() + 5
    while not edge.cached_file(POLICY).exists():
        assert time.monotonic() < deadline, "nginx never wrote the cache file"
        await asyncio.sleep(0.02)


async def cached_miss_then_hit(edge: Edge, client: httpx.AsyncClient) -> httpx.Response:
    first = await client.get(POLICY)
    assert first.status_code == 200, first.text
    assert first.headers["X-Cache-Status"] == "MISS"
    await stored(edge)
    second = await client.get(POLICY)
    assert second.headers["X-Cache-Status"] == "HIT"
    assert second.content == first.content
    assert second.headers["ETag"] == first.headers["ETag"]
    return second


@needs_nginx
async def test_edge_hits_revalidates_and_purges_by_url(
    plane: Plane, nginx: Edge, edge_client: httpx.AsyncClient
) -> None:
    hit = await cached_miss_then_hit(nginx, edge_client)
    etag = hit.headers["ETag"]
    assert hit.headers["Cache-Control"].startswith("public, max-age=60, s-maxage=300")

    not_modified = await edge_client.get(POLICY, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.headers["ETag"] == etag
    assert not_modified.content == b""

    resp = await plane.client.post(
        "/admin/cdn/purge", json={"urls": [nginx.url + POLICY]}, headers=plane.admin()
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["provider"] == "nginx" and body["removed"] == 1
    assert (await edge_client.get(POLICY)).headers["X-Cache-Status"] == "MISS"


@needs_nginx
async def test_edge_purges_by_tag_and_through_invalidate_l3(
    plane: Plane, nginx: Edge, edge_client: httpx.AsyncClient
) -> None:
    hit = await cached_miss_then_hit(nginx, edge_client)
    assert hit.headers["Surrogate-Key"] == "cache-policy"
    resp = await plane.client.post(
        "/admin/cdn/purge", json={"tags": ["cache-policy"]}, headers=plane.admin()
    )
    assert (await resp.json())["removed"] == 1
    assert (await edge_client.get(POLICY)).headers["X-Cache-Status"] == "MISS"

    await stored(nginx)
    assert (await edge_client.get(POLICY)).headers["X-Cache-Status"] == "HIT"
    resp = await plane.client.post(
        "/admin/cache/invalidate",
        json={"tags": ["cache-policy"], "layers": ["l1", "l2", "l3"]},
        headers=plane.admin(),
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["cdn"]["removed"] == 1 and body["complete"] is True
    assert (await edge_client.get(POLICY)).headers["X-Cache-Status"] == "MISS"


async def test_origin_sets_cdn_headers_and_answers_304(plane: Plane) -> None:
    resp = await plane.client.get(POLICY)
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == (
        "public, max-age=60, s-maxage=300, stale-while-revalidate=30"
    )
    assert resp.headers["Cache-Tag"] == "cache-policy"
    assert resp.headers["Surrogate-Key"] == "cache-policy"
    etag = resp.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    body = await resp.json()
    assert body["cdn"] == "nginx" and body["layers"] == ["l1", "l2", "l3"]

    for header in (etag, f'"other", W/{etag}', "*"):
        again = await plane.client.get(POLICY, headers={"If-None-Match": header})
        assert again.status == 304, header
        assert again.headers["ETag"] == etag
    other = await plane.client.get(POLICY, headers={"If-None-Match": '"other"'})
    assert other.status == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body.urls"),
        ([], "body"),
        ({"urls": "https://x/"}, "body.urls"),
        ({"urls": ["/relative"]}, "body.urls[0]"),
        ({"urls": ["http://[::1/"]}, "body.urls[0]"),  # urlsplit raises: was a 500
        ({"tags": ["a b"]}, "body.tags[0]"),
        ({"tags": [""]}, "body.tags[0]"),
        ({"tags": ["a\u0000b"]}, "body.tags[0]"),
        ({"prefixes": ["https://example.com/a"]}, "body.prefixes[0]"),
        ({"everything": "yes"}, "body.everything"),
        ({"everything": True, "tags": ["t"]}, "body.everything"),
        ({"hosts": ["example.com"]}, "body.hosts"),
    ],
)
async def test_purge_validates_input(plane: Plane, body: Any, field: str) -> None:
    resp = await plane.client.post("/admin/cdn/purge", json=body, headers=plane.admin())
    problem = await assert_problem(resp, 400)
    assert problem["field"] == field


async def test_purge_needs_admin_write(plane: Plane) -> None:
    resp = await plane.client.post("/admin/cdn/purge", json={"everything": True})
    await assert_problem(resp, 401)


async def test_invalidate_l3_rejects_key_prefixes(plane: Plane) -> None:
    resp = await plane.client.post(
        "/admin/cache/invalidate",
        json={"prefix": "page:", "layers": ["l3"]},
        headers=plane.admin(),
    )
    assert (await assert_problem(resp, 400))["field"] == "body.prefix"


@pytest.fixture
async def bare_plane(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    db_dsn: str,
    redis_url: str,
    tmp_path: Path,
) -> Plane:
    client = await aiohttp_client(
        create_app(plane_config(db_dsn, redis_url, tmp_path, CdnConfig()))
    )
    return Plane(client, (tmp_path / "admin.token").read_text().strip())


async def test_without_a_cdn_purges_are_refused(bare_plane: Plane) -> None:
    resp = await bare_plane.client.post(
        "/admin/cdn/purge", json={"everything": True}, headers=bare_plane.admin()
    )
    await assert_problem(resp, 409)
    resp = await bare_plane.client.post(
        "/admin/cache/invalidate",
        json={"tags": ["t"], "layers": ["l3"]},
        headers=bare_plane.admin(),
    )
    assert (await assert_problem(resp, 400))["field"] == "body.layers[0]"
    policy = await (await bare_plane.client.get(POLICY)).json()
    assert policy["layers"] == ["l1", "l2"] and policy["cdn"] == "none"


def test_cdn_config_cross_checks() -> None:
    with pytest.raises(ValueError, match="zone_id and api_token"):
        CdnConfig(provider="cloudflare", zone_id="z")
    with pytest.raises(ValueError, match="nginx_cache_dir"):
        CdnConfig(provider="nginx")


async def test_cloudflare_errors_become_problems(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    db_dsn: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    """The API against a local server speaking Cloudflare's purge API: success, then a 429
    (503 + Retry-After for our caller), then an error envelope (502 with Cloudflare's errors)."""
    answers = [
        (200, {}, {"success": True, "errors": [], "messages": [], "result": {"id": "p1"}}),
        (
            429,
            {"Retry-After": "30"},
            {"success": False, "errors": [{"code": 971, "message": "slow down"}]},
        ),
        (400, {}, {"success": False, "errors": [{"code": 1012, "message": "bad tags"}]}),
    ]
    seen: list[Any] = []

    async def purge_cache(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer cf-token"
        seen.append((request.match_info["zone"], await request.json()))
        status, headers, body = answers.pop(0)
        return web.json_response(body, status=status, headers=headers)

    fake = web.Application()
    fake.router.add_post("/client/v4/zones/{zone}/purge_cache", purge_cache)
    server = await aiohttp_server(fake)
    cdn = CdnConfig(
        provider="cloudflare",
        zone_id="zone-1",
        api_token=SecretStr("cf-token"),
        base_url=str(server.make_url("/")),
        max_retries=0,
    )
    client = await aiohttp_client(create_app(plane_config(db_dsn, redis_url, tmp_path, cdn)))
    admin = {"Authorization": "Bearer " + (tmp_path / "admin.token").read_text().strip()}

    resp = await client.post("/admin/cdn/purge", json={"tags": ["cache-policy"]}, headers=admin)
    assert resp.status == 200
    assert (await resp.json())["ids"] == ["p1"]
    resp = await client.post("/admin/cdn/purge", json={"everything": True}, headers=admin)
    problem = await assert_problem(resp, 503)
    assert resp.headers["Retry-After"] == "30"
    assert problem["errors"] == [{"code": 971, "message": "slow down"}]
    resp = await client.post(
        "/admin/cache/invalidate", json={"tags": ["t"], "layers": ["l3"]}, headers=admin
    )
    problem = await assert_problem(resp, 502)
    assert problem["errors"] == [{"code": 1012, "message": "bad tags"}]
    assert seen == [
        ("zone-1", {"tags": ["cache-policy"]}),
        ("zone-1", {"purge_everything": True}),
        ("zone-1", {"tags": ["t"]}),
    ]
