"""Agent reports in: decode, resolve series, group-commit to PostgreSQL, keep recent windows."""

from control_plane.ingest.context import ingest_ctx
from control_plane.ingest.decode import CollectorStatus, Report, Sample, decode_report
from control_plane.ingest.errors import IngestRejected, IngestUnavailable
from control_plane.ingest.limits import SeriesLimit, SeriesLimitExceeded
from control_plane.ingest.windows import SeriesRef, SeriesWindows
from control_plane.ingest.writer import Ingestor, SubmitResult

__all__ = [
    "CollectorStatus",
    "IngestRejected",
    "IngestUnavailable",
    "Ingestor",
    "Report",
    "Sample",
    "SeriesLimit",
    "SeriesLimitExceeded",
    "SeriesRef",
    "SeriesWindows",
    "SubmitResult",
    "decode_report",
    "ingest_ctx",
]
