"""Sign-in and signup throttles, counted in Redis, that an attacker cannot turn against a user.

Sign-in failures are counted three ways (OWASP's authentication cheat sheet):
- per account and client address: a few tries, then that address waits (`LOGIN_MAX_FAILURES`);
- per client address, across accounts: stops one address spraying many accounts;
- per account, across addresses: stops a distributed attack on one account, but only for
  browsers that have never signed in to it. A successful sign-in leaves a signed device cookie,
  and a browser holding one for the account is not held back by the account-wide count, so an
  attacker's failures never lock the real user out.
Each attempt is counted before its password is checked (and taken back if it succeeds or is
refused), in one atomic step, so guesses sent at once cannot all slip past the limits.
Signups are limited per client address per hour (`SIGNUP_RATE_LIMIT_PER_HOUR`), and so are
made-up API keys, per minute (`KEY_FAILURES_PER_ADDRESS_PER_MINUTE`): each costs a database lookup,
and no key's own limit counts them (a revoked key is looked up once per process, then remembered).
The client address is `request.remote_addr`, which honours only `TRUSTED_PROXIES` hops of
X-Forwarded-For; an IPv6 one counts by its /64.
Counters are disposable: without Redis nothing is throttled rather than nothing allowed.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import time
from dataclasses import dataclass

import redis
import sqlalchemy as sa
from flask import current_app, g, request
from itsdangerous import BadSignature, URLSafeSerializer

from app.extensions import db, redis_client
from tenants import TenantRef

log = logging.getLogger(__name__)
LOGIN_WINDOW = 15 * 60
ACCOUNT_WINDOW = 60 * 60
DEVICE_COOKIE = "tms_device"


@dataclass(frozen=True)
class Wait:
    """Refused for now; `retry_after` seconds until the window that counted the failures ends."""

    retry_after: int

    @property
    def in_words(self) -> str:
        """The wait as a page says it, in whole minutes rounded up: "1 minute", "5 minutes"."""
        minutes = max(1, -(-self.retry_after // 60))
        return f"{minutes} minute{'s' if minutes > 1 else ''}"


def client_address() -> str:
    return request.remote_addr or "unknown"


def client_network() -> str:
    """Return the client as the limits here count it: an IPv6 address by its /64, which one subscriber is
    given whole (each of its 2**64 addresses had a limit of its own), an IPv4-mapped one as IPv4."""
    address = client_address()
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return address


def _account(tenant: TenantRef, email: str) -> str:
    """Name an account's counters after its email as the database folds it, as the sign-in's lookup does.

    Python's `lower()` differs from SQL's for a few letters ("İ", a final "Σ"), so each spelling of
    an address would otherwise get counters of its own while signing in to the same account. Read
    once per request (a sign-in names its account two or three times).
    """
    folded = g.setdefault("tms_folded_emails", {})
    if email not in folded:
        folded[email] = db.session.execute(
            sa.select(sa.func.lower(email.strip().replace("\x00", "")))).scalar_one()
    return hashlib.sha256(f"{tenant.id}:{folded[email]}".encode()).hexdigest()[:32]


def _keys(tenant: TenantRef, email: str) -> dict[str, tuple[str, int, int]]:
    """Return each counter's Redis key, its limit and its window."""
    config = current_app.config
    account, address = _account(tenant, email), client_network()
    return {
        "pair": (f"tms:{tenant.id}:login:fail:{account}:{address}", config["LOGIN_MAX_FAILURES"], LOGIN_WINDOW),
        "address": (f"tms:login:fail:address:{address}", config["LOGIN_MAX_FAILURES_PER_ADDRESS"], LOGIN_WINDOW),
        "account": (f"tms:{tenant.id}:login:fail:{account}", config["LOGIN_MAX_FAILURES_PER_ACCOUNT"],
                    ACCOUNT_WINDOW),
    }


# Count one attempt on each counter; a new counter gets its window (EXPIRE NX needs Redis 7, this
# works on 6.2 too). KEYS: the counters; ARGV: their windows. Returns each count and its TTL.
_COUNT = """
local out = {}
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, tonumber(ARGV[i])) end
  out[#out + 1] = count
  out[#out + 1] = redis.call('TTL', key)
end
return out
"""
# Take one attempt back from each counter that still exists (never creating one without a window).
_UNCOUNT = """
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then redis.call('DECR', key) end
end
return 0
"""


