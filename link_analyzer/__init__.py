"""Link analyzer: canonical URLs, guarded extraction, a Gemini stage, a Redis job queue.

Routes live in ``link_analyzer.api`` (mounted by the control plane); workers run via
``link_analyzer.runner``.
"""

from link_analyzer.platforms import Platform
from link_analyzer.urls import CanonicalUrl, UrlRefused, canonicalize, normalize

__all__ = ["CanonicalUrl", "Platform", "UrlRefused", "canonicalize", "normalize"]
