"""Typed application keys: the one place that says what lives on the aiohttp app."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

from control_plane.config import ControlPlaneConfig
from control_plane.telemetry import ControlPlaneMetrics

if TYPE_CHECKING:
    from control_plane.cache_ctx import CacheService
    from control_plane.health import HealthMonitor
    from control_plane.ingest import Ingestor

CONFIG: web.AppKey[ControlPlaneConfig] = web.AppKey("config", ControlPlaneConfig)
POOL: web.AppKey[asyncpg.Pool] = web.AppKey("pool", asyncpg.Pool)
REDIS: web.AppKey[aioredis.Redis] = web.AppKey("redis", aioredis.Redis)
METRICS: web.AppKey[ControlPlaneMetrics] = web.AppKey("metrics", ControlPlaneMetrics)
HEALTH: web.AppKey[HealthMonitor] = web.AppKey("health")
INGESTOR: web.AppKey[Ingestor] = web.AppKey("ingestor")
CACHE: web.AppKey[CacheService] = web.AppKey("cache")
