"""Metadata extraction and the low-quality filter."""

from link_analyzer.extract.metadata import Metadata, extract_metadata
from link_analyzer.extract.oembed import merge_oembed, oembed_endpoint, parse_oembed
from link_analyzer.extract.page import extract_page
from link_analyzer.extract.quality import Quality, Verdict, assess

__all__ = [
    "Metadata",
    "Quality",
    "Verdict",
    "assess",
    "extract_metadata",
    "extract_page",
    "merge_oembed",
    "oembed_endpoint",
    "parse_oembed",
]
