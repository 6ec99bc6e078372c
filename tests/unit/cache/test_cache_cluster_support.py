"""Which Redis Cluster clients get the L2's per-master fast path (the rest keep redis-py's)."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import LoadBalancingStrategy, RedisCluster
from redis.credentials import UsernamePasswordCredentialProvider

from haetae.cache import AutoPipeline, RedisL2, cluster, resp


def _cluster(**kwargs: object) -> RedisCluster:
    return RedisCluster(host="127.0.0.1", port=7000, **kwargs)  # type: ignore[arg-type]


def test_plain_cluster_clients_get_the_fast_path() -> None:
    assert cluster.supports(_cluster())
    assert cluster.supports(_cluster(password="s", username="u"))
    l2 = RedisL2(_cluster())
    assert l2.is_cluster and isinstance(l2.pipeline, cluster.ClusterPipeline)
    assert not cluster.supports(aioredis.Redis.from_url("redis://127.0.0.1:6379"))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ssl": True},
        {"decode_responses": True},
        {"load_balancing_strategy": LoadBalancingStrategy.ROUND_ROBIN},
        {"credential_provider": UsernamePasswordCredentialProvider("u", "p")},
        {"protocol": 3},
    ],
)
def test_unsupported_cluster_clients_keep_redis_py(kwargs: dict[str, object]) -> None:
    client = _cluster(**kwargs)
    assert not cluster.supports(client)
    assert isinstance(RedisL2(client).pipeline, AutoPipeline)
    with pytest.raises(ValueError, match="fast path"):
        RedisL2(client, fast_path=True)


def test_forcing_redis_py_on_a_cluster() -> None:
    assert isinstance(RedisL2(_cluster(), fast_path=False).pipeline, AutoPipeline)
    standalone = RedisL2(aioredis.Redis.from_url("redis://127.0.0.1:6379"))
    assert isinstance(standalone.pipeline, resp.FastPipeline)
