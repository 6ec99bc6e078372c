"""Every Redis key the cache uses, from one place (keyspace discipline, as arq's constants)."""

from __future__ import annotations

NAMESPACE = "haetae:cache"

# The durable invalidation log every L1 follows (a Redis Stream, MAXLEN-trimmed), and the counter
# numbering its entries (a gap in the numbers = entries trimmed before a follower read them).
# The hash tag keeps both in one cluster slot: they are written by one script.
INVALIDATION_STREAM = f"{NAMESPACE}:{{inv}}:stream"
INVALIDATION_SEQ = f"{NAMESPACE}:{{inv}}:seq"
# Sorted set: L1 node id -> last heartbeat (unix seconds). "Connected L1s" are the fresh ones.
NODES = f"{NAMESPACE}:nodes"
# Hash: L1 node id -> last invalidation stream id it has applied.
APPLIED = f"{NAMESPACE}:applied"


def value_key(key: str) -> str:
    return f"{NAMESPACE}:v:{key}"


def tag_key(tag: str) -> str:
    """Set of the cache keys carrying ``tag``."""
    return f"{NAMESPACE}:tag:{tag}"


def lease_key(key: str) -> str:
    """Short SET NX PX lease: one process in the fleet loads ``key`` at a time."""
    return f"{NAMESPACE}:lease:{key}"


def node_stats_key(node_id: str) -> str:
    return f"{NAMESPACE}:node:{node_id}:stats"


def value_pattern(prefix: str) -> str:
    """SCAN MATCH pattern for every value key starting with ``prefix`` (glob chars escaped)."""
    escaped = "".join("\\" + c if c in "*?[]\\" else c for c in prefix)
    return f"{NAMESPACE}:v:{escaped}*"


VALUE_KEY_PREFIX_LEN = len(value_key(""))
