"""Schemathesis hooks (SCHEMATHESIS_HOOKS=tests.fuzz_hooks): what the document cannot say, told to the fuzzer.

JSON Schema cannot say "a cursor this API signed", "a URL whose host resolves to public
addresses", "the id of a user of this organization who may take tickets", "a key no other
request used", "bytes of a file type the organization allows", "the ETag you read" or "a day
at most a century before `to`". The server refuses such
well-formed but meaningless values (422 naming the field, or 415 for the file), which is right;
schemathesis, judging by the document alone, would call that a schema-valid request rejected.
So before each call that schemathesis means as valid, the hooks swap those values for ones that
mean something in the fuzzing tenant (asking the live app, as the fuzzing admin, what exists
now), or for null, an empty cursor, a fresh key or plain text. Values that break the schema
(type, length, pattern) are never touched, so every negative check still sees them;
schemathesis revalidates each generated case after the hook, so a swap can never pass off a bad
request as a good one. The exception is a value a stateful step takes from an earlier response,
which schemathesis counts as valid unchecked: an id that is none becomes an id of nothing
(`_ids_in_id_parameters`).

The hooks also keep the run authenticated: schemathesis learns ids from responses, so it would
in time delete, demote or revoke the very admin and key it acts as, and every later request
would answer 401. Destructive calls aimed at that admin, that key and the seeded team (the
fallback for team ids) go to an id of nothing instead (404).

The test writes what the hooks need (address, key, protected ids) to the JSON file named by
FUZZ_CONTEXT.
"""

from __future__ import annotations

import ast
import json
import os
import re
import threading
import uuid
from datetime import date
from functools import cache
from typing import Any

import requests
import schemathesis
from hypothesis import strategies as st

from app.dashboard.services import earliest_start
from app.media.inspection import SNIFF_BYTES, plainly_not_allowed, sniff
from app.media.types import ALL_TYPES
from app.pagination import MAX_CURSOR
from app.schemas import parse_uuid

# CPython 3.11's `ast` counts its recursion depth in state its threads share, so two threads parsing at
# once can raise "SystemError: AST constructor recursion depth mismatch". Hypothesis parses a filter's
# source to name it, on both of schemathesis's worker threads: a run stopped with that engine error,
# every one of its 4,851 cases having passed.
_parsing = threading.Lock()
_parse = ast.parse


def _parse_one_at_a_time(*args: Any, **kwargs: Any) -> ast.AST:
    with _parsing:
        return _parse(*args, **kwargs)


ast.parse = _parse_one_at_a_time


schemathesis.openapi.format("cursor", st.just(""))
schemathesis.openapi.format("webhook-url", st.builds(
    lambda host, path: f"https://{host}.example/{path}",
    st.from_regex(r"[a-z][a-z0-9]{0,20}", fullmatch=True),
    st.from_regex(r"[a-z0-9/_-]{0,30}", fullmatch=True)))

