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


def _signup(base: str, slug: str) -> str:
    resp = requests.post(f"{base}/api/v1/signup", json={
        "name": f"Fuzz {slug}", "slug": slug, "admin_email": f"admin@{slug}.example.com",
        "admin_password": "correct horse battery"}, timeout=30)
    assert resp.status_code == 201, resp.text
    return resp.json()["api_key"]


def _seed(base: str, key: str) -> None:
    """One of everything, so operations on ids have something of each tenant's to find."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    agent = session.post(f"{base}/api/v1/users", json={"email": "agent@example.com", "name": "Agent",
                                                       "role": "agent", "password": "long password"}, timeout=30).json()
    team = session.post(f"{base}/api/v1/teams", json={"name": "Support"}, timeout=30).json()
    session.put(f"{base}/api/v1/teams/{team['id']}/members/{agent['id']}", timeout=30)
    session.post(f"{base}/api/v1/assignment-rules", json={"name": "all", "team_id": team["id"],
                                                          "strategy": "round_robin"}, timeout=30)
    ticket = session.post(f"{base}/api/v1/tickets", json={"title": "Printer on fire"}, timeout=30).json()
    session.post(f"{base}/api/v1/tickets/{ticket['id']}/messages", json={"body": "hello"}, timeout=30)


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
    keys = {name: _signup(base, f"fz{name[0]}{suffix:08x}") for name in ("alice", "bob")}
    for key in keys.values():
        _seed(base, key)
    (tmp_path / "auth.json").write_text(json.dumps({"auth": [
        {"name": name, "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {key}"}]}
        for name, key in keys.items()]}))
    seed = random.randrange(2**31) if SEED == "random" else int(SEED)
    config = [
        f"seed = {seed}",
        "workers = 2",
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
                            env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz_hooks"})
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"seed {seed}:\n{output[-20000:]}"
