"""Where a webhook may point: public http(s) addresses only, checked when it is saved and again
at every connection, against the addresses the name resolves to at that moment.

The check is made on what the connection will use, not on the text of the URL: the host is put
in its one canonical ASCII form (IDNA, so fullwidth digits spelling 127.0.0.1 are `127.0.0.1`), resolved, and every
address it resolves to must be public; the sender then connects to one of exactly those
addresses (`Target.addresses`), never resolving the name again. So numeric tricks (`0x7f.1`,
`2130706433`), IPv4 inside IPv6 (`::ffff:127.0.0.1`, `::ffff:0:127.0.0.1`, 6to4, NAT64, Teredo) and a name whose DNS
answer changes between the check and the connection (rebinding) all meet the same test.

`WEBHOOK_ALLOW_PRIVATE_ADDRESSES=1` lets loopback, private and link-local targets through, for
self-hosted installs and tests; cloud metadata endpoints, unspecified, multicast and reserved
addresses stay refused whatever it says.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app, g, has_request_context

from app.errors import Invalid, Unavailable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL = 2048
SCHEMES = {"http": 80, "https": 443}
# Cloud instance metadata and credential services: never a webhook target, even on a self-hosted
# install (AWS instance metadata, ECS task and EKS pod credentials, Amazon DNS, Alibaba, Oracle's
# legacy metadata, Azure's WireServer, which is a public address).
METADATA = {ipaddress.ip_address(a) for a in (
    "169.254.169.254", "fd00:ec2::254", "169.254.170.2", "169.254.170.23", "fd00:ec2::23", "169.254.169.253",
    "100.100.100.200", "192.0.0.192", "168.63.129.16")}
NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Local-use NAT64 (RFC 8215): the translator's prefix may be any length from /48 to /96, so each
# RFC 6052 layout that fits is read as a possible IPv4 address (octets; the eighth is never used).
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
NAT64_LAYOUTS = ((6, 7, 9, 10), (7, 9, 10, 11), (9, 10, 11, 12), (12, 13, 14, 15))
# Ranges that are internal or not for use on the Internet but that Python 3.11 calls global:
# site-local (RFC 3879), segment routing SIDs (RFC 9602), documentation (RFC 9637).
NOT_GLOBAL_V6 = tuple(ipaddress.ip_network(n) for n in ("fec0::/10", "5f00::/16", "3fff::/20"))
BROADCAST = ipaddress.IPv4Address("255.255.255.255")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d
IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT's ::ffff:0:a.b.c.d (RFC 2765)
# IETF protocol assignments (RFC 6890): Python 3.11 calls most of it global (192.0.0.8, say).
NOT_GLOBAL_V4 = ipaddress.ip_network("192.0.0.0/24")
PRIVATE_KINDS = ("a loopback address", "a link-local address", "a private or internal address")


class RefusedTarget(Invalid):
    """The URL is not one deliveries may go to; the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message, {"url": [message]})


