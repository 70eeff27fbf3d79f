"""Configuration, read only from the environment (12-factor)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from app.pool import FairQueuePool
from tenants import keepalive_args, parse_capacities, parse_shards


class ConfigError(ValueError):
    """A setting the product cannot run with; the message names the variable and what it takes."""


def _int(name: str, default: int, minimum: int = 1, maximum: int | None = None) -> int:
    """Read a whole number of at least `minimum` (and at most `maximum`); refuse anything else by name."""
    raw = os.environ.get(name, "")
    if not raw.strip():  # unset, or set to nothing: the default
        return default
    try:
        value = int(raw.strip(), 10)
    except ValueError:
        value = None
    if value is None or value < minimum or (maximum is not None and value > maximum):
        limits = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"
        raise ConfigError(f"{name} must be a whole number {limits}, not {raw!r}")
    return value


def _float(name: str, default: float, zero: bool = False) -> float:
    """Read a number of seconds (or hours) above zero (or 0, where `zero` says it means never); refuse
    anything else by name."""
    raw = os.environ.get(name, "")
    if not raw.strip():
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        value = math.nan
    if not (value >= 0 if zero else value > 0) or value == math.inf:
        raise ConfigError(f"{name} must be a number {'of 0 or more' if zero else 'above 0'}, not {raw!r}")
    return value


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _flag(name: str, default: bool) -> bool:
    """Read a yes/no setting: 1, true, yes, on or 0, false, no, off (any case); refuse anything else by name."""
    raw = os.environ.get(name, "")
    if not raw.strip():
        return default
    if raw.strip().lower() in _TRUE:
        return True
    if raw.strip().lower() in _FALSE:
        return False
    raise ConfigError(f"{name} must be one of {', '.join(_TRUE)} or {', '.join(_FALSE)}, not {raw!r}")


def _database_url(name: str) -> str:
    """Read a PostgreSQL URL; the `postgres://` form hosts hand out is read as SQLAlchemy's `postgresql://`."""
    url = os.environ.get(name, "")
    return "postgresql://" + url.removeprefix("postgres://") if url.startswith("postgres://") else url


def _redis_url(name: str) -> str:
    url = os.environ.get(name, "")
    if url and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"{name} must be a redis://, rediss:// or unix:// URL, not {url!r}")
    return url


def engine_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return SQLAlchemy's engine options from the settings (after any overrides a test passed)."""
    return {
        "poolclass": FairQueuePool,  # first come, first served once every connection is busy (app/pool.py)
        "pool_size": config["DB_POOL_SIZE"],
        "max_overflow": config["DB_MAX_OVERFLOW"],
        "pool_pre_ping": False,  # a lost connection invalidates the pool instead (see http_errors)
        "pool_recycle": config["DB_POOL_RECYCLE"],
        "pool_timeout": config["DB_POOL_TIMEOUT"],
        "connect_args": {"connect_timeout": config["DB_CONNECT_TIMEOUT"],
                         **keepalive_args(f"-c statement_timeout={int(config['DB_STATEMENT_TIMEOUT_MS'])}")},
    }


