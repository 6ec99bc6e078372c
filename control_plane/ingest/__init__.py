"""Agent reports in: decode, resolve series, group-commit to PostgreSQL, keep recent windows."""

from control_plane.ingest.context import ingest_ctx
from control_plane.ingest.decode import CollectorStatus, Report, Sample, decode_report
from control_plane.ingest.windows import SeriesRef, SeriesWindows
from control_plane.ingest.writer import Ingestor, IngestUnavailable, SubmitResult

__all__ = [
    "CollectorStatus",
    "IngestUnavailable",
    "Ingestor",
    "Report",
    "Sample",
    "SeriesRef",
    "SeriesWindows",
    "SubmitResult",
    "decode_report",
    "ingest_ctx",
]
