"""docs/api.md runs as written: every code block, in order, against the app in gunicorn.

Shell blocks run in one bash script (so variables carry from block to block); a block labelled
with a file name (```python receiver.py) is written to that file for the shell to run; an
unlabelled Python block runs as it stands. Plain ``` blocks show output and are not run.
A worker process delivers the webhooks the docs subscribe to.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from app.embedded import free_port, stop_process
from tests.servers import ROOT, start_gunicorn, start_relay, start_worker, stop_gunicorn

DOC = ROOT / "docs" / "api.md"
BLOCK = re.compile(r"^```(\w+)(?: ([\w.-]+))?\n(.*?)^```$", re.S | re.M)


def script_of(markdown: str) -> str:
    """Return one bash script that runs the document's blocks in order."""
    parts = ["set -euo pipefail"]
    for n, (language, filename, code) in enumerate(BLOCK.findall(markdown), 1):
        parts.append(f"echo '### block {n} ({language})' >&2")
        if filename:
            parts.append(f"cat > {filename} <<'DOC_EOF'\n{code}DOC_EOF")
        elif language == "sh":
            parts.append(code)
        elif language == "python":
            parts.append(f"python3 - <<'DOC_EOF'\n{code}DOC_EOF")
        else:
            raise AssertionError(f"block {n}: a {language} block needs a file name to be run")
    return "\n".join(parts) + "\n"


@pytest.fixture
def docs_server(app, services, tmp_path):
    env = {"WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "1"}
    server = start_gunicorn(services, **env)
    procs = [start_worker(services.database_url, services.redis_url, tmp_path, "docs-worker",
                          "assignment,webhooks", **env),
             start_relay(services.database_url, services.redis_url, tmp_path, **env)]
    yield server
    for proc in procs:
        stop_process(proc, signal.SIGTERM, 10)
    stop_gunicorn(server)


def test_every_code_block_in_the_api_docs_runs(docs_server, tmp_path):
    script = tmp_path / "docs.sh"
    script.write_text(script_of(DOC.read_text()))
    python_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "BASE": docs_server.url, "RECEIVER_PORT": str(free_port()),
           "PATH": f"{python_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    output = result.stdout
    assert result.returncode == 0, f"{result.stderr[-3000:]}\n--- stdout:\n{output[-3000:]}"
    for expected in ("403", "idempotent-replayed: true", "open", "412", '"code":422', "x-ratelimit-limit",
                     "message.created 1 On my way", "stored as seq 2", "verified ticket.closed", "valid",
                     "ticket.closed", "[]"):
        assert expected in output.lower() if expected.islower() else expected in output, (expected, output)
    assert "INVALID" not in output