class Config:
    """Settings for every environment; tests pass overrides to `create_app`."""

    def __init__(self) -> None:
        # Required: create_app refuses to start without it (`make run` and the tests provide one).
        self.SECRET_KEY = os.environ.get("SECRET_KEY", "")
        self.SQLALCHEMY_DATABASE_URI = _database_url("DATABASE_URL")
        # More databases for tenant schemas ("name=url name=url"); the registry stays in DATABASE_URL.
        self.SQLALCHEMY_BINDS = parse_shards(os.environ.get("DATABASE_SHARDS", ""))
        # Tenants each shard may hold (a number for all, or name=count pairs); new ones go where most room is left.
        self.SHARD_MAX_TENANTS = os.environ.get("SHARD_MAX_TENANTS", "10000")
        parse_capacities(self.SHARD_MAX_TENANTS)  # refuse a malformed value at start, not at a signup
        self.REDIS_URL = _redis_url("REDIS_URL")
        # Redis connections per process; a thread that finds them all busy waits up to 5 s for one.
        self.REDIS_MAX_CONNECTIONS = _int("REDIS_MAX_CONNECTIONS", 100)
        # Tenants are served at <slug>.<this> too; SERVER_NAME is the contract's name for it (not Flask's
        # setting of that name, which would refuse every other host).
        self.SERVER_NAME_FOR_TENANTS = os.environ.get("TENANT_DOMAIN") or os.environ.get("SERVER_NAME", "")
        self.DB_POOL_SIZE = _int("DB_POOL_SIZE", 20)
        self.DB_MAX_OVERFLOW = _int("DB_MAX_OVERFLOW", 10, minimum=0)
        self.DB_POOL_TIMEOUT = _float("DB_POOL_TIMEOUT", 5)
        # Seconds after which a pooled connection is replaced at its next checkout, whatever it served.
        self.DB_POOL_RECYCLE = _int("DB_POOL_RECYCLE", 3600, minimum=-1)  # -1: never
        # While the database is down, requests fail within this many seconds instead of hanging.
        self.DB_CONNECT_TIMEOUT = _int("DB_CONNECT_TIMEOUT", 3)
        # No statement of any tenant holds a connection longer (a search sets its own, shorter).
        self.DB_STATEMENT_TIMEOUT_MS = _int("DB_STATEMENT_TIMEOUT_MS", 10000, minimum=0)  # 0: none
        # A pooled connection is closed when returned once it has served this many tenants (0: never),
        # since PostgreSQL keeps every relation it touched cached for the connection's life.
        self.DB_CONNECTION_MAX_TENANTS = _int("DB_CONNECTION_MAX_TENANTS", 500, minimum=0)
        self.SQLALCHEMY_TRACK_MODIFICATIONS = False
        # Check each pooled connection on checkout for state left by its last user (tests, staging).
        self.POOL_CHECKOUT_GUARD = _flag("POOL_CHECKOUT_GUARD", False)
        self.RATE_LIMIT_PER_MINUTE = _int("RATE_LIMIT_PER_MINUTE", 1200)
        self.RATE_LIMIT_PER_TENANT_PER_MINUTE = _int("RATE_LIMIT_PER_TENANT_PER_MINUTE", 6000)
        # Sign-in throttles (app/auth/throttle.py) and signups per client address.
        self.LOGIN_MAX_FAILURES = _int("LOGIN_MAX_FAILURES", 5)
        self.LOGIN_MAX_FAILURES_PER_ADDRESS = _int("LOGIN_MAX_FAILURES_PER_ADDRESS", 50)
        self.LOGIN_MAX_FAILURES_PER_ACCOUNT = _int("LOGIN_MAX_FAILURES_PER_ACCOUNT", 100)
        self.SIGNUP_RATE_LIMIT_PER_HOUR = _int("SIGNUP_RATE_LIMIT_PER_HOUR", 20)
        self.KEY_FAILURES_PER_ADDRESS_PER_MINUTE = _int("KEY_FAILURES_PER_ADDRESS_PER_MINUTE", 120)
        # X-Forwarded-For hops to trust for the client address (0: use the peer address).
        self.TRUSTED_PROXIES = _int("TRUSTED_PROXIES", 0, minimum=0)
        # Argon2id hashes held in memory at once per process (each takes about 19 MiB).
        self.PASSWORD_HASH_CONCURRENCY = _int("PASSWORD_HASH_CONCURRENCY", 2)
        # The largest JSON body (API requests and socket frames) and, by default, any request body;
        # an upload route raises `request.max_content_length` for itself.
        self.JSON_MAX_BYTES = _int("JSON_MAX_BYTES", 1024 * 1024, minimum=1024)
        self.MAX_CONTENT_LENGTH = self.JSON_MAX_BYTES
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.REMEMBER_COOKIE_HTTPONLY = True
        self.REMEMBER_COOKIE_SAMESITE = "Lax"
        self.PREFERRED_URL_SCHEME = os.environ.get("PREFERRED_URL_SCHEME") or "http"
        if self.PREFERRED_URL_SCHEME not in ("http", "https"):
            raise ConfigError(f"PREFERRED_URL_SCHEME must be http or https, not {self.PREFERRED_URL_SCHEME!r}")
        # Served over https (PREFERRED_URL_SCHEME=https), cookies are Secure unless told otherwise.
        secure = _flag("SESSION_COOKIE_SECURE", self.PREFERRED_URL_SCHEME == "https")
        self.SESSION_COOKIE_SECURE = self.REMEMBER_COOKIE_SECURE = secure
        self.WTF_CSRF_TIME_LIMIT = None
        self.STREAM_TOKEN_TTL = _int("STREAM_TOKEN_TTL", 60)
        self.STREAM_PING_INTERVAL = _float("STREAM_PING_INTERVAL", 25)
        self.STREAM_RESYNC_INTERVAL = _float("STREAM_RESYNC_INTERVAL", 30)
        self.STREAM_TYPING_INTERVAL = _float("STREAM_TYPING_INTERVAL", 1)
        # A socket whose client takes no byte of a waiting send for this long is cut off (it stopped reading).
        self.STREAM_SEND_TIMEOUT = _float("STREAM_SEND_TIMEOUT", 20)
        self.STREAM_MAX_SOCKETS_PER_KEY = _int("STREAM_MAX_SOCKETS_PER_KEY", 100)
        self.STREAM_MAX_SOCKETS_PER_USER = _int("STREAM_MAX_SOCKETS_PER_USER", 20)
        self.STREAM_MAX_SOCKETS_PER_TENANT = _int("STREAM_MAX_SOCKETS_PER_TENANT", 1000)
        # Exports streaming at once per process, each on a connection of its own (503 beyond); one
        # organization may have half of them.
        self.EXPORT_CONCURRENCY = _int("EXPORT_CONCURRENCY", 4)
        # Seconds an export waits for its client to take a chunk before it ends the download.
        self.EXPORT_SEND_TIMEOUT = _float("EXPORT_SEND_TIMEOUT", 60)
        # An export may run longer than a request's statement, but not forever.
        self.EXPORT_STATEMENT_TIMEOUT_MS = _int("EXPORT_STATEMENT_TIMEOUT_MS", 600_000, minimum=0)
        self.SEARCH_STATEMENT_TIMEOUT_MS = _int("SEARCH_STATEMENT_TIMEOUT_MS", 3000)
        # `q` searches one organization may run at once in a process (each may hold a connection
        # for the timeout above); beyond, 503 with Retry-After.
        self.SEARCH_CONCURRENCY_PER_TENANT = _int("SEARCH_CONCURRENCY_PER_TENANT", 4)
        # Uncached dashboard figures one organization may compute at once in a process (503 beyond).
        self.DASHBOARD_CONCURRENCY_PER_TENANT = _int("DASHBOARD_CONCURRENCY_PER_TENANT", 2)
        self.DASHBOARD_WAITERS_PER_TENANT = _int("DASHBOARD_WAITERS_PER_TENANT", 8, minimum=0)
        # How long the dashboard's figures are kept per tenant and period before they are counted again.
        self.DASHBOARD_CACHE_SECONDS = _int("DASHBOARD_CACHE_SECONDS", 15, minimum=0)  # 0: counted on every view
        # Seconds after which the relay hands an unprocessed outbox row to RQ again (a lost job).
        self.OUTBOX_REDELIVER_AFTER = _float("OUTBOX_REDELIVER_AFTER", 30)
        self.OUTBOX_MAX_ATTEMPTS = _int("OUTBOX_MAX_ATTEMPTS", 50)
        self.MEDIA_SWEEP_HOURS = _float("MEDIA_SWEEP_HOURS", 24, zero=True)  # 0: never
        # Jobs one tenant may have waiting or running per queue; the rest wait in the database.
        self.TENANT_QUEUED_JOBS = _int("TENANT_QUEUED_JOBS", 100)
        # Enqueue outbox rows right after their commit; off, only the relay does (for benchmarks).
        self.OUTBOX_FAST_PATH = _flag("OUTBOX_FAST_PATH", True)
        # Media (README, "Media"): where files live, how big they may be, how they are scanned.
        self.MEDIA_BACKEND = os.environ.get("MEDIA_BACKEND") or "local"
        self.MEDIA_LOCAL_DIR = os.environ.get("MEDIA_LOCAL_DIR") or os.path.join(
            os.environ.get("DATA_DIR", ".data"), "media")
        self.MEDIA_S3_BUCKET = os.environ.get("MEDIA_S3_BUCKET", "")
        self.MEDIA_S3_REGION = os.environ.get("MEDIA_S3_REGION") or os.environ.get("AWS_REGION") or "us-east-1"
        self.MEDIA_S3_ENDPOINT_URL = os.environ.get("MEDIA_S3_ENDPOINT_URL") or None
        self.MEDIA_URL_TTL = _int("MEDIA_URL_TTL", 60)
        self.MEDIA_MAX_SIZE = _int("MEDIA_MAX_SIZE", 25 * 1024 * 1024)
        self.MEDIA_TENANT_QUOTA = _int("MEDIA_TENANT_QUOTA", 10 * 1024**3)
        self.MEDIA_MAX_IMAGE_PIXELS = _int("MEDIA_MAX_IMAGE_PIXELS", 60_000_000)
        self.MEDIA_ZIP_MAX_ENTRIES = _int("MEDIA_ZIP_MAX_ENTRIES", 10_000)
        self.MEDIA_ZIP_MAX_UNCOMPRESSED = _int("MEDIA_ZIP_MAX_UNCOMPRESSED", 1024**3)
        self.MEDIA_ZIP_MAX_RATIO = _int("MEDIA_ZIP_MAX_RATIO", 100)
        self.MEDIA_SCAN_ATTEMPTS = _int("MEDIA_SCAN_ATTEMPTS", 3)
        # Seconds a scan is retried through an outage (clamd or the storage unreachable), counting no attempt.
        self.MEDIA_SCAN_RETRY_BUDGET = _float("MEDIA_SCAN_RETRY_BUDGET", 6 * 3600)
        # "clamd" (the default) needs CLAMD_SOCKET or CLAMD_HOST; "off" is the operator's explicit
        # choice to store files with no antivirus verdict, which each attachment then records.
        self.MEDIA_ANTIVIRUS = os.environ.get("MEDIA_ANTIVIRUS") or "clamd"
        self.CLAMD_SOCKET = os.environ.get("CLAMD_SOCKET", "")
        self.CLAMD_HOST = os.environ.get("CLAMD_HOST", "")
        self.CLAMD_PORT = _int("CLAMD_PORT", 3310, maximum=65535)
        self.CLAMD_TIMEOUT = _float("CLAMD_TIMEOUT", 60)
        # Events and webhooks (app/outbox, app/webhooks)
        self.EVENT_RETENTION_DAYS = _int("EVENT_RETENTION_DAYS", 30)
        self.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = _flag("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", False)
        self.WEBHOOK_CONNECT_TIMEOUT = _float("WEBHOOK_CONNECT_TIMEOUT", 3)
        self.WEBHOOK_READ_TIMEOUT = _float("WEBHOOK_READ_TIMEOUT", 5)
        self.WEBHOOK_TOTAL_TIMEOUT = _float("WEBHOOK_TOTAL_TIMEOUT", 10)
        self.WEBHOOK_MAX_ATTEMPTS = _int("WEBHOOK_MAX_ATTEMPTS", 15)
        self.WEBHOOK_RETRY_BASE_SECONDS = _float("WEBHOOK_RETRY_BASE_SECONDS", 30)
        self.WEBHOOK_RETRY_MAX_SECONDS = _float("WEBHOOK_RETRY_MAX_SECONDS", 4 * 3600)
        # flask-smorest / OpenAPI
        self.API_TITLE = "Ticket Management System"
        self.API_VERSION = "v1"
        self.OPENAPI_VERSION = "3.0.3"
        self.OPENAPI_URL_PREFIX = "/api/v1"
        self.OPENAPI_JSON_PATH = "openapi.json"
        self.OPENAPI_SWAGGER_UI_PATH = "docs"
        # Swagger UI's assets are served by us (app/docs_assets.py): the docs work offline too.
        self.OPENAPI_SWAGGER_UI_URL = "/api/v1/docs/assets/"
        self.API_SPEC_OPTIONS = {
            "components": {
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "description": "API key"}
                }
            },
            "security": [{"bearerAuth": []}],
            "info": {"description": "Multi-tenant help desk API. A key alone identifies its tenant."},
        }
