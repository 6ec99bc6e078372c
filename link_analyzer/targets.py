"""What can be said about a URL's target without resolving it, checked at the API before any
work: the sync route and the async route's enqueue refuse the same things the same way.

- A host that can only be a bare word (one label, not an IP: ``not-a-number``) names nothing on
  the public internet; it could resolve only through a local search domain. Refused as bad input
  (``UrlRefused``, a 400) before any DNS lookup.
- Literal addresses the policy refuses (private, loopback, link-local, ...) and internal names
  (``localhost``, ``*.local``, ``*.internal``, ...) are refused as the SSRF guard would refuse
  them after resolving (``SsrfRefused``, a 422).

Everything else is left to the guard, which resolves and checks every address at connect time
(in the worker for queued jobs), redirects included. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from link_analyzer.errors import SsrfRefused
from link_analyzer.ssrf import AddressPolicy
from link_analyzer.urls import CanonicalUrl, RefusalReason, UrlRefused, canonicalize

# Names that resolve inside a site by convention or standard (RFC 6761, 6762, 8375; ICANN's
# .internal): never a public page.
_LOOPBACK_NAMES = ("localhost", "localhost.localdomain")
_INTERNAL_SUFFIXES = (
    ".localhost",
    ".local",
    ".localdomain",
    ".internal",
    ".intranet",
    ".lan",
    ".home.arpa",
    ".corp",
)
_LOOPBACK = ipaddress.IPv4Address("127.0.0.1")


def checked_target(raw: str, policy: AddressPolicy) -> CanonicalUrl:
    """``raw`` canonicalised, or ``UrlRefused``/``SsrfRefused`` for what needs no DNS to refuse."""
    canon = canonicalize(raw)
    host = urlsplit(canon.url).hostname or ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None:
        why = policy.refusal(ip)
        if why:
            raise SsrfRefused(canon.url, host, [str(ip)], why)
        return canon
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        # Loopback by definition (RFC 6761): refused unless the policy lets loopback through.
        why = policy.refusal(_LOOPBACK)
        if why:
            raise SsrfRefused(canon.url, host, [], f"an internal name ({why})")
        return canon
    if host.endswith(_INTERNAL_SUFFIXES):
        raise SsrfRefused(canon.url, host, [], "an internal name")
    if "." not in host:
        raise UrlRefused(
            raw,
            RefusalReason.BAD_HOST,
            f"{host!r} is not a public host name (a bare word, with no domain)",
        )
    return canon
