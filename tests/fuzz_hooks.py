"""Schemathesis hooks (SCHEMATHESIS_HOOKS=tests.fuzz_hooks): what two of our custom formats hold.

JSON Schema cannot say "a cursor this API signed" or "a URL whose host resolves to public
addresses". The document names these formats (`cursor`, `webhook-url`) and describes them; here
the fuzzer learns which values are such: no cursor at all (an empty one), and URLs under the
reserved `.example` domain, which never resolves to a private address. Values that break the
rest of the schema (type, length, pattern) are still generated for the negative checks.
"""

import uuid

import schemathesis
from hypothesis import strategies as st

schemathesis.openapi.format("cursor", st.just(""))
schemathesis.openapi.format("webhook-url", st.builds(
    lambda host, path: f"https://{host}.example/{path}",
    st.from_regex(r"[a-z][a-z0-9]{0,20}", fullmatch=True),
    st.from_regex(r"[a-z0-9/_-]{0,30}", fullmatch=True)))


@schemathesis.hook
def before_call(context, case, **kwargs) -> None:
    """Make each Idempotency-Key that is sent unique to its call.

    Schemathesis sends identical requests again when it replays or shrinks a case; a creating
    POST repeated with the same key and body rightly answers with the first response, whose
    resource a later step may have deleted, which its "created resource not found" check then
    misreads. The header is still sent, and still checked against its documented limits.
    """
    headers = case.headers or {}
    key = headers.get("Idempotency-Key")
    if isinstance(key, str) and 1 <= len(key) <= 200:
        headers["Idempotency-Key"] = f"{key}:{uuid.uuid4()}"
