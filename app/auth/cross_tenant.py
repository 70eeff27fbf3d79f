"""Log every attempt to use one tenant's credential at another tenant, for whoever watches the logs.

A key, a stream token or a session cookie of tenant A presented where the URL names tenant B is
refused (404) wherever it is caught; this records it once, on the `tms.security` logger, with
the tenant ids, the credential's kind and id, the route and the client address: never a key,
token or cookie.
"""

from __future__ import annotations

import logging

from flask import request

from app.auth.throttle import client_address

log = logging.getLogger("tms.security")


def cross_tenant_attempt(credential: str, credential_id: object, own_tenant: str, named_slug: str) -> None:
    """Record that a `credential` ("api_key", "stream_token", "session") of `own_tenant` was used at `named_slug`.

    A browser signed in to one organization that opens another's pages is ordinary (people belong
    to several), so sessions are logged at INFO; keys and tokens, which a program sends, at WARNING.
    """
    level = logging.INFO if credential == "session" else logging.WARNING
    log.log(level, "cross-tenant attempt: %s %s of tenant %s used at tenant %s on %s %s from %s",
                credential, credential_id, own_tenant, named_slug, request.method, request.url_rule or request.path,
                client_address())
