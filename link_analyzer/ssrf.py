"""The SSRF guard: checked when a connection is opened, so redirects and DNS are covered too.

The guard is an httpcore network backend. It resolves the host itself, checks every address
against an :class:`AddressPolicy` and connects to the checked address (never re-resolving, so a
DNS answer that changes between check and connect cannot slip through). Addresses that embed an
IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96`` and ``64:ff9b:1::/48``,
6to4, Teredo) are judged by the embedded address as well.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpcore

from link_analyzer.errors import SsrfRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it is one of the translation forms."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Only globally routable unicast addresses, plus the networks in ``allow`` (tests put
    loopback there to reach their local origins; production leaves it empty)."""

    allow: tuple[IPNetwork, ...] = field(default=())

    @classmethod
    def allowing(cls, networks: Iterable[str]) -> AddressPolicy:
        return cls(tuple(ipaddress.ip_network(n) for n in networks))

    def refusal(self, ip: IPAddress) -> str | None:
        """Why ``ip`` is refused, or None when it may be connected to."""
        if any(ip.version == net.version and ip in net for net in self.allow):
            return None
        inner = embedded_ipv4(ip)
        if inner is not None:
            why = self.refusal(inner)
            return f"embeds {inner}: {why}" if why else None
        if ip.is_loopback:
            return "loopback"
        if ip.is_link_local:
            return "link-local (includes cloud metadata endpoints)"
        if ip.is_private:
            return "private network"
        if ip.is_multicast:
            return "multicast"
        if ip.is_unspecified or ip.is_reserved:
            return "reserved"
        if not ip.is_global:
            return "not globally routable"
        return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[IPAddress, None] = {}
    for _family, _type, _proto, _canon, sockaddr in infos:
        # Strip an IPv6 scope ("fe80::1%eth0") before parsing; it is link-local either way.
        seen[ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])] = None
    return list(seen)


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks, then connects to the checked address only."""

    def __init__(self, policy: AddressPolicy, inner: httpcore.AsyncNetworkBackend | None = None):
        self.policy = policy
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await resolve(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        allowed = [ip for ip in addresses if self.policy.refusal(ip) is None]
        if not allowed:
            reasons = sorted({self.policy.refusal(ip) or "" for ip in addresses})
            raise SsrfRefused(
                f"{host}:{port}", host, [str(ip) for ip in addresses], "; ".join(reasons)
            )
        last: Exception | None = None
        for ip in allowed:
            try:
                return await self._inner.connect_tcp(
                    str(ip), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise SsrfRefused(path, path, [], "unix sockets are never fetched")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