def login_attempt(tenant: TenantRef, email: str) -> Wait | None:
    """Count a sign-in attempt as a failure before its password is checked, or refuse it.

    Counting first, in one atomic step, is what stops guesses sent at once from all passing
    the throttle before the first failure is counted. A refused attempt is taken back (it
    checked nothing), and so is one that succeeds (see `login_succeeded`). Returns how long this
    browser must wait before trying `email` again, or None if it may try now.
    """
    keys = _keys(tenant, email)
    exempt = {"account"} if _known_device(tenant, email) else set()
    try:
        replies = redis_client().eval(_COUNT, len(keys), *(key for key, _, _ in keys.values()),
                                      *(window for _, _, window in keys.values()))
    except redis.RedisError as exc:
        log.warning("sign-in not throttled, Redis unavailable: %s", exc)
        return None
    waits = [ttl for (name, (_, limit, _)), count, ttl in zip(keys.items(), replies[::2], replies[1::2], strict=True)
             if name not in exempt and count > limit]
    if not waits:
        return None
    _uncount(key for key, _, _ in keys.values())
    return Wait(max(max(waits), 1))


def _uncount(keys) -> None:
    keys = list(keys)
    try:
        redis_client().eval(_UNCOUNT, len(keys), *keys)
    except redis.RedisError as exc:
        log.warning("sign-in attempt not taken back, Redis unavailable: %s", exc)


def login_succeeded(tenant: TenantRef, email: str) -> str:
    """Take back this attempt and this browser's failures for the account; return the device cookie."""
    keys = _keys(tenant, email)
    _uncount([keys["address"][0], keys["account"][0]])
    with contextlib.suppress(redis.RedisError):
        redis_client().delete(keys["pair"][0])
    return _devices().dumps({"t": tenant.id, "a": _account(tenant, email)})


def _devices() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt="device")


def _known_device(tenant: TenantRef, email: str) -> bool:
    cookie = request.cookies.get(DEVICE_COOKIE)
    if not cookie:
        return False
    try:
        device = _devices().loads(cookie)
    except BadSignature:
        return False
    return device == {"t": tenant.id, "a": _account(tenant, email)}


def _counted(name: str, seconds: int) -> tuple[int, float] | None:
    """Count one `name` from this client address in the current window of `seconds`; return the count and
    the seconds left in the window, or None when Redis cannot count (then nothing is held back)."""
    window = int(time.time()) // seconds
    key = f"tms:{name}:{client_network()}:{window}"
    try:
        pipe = redis_client().pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, seconds)
        count = pipe.execute()[0]
    except redis.RedisError as exc:
        log.warning("%s not rate limited, Redis unavailable: %s", name, exc)
        return None
    return count, (window + 1) * seconds - time.time()


def signup_wait() -> Wait | None:
    """Count a signup from this client address; return how long it must wait if over the hourly limit."""
    counted = _counted("signup", 3600)
    if counted is None or counted[0] <= current_app.config["SIGNUP_RATE_LIMIT_PER_HOUR"]:
        return None
    return Wait(max(int(counted[1]), 1))


# Client addresses over the limit of made-up keys, as this process learnt it: address -> the
# monotonic time their wait ends. Asked before any lookup, so a refused address costs no round trip.
_keys_refused: dict[str, float] = {}
_KEYS_REFUSED_HELD = 10_000


def key_wait() -> Wait | None:
    """Return how long this client address must wait before its API keys are looked up again, if it must."""
    until = _keys_refused.get(client_network())
    left = None if until is None else until - time.monotonic()
    return Wait(max(int(left) + 1, 1)) if left is not None and left > 0 else None


def made_up_key() -> Wait | None:
    """Count a made-up API key from this client address; return its wait once over the limit a minute."""
    counted = _counted("made-up-keys", 60)
    if counted is None or counted[0] <= current_app.config["KEY_FAILURES_PER_ADDRESS_PER_MINUTE"]:
        return None
    left = counted[1]
    if len(_keys_refused) >= _KEYS_REFUSED_HELD:
        _keys_refused.clear()  # many addresses at once: forgetting them costs each one lookup more
    _keys_refused[client_network()] = time.monotonic() + left
    return Wait(max(int(left) + 1, 1))