@dataclass(frozen=True)
class Target:
    """A checked URL: scheme, canonical host, port, path with query, and the addresses to use."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[IPAddress, ...]

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == SCHEMES[self.scheme] else f"{host}:{self.port}"


def parse(url: str) -> tuple[str, str, int, str]:
    """Return (scheme, canonical host, port, path) of a webhook URL, or raise RefusedTarget."""
    if len(url) > MAX_URL:
        raise RefusedTarget(f"The URL is longer than {MAX_URL} characters.")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise RefusedTarget("The URL must not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise RefusedTarget("Not a valid URL.") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise RefusedTarget("Only http and https URLs are allowed.")
    if parts.username is not None or parts.password is not None:
        raise RefusedTarget("The URL must not carry a user name or password; verify deliveries by their signature.")
    if not parts.hostname:
        raise RefusedTarget("The URL has no host.")
    if parts.fragment:
        raise RefusedTarget("The URL must not have a #fragment.")
    host = canonical_host(parts.hostname)
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    return scheme, host, port or SCHEMES[scheme], path


def canonical_host(host: str) -> str:
    """Return the ASCII form the resolver and the TLS check will both use (IDNA, lower case, no final dot)."""
    host = host.rstrip(".").lower()
    if not host:
        raise RefusedTarget("The URL has no host.")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise RefusedTarget("The host name is not a valid internationalised domain name.") from None
    try:  # normalisation can turn a name into a literal address (fullwidth digits)
        return str(ipaddress.ip_address(ascii_host))
    except ValueError:
        return ascii_host


def unwrap(address: IPAddress) -> IPAddress:
    """Return the IPv4 address an IPv6 address carries (mapped, translated, compatible, 6to4, NAT64, Teredo),
    else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address.teredo is not None:
            return address.teredo[1]
        if address in NAT64 or address in IPV4_COMPATIBLE or address in IPV4_TRANSLATED:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def nat64_local(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """Return the IPv4 addresses a local-use NAT64 address may stand for (none if it is not one)."""
    if not isinstance(address, ipaddress.IPv6Address) or address not in NAT64_LOCAL:
        return []
    packed = address.packed
    return [ipaddress.IPv4Address(bytes(packed[i] for i in layout)) for layout in NAT64_LAYOUTS]


def problem(address: IPAddress, allow_private: bool) -> str | None:
    """Return what `address` is if deliveries may not go there ("a loopback address"), else None."""
    inner = unwrap(address)
    if address in METADATA or inner in METADATA or any(a in METADATA for a in nat64_local(address)):
        return "a cloud metadata address"
    if inner.is_unspecified or inner.is_multicast or (
            isinstance(inner, ipaddress.IPv4Address) and (inner.is_reserved or inner == BROADCAST)):
        return "not a unicast address"
    if allow_private:
        return None
    if address.is_loopback or inner.is_loopback:
        return "a loopback address"
    if inner.is_link_local:
        return "a link-local address"
    internal_v6 = address in NAT64_LOCAL or any(address in network for network in NOT_GLOBAL_V6)
    if inner.is_private or not inner.is_global or internal_v6 or inner in NOT_GLOBAL_V4:
        return "a private or internal address"
    return None


def _literal(host: str) -> IPAddress | None:
    """Return the address `host` spells, read as the resolver reads it (IPv4 numbers as inet_aton does:
    `127.000.000.001`, `0x7f.1`), or None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.ip_address(socket.inet_aton(host))
    except (OSError, UnicodeError):
        return None


def resolve(host: str, port: int) -> list[IPAddress]:
    """Return the addresses `host` resolves to now (a literal address resolves to itself)."""
    address = _literal(host)
    if address is not None:
        return [address]
    try:
        found = _addresses(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
    except (OSError, UnicodeError):
        raise RefusedTarget(f"The host name {host} does not resolve.") from None
    if not found:
        raise RefusedTarget(f"The host name {host} does not resolve.")
    return found


def _addresses(infos: list[tuple]) -> list[IPAddress]:
    """The distinct addresses of `getaddrinfo`'s answer, in its order (an IPv6 zone left out)."""
    found: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def check_saved(url: str) -> None:
    """Refuse a URL when it is saved: not http(s), malformed, or resolving to an address deliveries may not use.

    A name that does not resolve (yet) is accepted: DNS may be set up after the webhook, and
    every delivery checks again before it connects. So is one that does not resolve within
    `SAVE_LOOKUP_SECONDS`: a name whose DNS never answers held the request (its pooled connection,
    and with it a row lock) for as long as the system resolver waited. While `SAVE_LOOKUPS` such
    lookups are under way the save is refused (503), not let through unchecked.

    A URL that passed once in a request is not looked up again in it: the API checks a new
    webhook's URL before its Idempotency-Key is claimed (`api.url_checked_first`), then the
    service checks it as every save does.
    """
    passed = g.setdefault("webhook_urls_passed", set()) if has_request_context() else set()
    if url in passed:
        return
    _scheme, host, port, _path = parse(url)
    try:
        addresses = _resolved_for_saving(host, port)
    except RefusedTarget:  # does not resolve
        addresses = None
    if addresses is not None:
        _refuse_unusable(host, addresses)
    passed.add(url)


SAVE_LOOKUPS = 4  # names resolved for saves at once, per process
SAVE_LOOKUP_SECONDS = 2.0
LOOKUPS_BUSY = "Too many webhook hosts are being looked up; try again shortly."
_save_lookups = threading.BoundedSemaphore(SAVE_LOOKUPS)


def _resolved_for_saving(host: str, port: int) -> list[IPAddress] | None:
    """Return what `host` resolves to, or None if that is not known within `SAVE_LOOKUP_SECONDS`.

    A host that spells an address (`_literal`) needs no lookup and is never let through. A name is
    looked up on a daemon thread, which keeps its place until the resolver answers, and never holds
    back the process's exit.
    """
    address = _literal(host)
    if address is not None:
        return [address]
    if not _save_lookups.acquire(blocking=False):
        raise Unavailable(LOOKUPS_BUSY)
    found: list[list[IPAddress] | RefusedTarget] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            found.append(resolve(host, port))
        except Exception as failed:  # whatever the resolver raises, the name does not resolve for this save
            found.append(failed if isinstance(failed, RefusedTarget) else
                         RefusedTarget(f"The host name {host} does not resolve."))
        finally:
            _save_lookups.release()
            done.set()

    threading.Thread(target=lookup, name="webhook-save-lookup", daemon=True).start()
    if not done.wait(SAVE_LOOKUP_SECONDS):
        return None
    if isinstance(found[0], RefusedTarget):
        raise found[0]
    return found[0]


def check(url: str) -> Target:
    """Return the target of `url` if every address its host resolves to now may be used, or raise RefusedTarget.

    Called right before every connection (and, bounded in time, when a subscription is saved).
    """
    scheme, host, port, path = parse(url)
    addresses = resolve(host, port)
    _refuse_unusable(host, addresses)
    return Target(scheme, host, port, path, tuple(addresses))


def _refuse_unusable(host: str, addresses: list[IPAddress]) -> None:
    allow_private = current_app.config["WEBHOOK_ALLOW_PRIVATE_ADDRESSES"]
    for address in addresses:
        what = problem(address, allow_private)
        if what is not None:
            # A name's address is not shown: it would map the server's internal DNS for any admin.
            where = f"{address}: it is" if host == str(address) else f"{host}: it resolves to"
            raise RefusedTarget(f"Deliveries cannot go to {where} {what}. Set WEBHOOK_ALLOW_PRIVATE_ADDRESSES=1 "
                                "on a self-hosted instance to allow private targets." if what in PRIVATE_KINDS else
                                f"Deliveries cannot go to {where} {what}.")
