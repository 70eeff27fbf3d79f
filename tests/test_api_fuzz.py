"""Schemathesis runs every check it has over every operation of the live app: zero failures.

The app runs in gunicorn as in production; schemathesis (its own CLI, as an integrator would run
it) reads the served OpenAPI document and sends what the document allows and what it forbids,
authenticated as two tenants' admins that are each other's peers for the object-level
authorization check, and judges every answer against the document: status codes, schemas,
headers, content types, rejection of bad data, acceptance of good data, `Allow` on 405,
authentication, use after delete. In CI the seed is fixed, so every run sends the same requests;
humans run longer with fresh random data (README, "Fuzzing the API").

FUZZ_EXAMPLES sets the examples per operation (default 25), FUZZ_SEED the seed (default fixed;
`random` for a fresh one), FUZZ_MAX_TIME a time budget in seconds.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from app.extensions import db
from tenants import schema_for
from tests.servers import ROOT, start_gunicorn, stop_gunicorn

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
SEED = os.environ.get("FUZZ_SEED", "20261203")
MAX_TIME = os.environ.get("FUZZ_MAX_TIME")
OFFLINE_DNS = str(Path(__file__).parent / "offline_dns")


def _signup(base: str, slug: str) -> dict:
    resp = requests.post(f"{base}/api/v1/signup", json={
        "name": f"Fuzz {slug}", "slug": slug, "admin_email": f"admin@{slug}.example.com",
        "admin_password": "correct horse battery"}, timeout=30)
    assert resp.status_code == 201, resp.text
    return resp.json()


def _seed(base: str, key: str) -> dict[str, str]:
    """One of everything, so operations on ids have something of each tenant's to find; return their ids."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"

    def made(resp: requests.Response) -> dict:
        assert resp.status_code in (200, 201, 202), resp.text
        return resp.json()

    agent = made(session.post(f"{base}/api/v1/users", json={"email": "agent@example.com", "name": "Agent",
                                                            "role": "agent", "password": "long password"}, timeout=30))
    team = made(session.post(f"{base}/api/v1/teams", json={"name": "Support"}, timeout=30))
    made(session.put(f"{base}/api/v1/teams/{team['id']}/members/{agent['id']}", timeout=30))
    made(session.post(f"{base}/api/v1/assignment-rules", json={"name": "all", "team_id": team["id"],
                                                               "strategy": "round_robin"}, timeout=30))
    # Subscribed before the ticket, so the webhook has deliveries to list (never sent: nothing enqueues them).
    made(session.post(f"{base}/api/v1/webhooks", json={"url": "https://hooks.example/tickets",
                                                       "events": ["ticket.created", "message.created"]}, timeout=30))
    ticket = made(session.post(f"{base}/api/v1/tickets", json={"title": "Printer on fire"}, timeout=30))
    upload = made(session.post(f"{base}/api/v1/tickets/{ticket['id']}/attachments", timeout=30,
                               files={"file": ("notes.txt", b"toner low\n", "text/plain")}))
    made(session.post(f"{base}/api/v1/tickets/{ticket['id']}/messages", timeout=30,
                      json={"body": "hello", "attachment_ids": [upload["id"]]}))
    mine = [k for k in made(session.get(f"{base}/api/v1/api-keys", timeout=30))["items"] if k["prefix"] in key]
    assert len(mine) == 1, mine
    return {"key_id": mine[0]["id"], "team_id": team["id"]}


@pytest.fixture
def fuzz_server(app, services):
    """The app in gunicorn, answering names from /etc/hosts only, enqueuing nothing (no webhook leaves)."""
    started = datetime.now(UTC)
    server = start_gunicorn(services, OUTBOX_FAST_PATH="0", TMS_TEST_OFFLINE_DNS="1",
                            PYTHONPATH=os.pathsep.join(filter(None, [OFFLINE_DNS, os.environ.get("PYTHONPATH")])))
    yield server
    stop_gunicorn(server)
    # Whatever the fuzzer subscribed can never be delivered, whichever relay sweeps these tenants later.
    with app.app_context():
        slugs = db.session.execute(sa.text("select slug from public.tenants where created_at >= :t"),
                                   {"t": started}).scalars().all()
        for slug in slugs:
            schema = schema_for(slug)
            db.session.execute(sa.text(f'update "{schema}".webhook_subscriptions set enabled = false'))
            db.session.execute(sa.text(f"update \"{schema}\".webhook_deliveries set state = 'failed' "
                                       "where state = 'pending'"))
        db.session.commit()


def test_schemathesis_finds_no_failure(fuzz_server, tmp_path):
    base = fuzz_server.url
    suffix = random.randrange(16**8)
    tenants = {name: _signup(base, f"fz{name[0]}{suffix:08x}") for name in ("alice", "bob")}
    keys = {name: tenant["api_key"] for name, tenant in tenants.items()}
    seeded = {name: _seed(base, key) for name, key in keys.items()}
    (tmp_path / "auth.json").write_text(json.dumps({"auth": [
        {"name": name, "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {key}"}]}
        for name, key in keys.items()]}))
    # What the hooks need: where to ask what exists, as alice, and what they must never let be deleted.
    (tmp_path / "context.json").write_text(json.dumps({
        "base": base, "key": keys["alice"], "user_id": tenants["alice"]["admin_id"], **seeded["alice"]}))
    seed = random.randrange(2**31) if SEED == "random" else int(SEED)
    config = [
        f"seed = {seed}",
        "workers = 2",
        # A timing check of the generator itself (not of the API): on a loaded host it stopped
        # the run at an operation whose bodies take longer to generate, with every case passing.
        'suppress-health-check = ["too_slow"]',
        "[generation]",
        f"max-examples = {EXAMPLES}",
        "[auth.wfc]",
        f'path = "{tmp_path / "auth.json"}"',
        'user = "alice"',
        'peers = ["alice", "bob"]',
    ]
    if MAX_TIME:
        config.insert(0, f"max-time = {int(MAX_TIME)}")
    (tmp_path / "schemathesis.toml").write_text("\n".join(config) + "\n")
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(tmp_path / "schemathesis.toml"),
               "run", f"{base}/api/v1/openapi.json", "--checks", "all", "--report", "junit",
               "--report-dir", str(tmp_path / "report")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800,
                            env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz_hooks",
                                 "FUZZ_CONTEXT": str(tmp_path / "context.json")})
    output = result.stdout + result.stderr
    print(output[-3000:])  # the summary, for `pytest -s`
    assert result.returncode == 0, f"seed {seed}:\n{output[-20000:]}"
    # The whole run stayed authenticated as alice (the hooks never let it revoke or demote itself).
    assert "Authentication failed" not in output, f"seed {seed}:\n{output[-20000:]}"
