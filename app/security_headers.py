"""Headers every response carries: what a browser may load, frame and send on, and what may be cached.

Pages get `Cache-Control: no-store` (they show one organization's data), a Content-Security-Policy
with no inline scripts and `frame-ancestors 'none'` (no clickjacking), `X-Content-Type-Options:
nosniff` and a strict Referrer-Policy. API responses
are `Cache-Control: no-store` (they carry tenant data and keys), and nosniff too. Served over
https, responses also carry HSTS. A view that sets a header itself (a download's sandboxing
CSP, say) keeps it.
"""

from __future__ import annotations

from flask import Flask, Response, request

PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
            "connect-src 'self' ws: wss:; font-src 'self'; object-src 'none'; base-uri 'self'; "
            "form-action 'self'; frame-ancestors 'none'")
# Swagger UI (served at /api/v1/docs from the swagger-ui-bundle wheel) starts with an inline script.
DOCS_CSP = PAGE_CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'").replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'")
HSTS = "max-age=31536000; includeSubDomains"


def init_app(app: Flask) -> None:
    app.after_request(add_security_headers)


def add_security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    api = request.path.startswith("/api/")
    if api and not request.path.startswith("/api/v1/docs"):
        headers.setdefault("Cache-Control", "no-store")
    else:
        headers.setdefault("Content-Security-Policy",
                           DOCS_CSP if request.path.startswith("/api/v1/docs") else PAGE_CSP)
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Frame-Options", "DENY")
        if request.blueprint != "static" and not request.path.startswith("/static/"):
            # Pages show one organization's data: no shared cache, no back-button copy after sign-out.
            headers.setdefault("Cache-Control", "no-store")
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", HSTS)
    return response