UUID = re.compile(r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$")
CURSOR = re.compile(rf"^[A-Za-z0-9_.-]{{1,{MAX_CURSOR}}}$")  # app.pagination.CURSOR_PATTERN, non-empty
ROLES = ("admin", "agent", "requester")  # most powerful first, as app.people.models.ROLES
FALLBACK_SKILLS = ["fuzzing"]

_local = threading.local()


@cache
def _context() -> dict[str, str]:
    path = os.environ.get("FUZZ_CONTEXT")
    if not path:
        return {}
    with open(path) as f:
        return json.load(f)


def _get(path: str, params: dict | None = None) -> requests.Response | None:
    """GET `path` as the fuzzing admin; None if the app cannot be asked."""
    context = _context()
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
        session.headers["Authorization"] = f"Bearer {context['key']}"
    try:
        return session.get(context["base"].rstrip("/") + path, params=params, timeout=30)
    except requests.RequestException:
        return None


def _found(path: str) -> dict | None:
    resp = _get(path)
    return resp.json() if resp is not None and resp.status_code == 200 else None


def _is_uuid(value: Any) -> bool:
    return isinstance(value, str) and UUID.match(value) is not None


def _positive(case) -> bool:
    meta = case.meta
    return meta is None or meta.generation.mode.is_positive


@schemathesis.hook
def before_call(context, case, **kwargs) -> None:
    _unique_idempotency_key(case)
    if not _context():
        return
    _protect_the_fuzzing_identity(case)
    if _positive(case):
        _ids_in_id_parameters(case)
        _real_cursor(case)
        _real_references(case)
        _any_version(case)
        _period_within_a_century(case)


def _ids_in_id_parameters(case) -> None:
    """Give an id parameter that holds no id an id of nothing.

    A stateful step fills parameters from earlier responses whatever their declared pattern (an
    audit event's number into a delivery list's `event_id`) and still counts the case as valid
    data, which the server must refuse (422). The one exception to leaving values that break the
    schema alone: the case is then what it is counted as, a valid id of nothing (404 or an empty list).
    """
    for part in ("path_parameters", "query"):
        values = getattr(case, part)
        if not values:
            continue
        for parameter in getattr(case.operation, part):
            value = values.get(parameter.name)
            if parameter.definition.get("schema", {}).get("format") == "uuid" and value is not None:
                try:
                    parse_uuid(value)
                except ValueError:
                    values = {**values, parameter.name: str(uuid.uuid4())}
        setattr(case, part, values)


def _unique_idempotency_key(case) -> None:
    """Make each Idempotency-Key that is sent unique to its call, keeping its length.

    Schemathesis sends identical requests again when it replays or shrinks a case, and cases
    of one operation may share one headers dictionary; a creating POST repeated with the same
    key and body rightly answers with the first response, whose resource a later step may have
    deleted (which its "created resource not found" check then misreads), and the same key with
    another body rightly answers 422. So a fresh key goes out on every call: the generated one
    with its end replaced by a new UUID (a short one is lengthened to hold it), in a headers
    dictionary of the call's own. A key outside the documented 1 to 255 characters is left as
    it is, for the negative checks.
    """
    headers = case.headers
    key = headers.get("Idempotency-Key") if headers else None
    if isinstance(key, str) and 1 <= len(key) <= 255:
        fresh = f":{uuid.uuid4()}"
        headers = headers.copy()
        headers["Idempotency-Key"] = key[:max(len(key) - len(fresh), 0)] + fresh
        case.headers = headers


PROTECTED = {
    # (method, path, path parameter): the context entry it must never name
    ("PATCH", "/api/v1/users/{user_id}", "user_id"): "user_id",
    ("DELETE", "/api/v1/users/{user_id}", "user_id"): "user_id",
    ("DELETE", "/api/v1/api-keys/{key_id}", "key_id"): "key_id",
    ("POST", "/api/v1/api-keys/{key_id}/rotate", "key_id"): "key_id",
    ("DELETE", "/api/v1/teams/{team_id}", "team_id"): "team_id",
}


def _protect_the_fuzzing_identity(case) -> None:
    """Send calls that would delete, demote or revoke the fuzzing admin or its key, or delete the
    seeded team, to an id of nothing instead."""
    context = _context()
    for (method, path, name), entry in PROTECTED.items():
        if case.method.upper() == method and case.operation.path == path:
            value = (case.path_parameters or {}).get(name)
            if _same(value, context[entry]):
                case.path_parameters = {**case.path_parameters, name: str(uuid.uuid4())}


@schemathesis.hook
def map_body(context, body):
    """Swap an upload's bytes that already show a type the tenant refuses (random bytes can start
    like an AC-3 audio frame) for plain text: `format: binary` cannot say which bytes are allowed.

    Done as the body is generated, not before the call: schemathesis cannot revalidate a body
    holding bytes, so a body changed later would count as invalid. Only a file the schema takes
    (at least one byte) is swapped, for another it takes, so no case changes validity.
    """
    operation = context.operation
    if operation is None or operation.method.upper() != "POST" \
            or operation.path != "/api/v1/tickets/{ticket_id}/attachments" \
            or not isinstance(body, dict) or "file" not in body:
        return body
    value = body["file"]
    data = getattr(value, "data", value)  # schemathesis wraps generated bytes in a Binary
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    if not isinstance(data, bytes) or not data:
        return body
    if plainly_not_allowed(sniff(data[:SNIFF_BYTES]), frozenset(ALL_TYPES)):
        allowed = b"A file of a type the organization allows.\n"
        return {**body, "file": type(value)(data=allowed) if hasattr(value, "data") else allowed}
    return body


def _real_cursor(case) -> None:
    """Swap a well-formed cursor this API never gave out for the next page's real cursor, or none."""
    query = case.query or {}
    cursor = query.get("cursor")
    if not isinstance(cursor, str) or not CURSOR.match(cursor) or case.method.upper() != "GET":
        return
    try:
        path = case.operation.path.format(**(case.path_parameters or {}))
    except (KeyError, IndexError, ValueError):
        path = None
    real = ""
    if path is not None:
        resp = _get(path, {**{k: v for k, v in query.items() if k != "cursor"}, "limit": 1})
        if resp is not None and resp.status_code == 200:
            body = resp.json()
            real = body.get("next_cursor") or body.get("poll_cursor") or ""
    case.query = {**query, "cursor": real}


def _any_version(case) -> None:
    """An If-Match the fuzzer made up names no version the ticket ever had, so 412 is right: send `*`."""
    headers = case.headers
    if headers and isinstance(headers.get("If-Match"), str):
        case.headers = {**headers, "If-Match": "*"}


def _period_within_a_century(case) -> None:
    """A period longer than a century is refused with 422 (the document cannot relate two dates): shorten it."""
    query = case.query
    if not query or not isinstance(query.get("from"), str):
        return
    try:
        start = date.fromisoformat(query["from"])
        end = date.fromisoformat(query["to"]) if isinstance(query.get("to"), str) else date.today()
    except ValueError:
        return
    if start < earliest_start(end):
        case.query = {**query, "from": end.isoformat()}


def _real_references(case) -> None:
    """Point ids in bodies (and a team member's path id) at things of the fuzzing tenant that fit, or null."""
    method, path = case.method.upper(), case.operation.path
    body = case.body if isinstance(case.body, dict) else None
    context = _context()
    changed = dict(body) if body is not None else None
    if body is not None and method == "POST" and path == "/api/v1/tickets":
        if _is_uuid(body.get("requester_id")) and _found(f"/api/v1/users/{body['requester_id']}") is None:
            changed["requester_id"] = context["user_id"]
    elif body is not None and method == "PATCH" and path == "/api/v1/tickets/{ticket_id}":
        if _is_uuid(body.get("assignee_id")):
            user = _found(f"/api/v1/users/{body['assignee_id']}")
            if user is None or user.get("role") not in ("admin", "agent"):
                changed["assignee_id"] = context["user_id"]
        if _is_uuid(body.get("team_id")) and _found(f"/api/v1/teams/{body['team_id']}") is None:
            changed["team_id"] = context["team_id"]
    elif body is not None and method == "POST" and path == "/api/v1/tickets/{ticket_id}/messages":
        ticket_id = (case.path_parameters or {}).get("ticket_id")
        if _is_uuid(body.get("parent_id")) and (
                not _is_uuid(ticket_id) or _found(f"/api/v1/tickets/{ticket_id}/messages/{body['parent_id']}") is None):
            changed["parent_id"] = None
        ids = body.get("attachment_ids")
        if isinstance(ids, list) and ids and all(_is_uuid(i) for i in ids):
            changed["attachment_ids"] = [i for n, i in enumerate(ids) if i not in ids[:n] and _unsent_upload(
                i, ticket_id)]
    elif body is not None and method == "POST" and path == "/api/v1/api-keys":
        role = body.get("role", "admin")
        if _is_uuid(body.get("user_id")) and role in ROLES:
            user = _found(f"/api/v1/users/{body['user_id']}")
            if user is None or ROLES.index(role) < ROLES.index(user.get("role", "requester")):
                changed["user_id"] = context["user_id"]
    elif body is not None and method in ("POST", "PATCH") and path.startswith("/api/v1/assignment-rules") \
            and path != "/api/v1/assignment-rules/dry-run":
        if _is_uuid(body.get("team_id")) and _found(f"/api/v1/teams/{body['team_id']}") is None:
            changed["team_id"] = context["team_id"]
        if method == "PATCH":
            # A rule left with the skills strategy and no skills is refused; whether this change
            # does that depends on the rule as it is, so a change that might always names a skill.
            skills = body.get("required_skills")
            if (body.get("strategy") == "skills" and not skills) or (
                    "strategy" not in body and isinstance(skills, list) and not skills):
                changed["required_skills"] = FALLBACK_SKILLS
    elif body is not None and method == "PATCH" and path == "/api/v1/media/settings":
        # The organization's allowed types and size limit decide whether a later upload, valid by
        # the document, is taken (415 and 413 otherwise); the fuzzing tenant keeps them all.
        if isinstance(body.get("allowed_types"), list):
            changed["allowed_types"] = list(ALL_TYPES)
        if isinstance(body.get("max_size"), int) and not isinstance(body["max_size"], bool):
            settings = _found("/api/v1/media/settings")
            if settings is not None:
                changed["max_size"] = settings["instance_max_size"]
    elif method == "PUT" and path == "/api/v1/teams/{team_id}/members/{user_id}":
        user_id = (case.path_parameters or {}).get("user_id")
        if _is_uuid(user_id):
            user = _found(f"/api/v1/users/{user_id}")
            if user is not None and user.get("role") not in ("admin", "agent"):
                case.path_parameters = {**case.path_parameters, "user_id": context["user_id"]}
    if changed is not None and changed != body:
        case.body = changed


def _unsent_upload(attachment_id: str, ticket_id: Any) -> bool:
    """Whether the fuzzing admin uploaded this file to this ticket and no message carries it yet."""
    attachment = _found(f"/api/v1/attachments/{attachment_id}")
    return (attachment is not None and _same(attachment.get("ticket_id"), ticket_id)
            and attachment.get("message_id") is None and _same(attachment.get("uploader_id"), _context()["user_id"]))


def _same(a: Any, b: Any) -> bool:
    return _is_uuid(a) and _is_uuid(b) and uuid.UUID(a) == uuid.UUID(b)
