"""Settings are read once, at start, and a value the product cannot run with stops it there, naming
the variable, instead of a bare traceback or a product that answers 429, 413 or 500 to everything."""

from __future__ import annotations

import pytest

from app.config import Config, ConfigError


@pytest.mark.parametrize(("name", "value"), [
    ("RATE_LIMIT_PER_MINUTE", "abc"), ("RATE_LIMIT_PER_MINUTE", "1.5"), ("RATE_LIMIT_PER_MINUTE", "0"),
    ("RATE_LIMIT_PER_MINUTE", "-5"), ("JSON_MAX_BYTES", "0"),
    ("MEDIA_MAX_SIZE", "-1"), ("DB_POOL_SIZE", "-1"), ("REDIS_MAX_CONNECTIONS", "0"), ("TRUSTED_PROXIES", "yes"),
    ("TRUSTED_PROXIES", "-1"), ("CLAMD_PORT", "abc"), ("CLAMD_PORT", "70000"), ("DB_POOL_TIMEOUT", "abc"),
    ("STREAM_PING_INTERVAL", "0"), ("STREAM_PING_INTERVAL", "nan"), ("STREAM_PING_INTERVAL", "inf"),
    ("MEDIA_SWEEP_HOURS", "-1"), ("MEDIA_SWEEP_HOURS", "nan"),
    ("DB_CONNECTION_MAX_TENANTS", "-1"), ("POOL_CHECKOUT_GUARD", "maybe"), ("SESSION_COOKIE_SECURE", "sure"),
    ("REDIS_URL", "notaurl"), ("REDIS_URL", "http://127.0.0.1:6379"), ("PREFERRED_URL_SCHEME", "ftp"),
])
def test_a_value_the_product_cannot_run_with_is_refused_by_name(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=f"^{name} must be .*{value!r}"):
        Config()


@pytest.mark.parametrize(("name", "value", "attribute", "expected"), [
    ("RATE_LIMIT_PER_MINUTE", " 30 ", "RATE_LIMIT_PER_MINUTE", 30),
    ("RATE_LIMIT_PER_MINUTE", "", "RATE_LIMIT_PER_MINUTE", 1200),  # set to nothing: the default
    ("DB_CONNECTION_MAX_TENANTS", "0", "DB_CONNECTION_MAX_TENANTS", 0),  # 0: never
    ("DB_POOL_RECYCLE", "-1", "DB_POOL_RECYCLE", -1),  # SQLAlchemy's never
    ("DASHBOARD_CACHE_SECONDS", "0", "DASHBOARD_CACHE_SECONDS", 0),
    ("STREAM_RESYNC_INTERVAL", "0.5", "STREAM_RESYNC_INTERVAL", 0.5),
    ("MEDIA_SWEEP_HOURS", "0", "MEDIA_SWEEP_HOURS", 0),  # 0: never
    ("PREFERRED_URL_SCHEME", "", "PREFERRED_URL_SCHEME", "http"),
    ("MEDIA_BACKEND", "", "MEDIA_BACKEND", "local"),
    ("MEDIA_ANTIVIRUS", "", "MEDIA_ANTIVIRUS", "clamd"),
    ("SESSION_COOKIE_SECURE", "yes", "SESSION_COOKIE_SECURE", True),
    ("SESSION_COOKIE_SECURE", "ON", "SESSION_COOKIE_SECURE", True),
    ("SESSION_COOKIE_SECURE", "off", "SESSION_COOKIE_SECURE", False),
    ("POOL_CHECKOUT_GUARD", "True", "POOL_CHECKOUT_GUARD", True),
    ("DATABASE_URL", "postgres://u:p@db.example:5432/desk", "SQLALCHEMY_DATABASE_URI",
     "postgresql://u:p@db.example:5432/desk"),  # the form hosts hand out
    ("REDIS_URL", "rediss://cache.example:6380/0", "REDIS_URL", "rediss://cache.example:6380/0"),
])
def test_good_values_are_read(monkeypatch, name, value, attribute, expected):
    monkeypatch.setenv(name, value)
    assert getattr(Config(), attribute) == expected


def test_https_makes_cookies_secure_unless_told_otherwise(monkeypatch):
    monkeypatch.setenv("PREFERRED_URL_SCHEME", "https")
    assert Config().SESSION_COOKIE_SECURE is True
    monkeypatch.setenv("SESSION_COOKIE_SECURE", "0")
    assert Config().SESSION_COOKIE_SECURE is False


def test_the_tenants_domain_is_tenant_domain_or_the_contracts_server_name(monkeypatch):
    monkeypatch.delenv("TENANT_DOMAIN", raising=False)
    monkeypatch.setenv("SERVER_NAME", "desk.example")
    assert Config().SERVER_NAME_FOR_TENANTS == "desk.example"
    monkeypatch.setenv("TENANT_DOMAIN", "help.example")
    assert Config().SERVER_NAME_FOR_TENANTS == "help.example"
