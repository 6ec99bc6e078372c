"""One error hierarchy for the link analyzer, grouped by what the caller does next.

``retryable`` errors (network trouble, timeouts, 5xx, 429) are worth another attempt later;
the others (refused URLs, SSRF refusals, 4xx, too many redirects) never succeed on retry and go
straight to the dead-letter list.
"""

from __future__ import annotations


class AnalyzerError(Exception):
    retryable = False
    # A stable slug used as a metrics label and in job failure reasons.
    code = "analyzer-error"


class FetchError(AnalyzerError):
    """Fetching ``url`` failed for a reason that may pass (connection reset, DNS hiccup)."""

    retryable = True
    code = "fetch-failed"

    def __init__(self, url: str, detail: str) -> None:
        super().__init__(f"{detail} ({url[:200]})")
        self.url = url
        self.detail = detail


class FetchTimeout(FetchError):
    code = "fetch-timeout"


class FetchRefused(FetchError):
    """We will not fetch this: a policy decision, permanent."""

    retryable = False
    code = "fetch-refused"


class SsrfRefused(FetchRefused):
    """The host resolves only to addresses outside the allowed policy (private, loopback...)."""

    code = "ssrf-refused"

    def __init__(self, url: str, host: str, addresses: list[str], reason: str) -> None:
        super().__init__(url, f"{host} resolves to a refused address ({reason})")
        self.host = host
        self.addresses = addresses
        self.reason = reason


class TooManyRedirects(FetchRefused):
    code = "too-many-redirects"


class UpstreamStatus(FetchError):
    """The origin answered with an error status."""

    code = "upstream-status"

    def __init__(self, url: str, status: int, retry_after_s: float | None = None) -> None:
        super().__init__(url, f"the origin answered HTTP {status}")
        self.status = status
        self.retry_after_s = retry_after_s
        self.retryable = status >= 500 or status in (408, 425, 429)


class AnalysisBusy(AnalyzerError):
    """Another worker holds the analysis lease of this content for longer than expected."""

    retryable = True
    code = "analysis-busy"

    def __init__(self, content_hash: str) -> None:
        super().__init__(f"content {content_hash} is being analysed elsewhere")
        self.content_hash = content_hash
