"""Garbage-collector settings for a process that ingests.

Ingest allocates a few objects per sample (decoded dicts, ``Sample``s, COPY rows), most of them
short-lived. With CPython's default thresholds (700, 10, 10) the collector runs every few
hundred samples and repeatedly rescans the long-lived heap (series windows, caches): measured
with benchmarks/ingest_throughput.py, that was about half of the ingest CPU time. A larger
young-generation threshold lets most temporaries die before any collection sees them, and
freezing the heap built at start-up keeps it out of full collections. Reference counting still
frees almost everything at once; only cyclic garbage waits longer.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

INGEST_GC_THRESHOLDS = (100_000, 50, 100)


@contextmanager
def ingest_gc_policy(thresholds: tuple[int, int, int] = INGEST_GC_THRESHOLDS) -> Iterator[None]:
    """Apply the ingest GC thresholds (and freeze the start-up heap) while the block runs; the
    previous thresholds are restored afterwards."""
    previous = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*thresholds)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()
