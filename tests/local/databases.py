"""Real database servers for the tests: PostgreSQL and MariaDB from Debian's packages, on 127.0.0.1.

Each server gets a temporary data directory and a free port, runs as the
package's system user (neither server runs as root) and is stopped when the
fixture ends. `make setup` installs the packages (scripts/install_databases.sh).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

POSTGRES_BIN = Path("/usr/lib/postgresql")
START_S = 120.0  # how long a server may take to accept connections on a loaded machine


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as(user: str, *argv: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    command = [str(a) for a in argv]
    if os.geteuid() == 0:
        command = ["runuser", "-u", user, "--", *command]
    return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs)


def _owned_dir(root: Path, user: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(root, user, user)
    return root


@contextmanager
def _scratch(prefix: str) -> Iterator[Path]:
    """A directory right under the system's temporary folder, which the server's user can reach
    (pytest's own folders are private to root)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _wait_for(port: int, log: Path, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline and (process is None or process.poll() is None):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the database server did not listen on 127.0.0.1:{port}; its log:\n{_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:] if log.exists() else f"(no {log})"


def postgres_bin() -> Path:
    versions = sorted(POSTGRES_BIN.glob("*/bin/postgres"))
    if not versions:
        raise RuntimeError("PostgreSQL's server is not installed: run `make setup` (apt-get install postgresql)")
    return versions[-1].parent


@contextmanager
def postgres() -> Iterator[dict[str, Any]]:
    """A PostgreSQL server; yields Windmill's postgresql resource for its database `millrace`."""
    with _scratch("millrace-postgres-") as root:
        yield from _postgres(root)


def _postgres(root: Path) -> Iterator[dict[str, Any]]:
    binaries, user = postgres_bin(), "postgres"
    data, port = _owned_dir(root / "pgdata", user), free_port()
    log = root / "postgres.log"
    _owned_dir(root, user)
    _as(user, binaries / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
    _as(user, binaries / "pg_ctl", "-D", data, "-l", log, "-w", "-t", str(int(START_S)), "start",
        "-o", f"-h 127.0.0.1 -p {port} -k {data} -c fsync=off")
    try:
        _wait_for(port, log)
        _as(user, binaries / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "millrace")
        yield {"host": "127.0.0.1", "port": port, "user": "postgres", "password": "", "dbname": "millrace",
               "sslmode": "disable"}
    finally:
        _as(user, binaries / "pg_ctl", "-D", data, "-m", "immediate", "stop")


@contextmanager
def mariadb() -> Iterator[dict[str, Any]]:
    """A MariaDB server; yields Windmill's mysql resource for its database `millrace`."""
    with _scratch("millrace-mariadb-") as root:
        yield from _mariadb(root)


def _mariadb(root: Path) -> Iterator[dict[str, Any]]:
    server, install = shutil.which("mariadbd") or "/usr/sbin/mariadbd", shutil.which("mariadb-install-db")
    if install is None or not Path(server).exists():
        raise RuntimeError("MariaDB's server is not installed: run `make setup` (apt-get install mariadb-server)")
    user = "mysql"
    _owned_dir(root, user)
    data, port = _owned_dir(root / "data", user), free_port()
    log, sock = root / "mariadb.log", root / "mariadb.sock"
    _as(user, install, f"--datadir={data}", "--auth-root-authentication-method=normal", "--skip-test-db")
    command = [server, "--no-defaults", f"--datadir={data}", "--bind-address=127.0.0.1", f"--port={port}",
               f"--socket={sock}", f"--log-error={log}", f"--pid-file={root / 'mariadb.pid'}"]
    if os.geteuid() == 0:
        command = ["runuser", "-u", user, "--", *command]
    with (root / "mariadb.out").open("wb") as output:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
    try:
        _wait_for(port, root / "mariadb.out" if process.poll() is not None else log, process)
        client = shutil.which("mariadb") or "mysql"
        _as(user, client, f"--socket={sock}", "-uroot", "-e",
            "CREATE DATABASE millrace; CREATE USER 'millrace'@'127.0.0.1' IDENTIFIED BY 'secret';"
            " GRANT ALL ON millrace.* TO 'millrace'@'127.0.0.1';")
        yield {"host": "127.0.0.1", "port": port, "user": "millrace", "password": "secret", "database": "millrace"}
    finally:
        process.terminate()
        process.wait()
