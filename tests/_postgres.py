"""A throwaway PostgreSQL server for the tests: initdb into a temporary folder, serve on a unix socket there.

Used by the session fixture ``postgres_url`` in ``tests/conftest.py``. The server binaries are found in
``/usr/lib/postgresql/*/bin`` (Debian's ``postgresql`` package, installed by ``make system-deps``) or on PATH.
``initdb`` refuses to run as root, so under root the server runs as the ``postgres`` OS user (``runuser``) and
the folder is handed to that user. The cluster has fsync off and listens on no TCP port.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

DATABASE = "mammo_test"


class PostgresUnavailable(RuntimeError):
    """No server could be started; the message says why (used as the pytest skip reason)."""


@dataclass
class PostgresServer:
    """A running throwaway server."""

    folder: Path
    bin_dir: Path
    run_as: str | None
    port: int = 5432

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the test database (psycopg 3 over the unix socket in `folder`)."""
        return f"postgresql+psycopg://postgres@/{DATABASE}?host={self.folder}&port={self.port}"

    def stop(self) -> None:
        """Stop the server at once and delete its folder."""
        try:
            _run(self, "pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop", timeout=60)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: [int(x) for x in re.findall(r"\d+", p)])
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise PostgresUnavailable(
        "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb and no initdb on PATH); "
        "install them with `make system-deps` (Debian package postgresql)"
    )


def _run(server: PostgresServer, program: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    command = [str(server.bin_dir / program), *args]
    if server.run_as:
        command = ["runuser", "-u", server.run_as, "--", *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=server.folder)
    if result.returncode:
        raise PostgresUnavailable(
            f"{program} failed (exit {result.returncode}): {(result.stderr or result.stdout).strip()[-800:]}"
        )
    return result


def start() -> PostgresServer:
    """initdb + pg_ctl start in a new temporary folder, then create the test database.

    Raises
    ------
    PostgresUnavailable
        With the reason (binaries missing, no ``postgres`` user under root, initdb or start failed ...).
    """
    bin_dir = _bin_dir()
    run_as = None
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            raise PostgresUnavailable("running as root but `runuser` is missing, and initdb refuses to run as root")
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable(
                "running as root and there is no `postgres` OS user to run the server as "
                "(initdb refuses root); install Debian's postgresql package"
            ) from None
        run_as = "postgres"
    folder = Path(tempfile.mkdtemp(prefix="mammo-pg-"))
    server = PostgresServer(folder, bin_dir, run_as)
    try:
        if run_as:
            os.chown(folder, owner.pw_uid, owner.pw_gid)
        folder.chmod(0o700)
        quiet = ["--no-instructions"] if _supports_no_instructions(bin_dir) else []
        _run(
            server,
            "initdb",
            "-D",
            str(folder / "data"),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            *quiet,
        )
        options = (
            f"-F -p {server.port} -k {folder} -c listen_addresses='' -c max_connections=60 "
            "-c shared_buffers=16MB -c synchronous_commit=off"
        )
        _run(
            server,
            "pg_ctl",
            "-D",
            str(folder / "data"),
            "-l",
            str(folder / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        import psycopg

        with psycopg.connect(
            host=str(folder), port=server.port, user="postgres", dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(f"CREATE DATABASE {DATABASE}")
    except BaseException as exc:
        log = folder / "server.log"
        detail = log.read_text(errors="replace")[-800:] if log.exists() else ""
        try:
            server.stop()
        except Exception:
            shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, PostgresUnavailable):
            raise PostgresUnavailable(f"{exc} {detail}".strip()) from None
        if isinstance(exc, Exception):
            raise PostgresUnavailable(
                f"PostgreSQL test server did not start: {type(exc).__name__}: {exc} {detail}".strip()
            ) from exc
        raise
    return server


def _supports_no_instructions(bin_dir: Path) -> bool:
    """``initdb --no-instructions`` exists from PostgreSQL 14 on."""
    match = re.search(r"/(\d+)/bin$", str(bin_dir))
    return bool(match) and int(match.group(1)) >= 14
