"""Canonical URLs: any user-supplied link in, one stable form and cache key out.

Normalisation follows RFC 3986 section 6.2.2 (case, percent-encoding, dot segments) and 6.2.3
(default ports, empty path), hosts are IDNA-encoded (UTS 46), numeric IPv4 spellings
(``2130706433``, ``0x7f.1``) are rewritten to dotted quads as browsers do, so the SSRF guard and
the cache see one form. Tracking parameters are dropped, the rest of the query is kept (sorted:
servers that depend on parameter order are rare, cache hits on reordered links are not).
Links to known platforms are keyed by the platform's own content id (``platforms.py``).
Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qs, unquote, urlsplit

import idna

from link_analyzer.errors import AnalyzerError
from link_analyzer.platforms import Platform, PlatformMatch, recognise

MAX_URL_LENGTH = 4096

# Our own list, from what the platforms and ad networks append to shared links.
TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "gclsrc",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "twclid",
        "ttclid",
        "igsh",
        "igshid",
        "si",
        "mc_cid",
        "mc_eid",
        "_ga",
        "_gl",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "oly_anon_id",
        "oly_enc_id",
        "vero_id",
        "ref_src",
        "ref_url",
        "share_id",
        "is_from_webapp",
        "sender_device",
        "trackingid",
    }
)
TRACKING_PREFIXES = ("utm_",)

_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_SUB_DELIMS = frozenset("!$&'()*+,;=")
_PATH_SAFE = _UNRESERVED | _SUB_DELIMS | frozenset(":@/")
# Escaped '&', '=' and '+' differ in meaning from literal ones: escapes other than unreserved
# characters are never decoded, so they stay escaped.
_QUERY_PART_SAFE = _UNRESERVED | _SUB_DELIMS | frozenset(":@/?")
_HOST_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_PCT = re.compile(r"%([0-9A-Fa-f]{2})")


class RefusalReason(StrEnum):
    EMPTY = "empty"
    TOO_LONG = "too-long"
    SCHEME = "scheme"
    NO_HOST = "no-host"
    BAD_HOST = "bad-host"
    BAD_PORT = "bad-port"
    CREDENTIALS = "credentials"


class UrlRefused(AnalyzerError, ValueError):
    """The input is not an http(s) URL we will fetch. Permanent: retrying cannot help."""

    code = "url-refused"

    def __init__(self, url: str, reason: RefusalReason, detail: str) -> None:
        super().__init__(f"{detail}: {url[:200]!r}")
        self.url = url
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class CanonicalUrl:
    """``url`` is what to fetch; ``identity`` what the content is; ``key`` its hash."""

    url: str
    platform: Platform
    kind: str | None
    content_id: str | None
    short: bool
    identity: str
    key: str


def url_key(identity: str) -> str:
    """The stable cache key of an identity: 32 hex chars of SHA-256 (128 bits)."""
    return hashlib.sha256(identity.encode()).hexdigest()[:32]


def canonicalize(raw: str) -> CanonicalUrl:
    url = normalize(raw)
    parts = urlsplit(url)
    host = parts.hostname or ""
    segs = [unquote(s) for s in parts.path.split("/") if s]
    query = parse_qs(parts.query, keep_blank_values=True)
    match: PlatformMatch = recognise(host, segs, query)
    if match.content_id is not None and match.canonical_url is not None:
        identity = f"{match.platform.value}:{match.kind}:{match.content_id}"
        url = match.canonical_url
    elif match.short:
        identity = f"short:{url}"
    else:
        identity = f"url:{url}"
    return CanonicalUrl(
        url=url,
        platform=match.platform,
        kind=match.kind,
        content_id=match.content_id,
        short=match.short,
        identity=identity,
        key=url_key(identity),
    )


def normalize(raw: str) -> str:
    """RFC 3986 normal form of an http(s) URL, tracking parameters and fragment removed."""
    text = raw.strip() if isinstance(raw, str) else ""
    if not text:
        raise UrlRefused(str(raw), RefusalReason.EMPTY, "the URL is empty")
    if len(text) > MAX_URL_LENGTH:
        raise UrlRefused(text, RefusalReason.TOO_LONG, f"the URL exceeds {MAX_URL_LENGTH} chars")
    if any(ord(c) < 0x20 or c == "\x7f" for c in text):
        raise UrlRefused(text, RefusalReason.BAD_HOST, "the URL contains control characters")
    text = text.replace("\\", "/")
    scheme_match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", text)
    if scheme_match is None or (
        # "example.com:8080/x" parses as scheme "example.com"; a bare host link gets https.
        "." in scheme_match.group(1) and not text[scheme_match.end() :].startswith("//")
    ):
        if text.startswith("/") and not text.startswith("//"):
            raise UrlRefused(text, RefusalReason.NO_HOST, "the URL has no host")
        text = "https://" + text.lstrip("/")
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise UrlRefused(text, RefusalReason.BAD_HOST, str(exc)) from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise UrlRefused(
            text, RefusalReason.SCHEME, f"only http and https URLs are analysed, not {scheme}:"
        )
    netloc = parts.netloc
    if "@" in netloc:
        raise UrlRefused(text, RefusalReason.CREDENTIALS, "URLs with credentials are refused")
    host_text, port_text = _split_host_port(text, netloc)
    if not host_text:
        raise UrlRefused(text, RefusalReason.NO_HOST, "the URL has no host")
    host = normalize_host(text, host_text)
    port = _port(text, port_text)
    authority = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    path = remove_dot_segments(_normalize_pct(parts.path, _PATH_SAFE)) or "/"
    if not path.startswith("/"):
        path = "/" + path
    query = _normalize_query(parts.query)
    return f"{scheme}://{authority}{path}" + (f"?{query}" if query else "")


def _split_host_port(url: str, netloc: str) -> tuple[str, str | None]:
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise UrlRefused(url, RefusalReason.BAD_HOST, "unterminated IPv6 literal")
        rest = netloc[end + 1 :]
        if rest and not rest.startswith(":"):
            raise UrlRefused(url, RefusalReason.BAD_HOST, "garbage after the IPv6 literal")
        return netloc[: end + 1], rest[1:] if rest else None
    host, sep, port = netloc.rpartition(":")
    return (host, port) if sep else (netloc, None)


def _port(url: str, text: str | None) -> int | None:
    if text is None or text == "":
        return None
    if not text.isascii() or not text.isdigit() or int(text) > 65535 or int(text) == 0:
        raise UrlRefused(url, RefusalReason.BAD_PORT, f"invalid port {text!r}")
    return int(text)


def normalize_host(url: str, host: str) -> str:
    """Lower-case, IDNA (UTS 46) encoded host; IP literals in their canonical spelling."""
    if host.startswith("["):
        inner = host[1:-1]
        if "%" in inner:
            raise UrlRefused(url, RefusalReason.BAD_HOST, "IPv6 zone ids are refused")
        try:
            return f"[{ipaddress.IPv6Address(inner).compressed}]"
        except ValueError as exc:
            raise UrlRefused(url, RefusalReason.BAD_HOST, f"invalid IPv6 address: {exc}") from None
    host = unquote(host).rstrip(".")
    if not host:
        raise UrlRefused(url, RefusalReason.NO_HOST, "the URL has no host")
    ipv4 = parse_ipv4(url, host)
    if ipv4 is not None:
        return ipv4
    if host.isascii():
        host = host.lower()
    else:
        try:
            host = idna.encode(host, uts46=True, transitional=False).decode("ascii")
        except idna.IDNAError as exc:
            raise UrlRefused(url, RefusalReason.BAD_HOST, f"invalid IDNA host: {exc}") from None
    labels = host.split(".")
    if len(host) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise UrlRefused(url, RefusalReason.BAD_HOST, f"invalid host name {host!r}")
    return host


def parse_ipv4(url: str, host: str) -> str | None:
    """WHATWG IPv4 parsing: a host whose last label is numeric is an address (``0x7f.1``,
    ``017700000001``, ``2130706433``) or an error, never a name."""
    labels = host.split(".")
    if not _is_number(labels[-1]):
        return None
    if len(labels) > 4:
        raise UrlRefused(url, RefusalReason.BAD_HOST, f"invalid IPv4 address {host!r}")
    numbers: list[int] = []
    for label in labels:
        if not _is_number(label):
            raise UrlRefused(url, RefusalReason.BAD_HOST, f"invalid IPv4 address {host!r}")
        numbers.append(_ipv4_number(label))
    last = numbers.pop()
    if any(n > 255 for n in numbers) or last >= 256 ** (4 - len(numbers)):
        raise UrlRefused(url, RefusalReason.BAD_HOST, f"IPv4 address out of range: {host!r}")
    value = last
    for i, n in enumerate(numbers):
        value += n << (8 * (3 - i))
    return str(ipaddress.IPv4Address(value))


def _is_number(label: str) -> bool:
    if label[:2].lower() == "0x":
        return all(c in "0123456789abcdefABCDEF" for c in label[2:])
    return label.isascii() and label.isdigit()


def _ipv4_number(label: str) -> int:
    if label[:2].lower() == "0x":
        return int(label[2:] or "0", 16)
    if len(label) > 1 and label.startswith("0"):
        try:
            return int(label, 8)
        except ValueError:
            return 1 << 40  # "08" is neither octal nor allowed: out of range below
    return int(label)


def _normalize_pct(text: str, safe: frozenset[str]) -> str:
    """Decode needlessly encoded unreserved characters, upper-case the rest of the escapes,
    encode what may not appear literally."""
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "%":
            m = _PCT.match(text, i)
            if m:
                byte = int(m.group(1), 16)
                ch = chr(byte)
                out.append(ch if byte < 0x80 and ch in _UNRESERVED else "%" + m.group(1).upper())
                i += 3
                continue
            out.append("%25")
        elif c in safe:
            out.append(c)
        else:
            out.extend(f"%{b:02X}" for b in c.encode("utf-8"))
        i += 1
    return "".join(out)


def remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4."""
    if "." not in path:
        return path
    output: list[str] = []
    segments = path.split("/")
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == ".":
            if last:
                output.append("")
        elif seg == "..":
            if len(output) > 1:
                output.pop()
            if last:
                output.append("")
        else:
            output.append(seg)
    result = "/".join(output)
    if path.startswith("/") and not result.startswith("/"):
        result = "/" + result
    return result


def is_tracking_param(name: str) -> bool:
    lowered = name.lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(TRACKING_PREFIXES)


def _normalize_query(query: str) -> str:
    kept: list[tuple[str, str]] = []
    for pair in query.split("&"):
        if not pair:
            continue
        name, sep, value = pair.partition("=")
        name = _normalize_pct(name, _QUERY_PART_SAFE)
        if is_tracking_param(unquote(name)):
            continue
        value = _normalize_pct(value, _QUERY_PART_SAFE | frozenset("="))
        kept.append((name, f"{name}={value}" if sep else name))
    kept.sort(key=lambda item: item[0])
    return "&".join(text for _, text in kept)
