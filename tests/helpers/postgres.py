"""A private PostgreSQL cluster for tests: initdb + pg_ctl from Debian's postgresql package.

Runs as user ``postgres`` when the tests run as root (PostgreSQL refuses root), on a
free loopback port with its unix socket in the cluster's own temp dir; trust auth,
fsync off (test data only). ``PostgresCluster.new_database()`` gives each test a fresh
database URL.
"""
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import List, Optional


def pg_bindir() -> Optional[Path]:
    """Debian's newest PostgreSQL server binaries, or None when not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresCluster:
    def __init__(self) -> None:
        bindir = pg_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql "
                               "(apt-get install postgresql)")
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="abserver-pg-"))
        self.data = self.dir / "data"
        self.port = 0
        self.as_root = os.geteuid() == 0

    def _run(self, args: List[str], timeout: int = 120) -> None:
        cmd = [str(self.bindir / args[0])] + args[1:]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=str(self.dir))
        if done.returncode != 0:
            log = (self.dir / "postgres.log")
            raise RuntimeError("%s failed: %s %s\n%s" % (args[0], done.stdout, done.stderr,
                                                         log.read_text() if log.exists() else ""))

    def start(self) -> "PostgresCluster":
        if self.as_root:
            shutil.chown(str(self.dir), "postgres", "postgres")
        self._run(["initdb", "-D", str(self.data), "--auth=trust", "-U", "postgres", "-E", "UTF8",
                   "--no-sync"])
        last = None
        for _ in range(5):  # a free port can be taken between probe and bind: retry
            self.port = _free_port()
            opts = ("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
                    "-c full_page_writes=off -c max_connections=300" % (self.port, self.dir))
            try:
                self._run(["pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.dir / "postgres.log"),
                           "-w", "-t", "90", "start"])
                return self
            except RuntimeError as exc:
                last = exc
        raise RuntimeError("PostgreSQL did not start: %s" % last)

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def url(self, dbname: str = "postgres") -> str:
        return "postgresql://postgres@127.0.0.1:%d/%s" % (self.port, dbname)

    def new_database(self) -> str:
        import sqlalchemy as sa

        name = "t_" + uuid.uuid4().hex[:12]
        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text("CREATE DATABASE %s" % name))
        engine.dispose()
        return self.url(name)

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(["pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop"])
        finally:
            shutil.rmtree(str(self.dir), ignore_errors=True)

    def __enter__(self) -> "PostgresCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
