"""The L2 wire format and the keyspace module."""

from __future__ import annotations

import struct

from haetae.cache import keys as ck
from haetae.cache import serde


def test_roundtrip_value_and_negative() -> None:
    raw = serde.encode({"a": [1, 2]}, 123.5)
    assert raw[0] == serde.FORMAT_VERSION
    rec = serde.decode(raw)
    assert rec is not None and rec.value == {"a": [1, 2]} and rec.fresh_until == 123.5
    assert not rec.negative and rec.size == len(raw)
    neg = serde.decode(serde.encode(None, 9.0, negative=True))
    assert neg is not None and neg.negative and neg.value is None


def test_unknown_versions_and_garbage_read_as_misses() -> None:
    assert serde.decode(b"\x01") is None
    assert serde.decode(struct.pack(">BBd", 2, 0, 1.0) + b"1") is None
    assert serde.decode(struct.pack(">BBd", 1, 7, 1.0)) is None
    assert serde.decode(struct.pack(">BBd", 1, 0, 1.0) + b"{not json") is None


def test_keys_share_one_namespace_and_patterns_escape_globs() -> None:
    for k in (ck.value_key("x"), ck.tag_key("x"), ck.lease_key("x"), ck.node_stats_key("n")):
        assert k.startswith(ck.NAMESPACE + ":")
    assert ck.value_pattern("a*b?[c]") == ck.NAMESPACE + ":v:a\\*b\\?\\[c\\]*"
    assert ck.value_key("abc")[ck.VALUE_KEY_PREFIX_LEN :] == "abc"


def test_public_face_matches_all() -> None:
    import haetae.cache as cache
    import haetae.resilience as resilience

    for mod in (cache, resilience):
        public = {n for n in vars(mod) if not n.startswith("_")} - {
            "breaker",
            "cluster",
            "config",
            "invalidation",
            "keys",
            "l1",
            "l2",
            "l3",
            "layered",
            "resp",
            "warmup",
            "serde",
            "sketch",
            "stats",
            "TYPE_CHECKING",
            "Any",
        }
        # lazily exported names (PEP 562 __getattr__) count as public too
        lazy = {n for n in mod.__all__ if n not in vars(mod) and getattr(mod, n, None)}
        assert public | lazy == set(mod.__all__)
