"""The AI stage: one Gemini ``generateContent`` call per item, structured JSON out.

Uses ``google-genai`` (the successor of the deprecated google-generativeai) with ``api_version``
set explicitly, the text and every image of an item in one call, a response schema so the answer
is JSON we can validate, and token usage booked in the cost ledger. ``base_url`` points the SDK at
another endpoint (tests use a local fake server speaking the same API).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import aiohttp
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from pydantic import BaseModel, Field, ValidationError

from link_analyzer.errors import AnalyzerError
from link_analyzer.ledger import Usage

PROMPT = (
    "You analyse one shared link for a Korean content-curation service. From the page metadata "
    "and images below, answer in the JSON schema given: a 1-3 sentence summary in the page's "
    "own language, one category, up to 8 topics, the overall sentiment and the ISO 639-1 "
    "language code. Use only what is shown; do not invent facts."
)


class Analysis(BaseModel):
    summary: str = Field(max_length=2000)
    category: Literal[
        "news",
        "food",
        "travel",
        "shopping",
        "entertainment",
        "education",
        "technology",
        "lifestyle",
        "sports",
        "other",
    ]
    topics: list[str] = Field(default_factory=list, max_length=8)
    sentiment: Literal["positive", "neutral", "negative", "mixed"]
    language: str = Field(max_length=8)


# Built once: given the pydantic class, the SDK re-derives and re-validates the schema on every
# call (~1 ms of CPU); a JSON-schema dict in ``response_json_schema`` is sent as it is.
ANALYSIS_JSON_SCHEMA = Analysis.model_json_schema()


class GeminiError(AnalyzerError):
    code = "gemini-failed"

    def __init__(self, detail: str, *, status: int | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.retryable = status is None or status >= 500 or status == 429


@dataclass(frozen=True)
class MediaPart:
    data: bytes
    mime_type: str


@dataclass(frozen=True)
class AnalysisInput:
    url: str
    title: str | None
    description: str | None
    site_name: str | None
    text: str
    media: tuple[MediaPart, ...] = ()

    def prompt(self) -> str:
        lines = [PROMPT, "", f"URL: {self.url}"]
        for label, value in (
            ("Site", self.site_name),
            ("Title", self.title),
            ("Description", self.description),
        ):
            if value:
                lines.append(f"{label}: {value}")
        if self.text:
            lines.append(f"Text: {self.text[:4000]}")
        return "\n".join(lines)

    def contents(self) -> list[types.Content]:
        """The text and every image of the item, in one user turn."""
        parts = [types.Part.from_text(text=self.prompt())]
        parts += [types.Part.from_bytes(data=m.data, mime_type=m.mime_type) for m in self.media]
        return [types.Content(role="user", parts=parts)]


@dataclass(frozen=True)
class GeminiSettings:
    api_key: str
    model: str = "gemini-2.5-flash"
    api_version: str = "v1beta"
    base_url: str | None = None
    timeout_s: float = 30.0
    max_output_tokens: int = 1024


class GeminiAnalyzer:
    """One SDK client for the process; ``aclose()`` releases its HTTP session.

    The SDK sends through our own ``aiohttp.ClientSession`` (``HttpOptions.aiohttp_client``):
    with 100 calls in flight, the SDK's httpx path cost 3.7-6.8 ms of CPU per call (httpcore's
    pool scans every connection and waiting request on each state change), aiohttp ~1.5 ms
    (``benchmarks/link_analyzer_gemini_transport.py``). Passing our own session also
    avoids the SDK's ``ClientSession`` subclass, which aiohttp deprecates. The session needs a
    running loop, so the client is built on first use.
    """

    def __init__(self, settings: GeminiSettings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._client: genai.Client | None = None
        self._config = types.GenerateContentConfig(
            response_mime_type="application/json",
            response_json_schema=ANALYSIS_JSON_SCHEMA,
            temperature=0.2,
            max_output_tokens=settings.max_output_tokens,
        )

    def _build(self) -> genai.Client:
        settings = self.settings
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=200, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(total=settings.timeout_s),
            # As the httpx client before: HTTPS_PROXY/NO_PROXY apply to the (fixed) Gemini
            # endpoint. The fetcher, not this, ignores proxies (SSRF guard).
            trust_env=True,
        )
        options = types.HttpOptions(
            api_version=settings.api_version,
            base_url=settings.base_url,
            timeout=int(settings.timeout_s * 1000),
            # Retries belong to the job queue (with backoff and a budget), not to each call.
            retry_options=types.HttpRetryOptions(attempts=1),
            aiohttp_client=self._session,
        )
        return genai.Client(api_key=settings.api_key, http_options=options)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aio.aclose()
            self._client = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def client(self) -> genai.Client:
        """The SDK client (built on first use, inside the running loop)."""
        if self._client is None:
            self._client = self._build()
        return self._client

    @property
    def config(self) -> types.GenerateContentConfig:
        return self._config

    async def analyze(self, item: AnalysisInput) -> tuple[Analysis, Usage]:
        try:
            response = await self.client.aio.models.generate_content(
                model=self.settings.model, contents=item.contents(), config=self._config
            )
        except genai_errors.APIError as exc:
            raise GeminiError(
                f"Gemini answered {exc.code}: {exc.message}", status=exc.code
            ) from exc
        except (OSError, TimeoutError, aiohttp.ClientError) as exc:
            raise GeminiError(f"cannot reach Gemini: {exc!r}") from exc
        return parse_response(response, self.settings.model)


def parse_response(
    response: types.GenerateContentResponse, model: str, *, batch: bool = False
) -> tuple[Analysis, Usage]:
    """The validated answer and its token usage (``batch``: priced at batch rates)."""
    text = response.text or ""
    try:
        analysis = Analysis.model_validate_json(text)
    except ValidationError as exc:
        # A malformed answer may be a fluke of sampling: retryable.
        raise GeminiError(f"Gemini's answer does not match the schema: {exc}") from exc
    meta = response.usage_metadata
    usage = Usage(
        model=response.model_version or model,
        prompt_tokens=(meta.prompt_token_count or 0) if meta else 0,
        output_tokens=(meta.candidates_token_count or 0) if meta else 0,
        total_tokens=(meta.total_token_count or 0) if meta else 0,
        batch=batch,
    )
    return analysis, usage
