"""PostgreSQL from Debian's packages, run as the postgres user on 127.0.0.1.

The server refuses to run as root, so when we are root the data directory is handed to the
postgres user and the server is started under that uid. The superuser gets a generated password
(scram-sha-256 on TCP); its DSN is what the tests and the operator use.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
from functools import cached_property
from pathlib import Path

from checkout_stack import debian, versions
from checkout_stack.components.base import ProcessComponent, Status, port_open
from checkout_stack.console import info
from checkout_stack.processes import ManagedProcess, ProcessError
from checkout_stack.settings import HOST, StackSettings

PACKAGES = (f"postgresql-{versions.POSTGRES_MAJOR}", f"postgresql-client-{versions.POSTGRES_MAJOR}")
SERVER_USER = "postgres"


class Postgres(ProcessComponent):
    """A single PostgreSQL server."""

    name = "postgres"
    version = versions.POSTGRES_MAJOR
    health_description = "PostgreSQL to accept connections"

    def __init__(self, settings: StackSettings) -> None:
        super().__init__(settings)
        self.bin = Path(f"/usr/lib/postgresql/{versions.POSTGRES_MAJOR}/bin")

    @property
    def _as_root(self) -> bool:
        return os.geteuid() == 0

    @cached_property
    def home(self) -> Path:
        """Folder of the cluster: ``<run_dir>/postgres`` where the postgres user can reach it.

        When it cannot (a checkout under a private folder), a folder under that user's home keyed
        by the run directory's path.
        """
        preferred = self.settings.run_dir / "postgres"
        if not self._as_root:
            return preferred
        self.settings.run_dir.mkdir(parents=True, exist_ok=True)
        reach = subprocess.run(
            ["runuser", "-u", SERVER_USER, "--", "test", "-x", str(self.settings.run_dir)], check=False
        )
        if reach.returncode == 0:
            return preferred
        key = hashlib.sha256(str(self.settings.run_dir.resolve()).encode()).hexdigest()[:12]
        return Path(pwd.getpwnam(SERVER_USER).pw_dir) / "checkout-platform" / key

    @cached_property
    def data_dir(self) -> Path:
        """The cluster's data directory (owned by the postgres user when we are root)."""
        return self.home / "data"

    @property
    def password_file(self) -> Path:
        """The generated superuser password (readable by the stack's user only)."""
        return self.settings.run_dir / "secrets" / "postgres-superuser-password"

    def installed(self) -> bool:
        """Whether the server binaries are present."""
        return (self.bin / "postgres").exists() and not debian.missing(PACKAGES)

    def install(self) -> None:
        """Install the Debian packages if missing."""
        added = debian.ensure(PACKAGES, self.settings.logs_dir / "setup-debian.log")
        if added:
            info(f"installed Debian packages: {' '.join(added)}")

    def process(self) -> ManagedProcess:
        """The server, run as the postgres user; SIGINT stops it with a "fast" shutdown."""
        return ManagedProcess(
            name=self.name,
            argv=[
                str(self.bin / "postgres"),
                "-D",
                str(self.data_dir),
                "-c",
                f"listen_addresses={HOST}",
                "-c",
                f"port={self.settings.postgres.port}",
                "-c",
                "unix_socket_directories=",
                "-c",
                "max_connections=400",
                "-c",
                "shared_buffers=256MB",
                "-c",
                "log_min_messages=warning",
            ],
            run_dir=self.settings.run_dir,
            user=SERVER_USER,
            stop_signal=signal.SIGINT,  # "fast" shutdown: roll back open transactions, then exit
        )

    def _run_as_server_user(self, argv: list[str]) -> None:
        if self._as_root:
            argv = ["runuser", "-u", SERVER_USER, "--", *argv]
        log = self.settings.logs_dir / "postgres-initdb.log"
        with log.open("ab") as out:
            result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
        if result.returncode:
            raise ProcessError(f"`{' '.join(argv)}` failed; see {log}")

    def _initdb(self) -> None:
        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
        self.password_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.password_file.exists():
            self.password_file.write_text(secrets.token_urlsafe(24))
            self.password_file.chmod(0o600)
        self.home.mkdir(parents=True, exist_ok=True)
        pwfile = self.home / "initdb-pwfile"
        shutil.copyfile(self.password_file, pwfile)
        if self._as_root:
            server = pwd.getpwnam(SERVER_USER)
            os.chown(self.home, server.pw_uid, server.pw_gid)
            os.chown(pwfile, server.pw_uid, server.pw_gid)
        try:
            self._run_as_server_user(
                [
                    str(self.bin / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    self.settings.postgres.user,
                    "--pwfile",
                    str(pwfile),
                    "--auth-host=scram-sha-256",
                    "--auth-local=peer",
                    "--encoding=UTF8",
                    "--no-locale",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def prepare(self) -> None:
        """Initialise the cluster on first use."""
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()

    def healthy(self) -> bool:
        """pg_isready over TCP."""
        if not port_open(self.settings.postgres.port):
            return False
        result = subprocess.run(
            [str(self.bin / "pg_isready"), "-q", "-h", HOST, "-p", str(self.settings.postgres.port)],
            check=False,
        )
        return result.returncode == 0

    def dsn(self) -> str:
        """Superuser DSN (libpq URL form)."""
        password = self.password_file.read_text().strip() if self.password_file.exists() else ""
        cfg = self.settings.postgres
        return f"postgresql://{cfg.user}:{password}@{HOST}:{cfg.port}/{cfg.database}"

    def status(self) -> Status:
        """Version, address, health."""
        return self._status_row(f"PostgreSQL {self.version} (Debian)", f"{HOST}:{self.settings.postgres.port}")

    def env(self) -> dict[str, str]:
        """DATABASE_URL: the superuser DSN."""
        return {"DATABASE_URL": self.dsn()}
