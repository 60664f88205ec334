"""Real PostgreSQL 15 servers for tests: a throwaway cluster, a synchronous standby, fresh databases.

`PgServer.create()` runs initdb in a temporary directory of its own (data directory, server log,
unix socket), writes the settings below into postgresql.conf and starts it with `pg_ctl -w` on a
free loopback port. PostgreSQL refuses to run as root, so when the tests run as root every server
command runs as the `postgres` user (subprocess `user=`: the child is the command itself, with no
`runuser` process in between whose PID would hide the real one) in a directory chowned to it.

`kill()` is the crash (SIGKILL of the postmaster and of every backend at once, as when the host
dies); `start()` again on the same data directory is the recovery. `add_sync_standby(primary)`
adds a streaming standby the primary waits for at each commit. `create_database(server)` gives
each test an empty database of its own on one shared server.

Every wait that fails raises `PgError` with the tail of the server's log: a failure in CI can be
read from the test report alone. Nothing is printed. The binaries are Debian's PostgreSQL 15
(/usr/lib/postgresql/15/bin; DS_TEST_PG_BIN names another directory).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit

import pytest

from tests.support.ports import free_ports

T = TypeVar("T")

#: Where Debian installs PostgreSQL 15's server binaries (initdb and pg_ctl are not on PATH there).
PG_BIN = Path(os.environ.get("DS_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_TOOLS = ("initdb", "pg_ctl", "postgres", "pg_basebackup", "pg_rewind", "psql")
OWNER = "postgres"
#: postgresql.conf of every server; `port` and `unix_socket_directories` are added per server.
SETTINGS: Mapping[str, str] = {
    "listen_addresses": "127.0.0.1",
    "fsync": "on",
    "synchronous_commit": "on",
    "max_connections": "200",
    "shared_buffers": "128MB",
}


class PgError(RuntimeError):
    """A PostgreSQL server or tool did not do what a test needed; the message carries the log's tail."""


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(missing: str | None) -> None:
    """Skip the test when a tool is missing, except in CI, where the install step must have provided it."""
    if missing is None:
        return
    if in_ci():
        pytest.fail(f"{missing} (CI=true: scripts/install --test must provide it)", pytrace=False)
    pytest.skip(missing)


def missing_postgres() -> str | None:
    """Why no PostgreSQL server can be started here, or None when everything is in place."""
    for tool in PG_TOOLS:
        if not (PG_BIN / tool).is_file():
            return f"PostgreSQL 15 is not installed ({PG_BIN / tool} is missing; apt-get install postgresql-15)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(OWNER)
        except KeyError:
            return f"running as root, but there is no {OWNER!r} user to run PostgreSQL as"
    return None


def as_owner() -> dict[str, Any]:
    """subprocess arguments that run a server command as `postgres` when the tests run as root."""
    if os.geteuid() != 0:
        return {}
    owner = pwd.getpwnam(OWNER)
    # cwd "/": the checkout may sit in a directory only root can enter (a CI clone in `mktemp -d`),
    # and initdb, run by Patroni as postgres, fails where it cannot read its working directory.
    return {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": [], "cwd": "/"}


def owned_workdir(prefix: str) -> Path:
    """A new temporary directory the server user owns (pytest's tmp_path is root's, mode 0700)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"ds-{prefix}-"))
    if os.geteuid() == 0:
        owner = pwd.getpwnam(OWNER)
        os.chown(workdir, owner.pw_uid, owner.pw_gid)
    return workdir


def server_env(home: Path) -> dict[str, str]:
    """The environment of server commands: no PG* variable of the caller's, HOME where they may write."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    return env | {"HOME": str(home), "LC_ALL": "C.UTF-8"}


def log_tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"(no log at {path})"
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return f"--- last {len(text)} lines of {path}\n" + "\n".join(text)


def wait_until(check: Callable[[], T | None], timeout: float, what: str, logs: list[Path]) -> T:
    """Poll `check` every 0.1 s until it returns something other than None; PgError with the logs after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (PgError, OSError) as error:  # not up yet: keep trying, report the last one
            last_error, result = error, None
        if result is not None:
            return result
        time.sleep(0.1)
    detail = f" (last error: {last_error})" if last_error else ""
    raise PgError(f"{what} not within {timeout:g} s{detail}\n" + "\n".join(log_tail(log) for log in logs))


def run_tool(args: list[str], log: Path, timeout: float = 60.0) -> None:
    """Run a server tool as the server user, its output appended to `log`; PgError with the log's tail on failure."""
    with log.open("ab") as out:
        done = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=server_env(log.parent),
            timeout=timeout,
            check=False,
            **as_owner(),
        )
    if done.returncode != 0:
        raise PgError(f"{Path(args[0]).name} exited with {done.returncode}\n{log_tail(log)}")


def psql(port: int, statement: str, database: str = "postgres", timeout: float = 30.0) -> str:
    """One SQL statement through psql (unaligned, tuples only): its output, stripped; PgError on any error."""
    args = [str(PG_BIN / "psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"]
    args += ["-h", "127.0.0.1", "-p", str(port), "-U", OWNER, "-d", database, "-c", statement]
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    if done.returncode != 0:
        raise PgError(f"psql on port {port} failed ({statement!r}): {done.stderr.strip()}")
    return done.stdout.strip()


def process_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def children_of(pid: int) -> list[int]:
    """The PIDs whose parent is `pid` (a postmaster's backends and auxiliary processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def postmaster_pid(data_dir: Path) -> int | None:
    """The PID in the data directory's postmaster.pid, if that process runs (a stale file after a crash is None)."""
    lines = lock_file_lines(data_dir)
    if not lines or not lines[0].isdigit():
        return None
    pid = int(lines[0])
    return pid if process_alive(pid) else None


def lock_file_lines(data_dir: Path) -> list[str]:
    """postmaster.pid: PID, data directory, start time, port, socket directory, listen address, ..."""
    try:
        return (data_dir / "postmaster.pid").read_text().splitlines()
    except OSError:
        return []


def kill_postmaster(data_dir: Path, timeout: float = 10.0) -> None:
    """SIGKILL the postmaster and all its processes at once (nothing more leaves the "host"); wait until gone."""
    pid = postmaster_pid(data_dir)
    if pid is None:
        return
    lines = lock_file_lines(data_dir)
    victims = [pid, *children_of(pid)]
    for victim in victims:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_until(lambda: True if not any(map(process_alive, victims)) else None, timeout, "postmaster gone", [])
    # The killed postmaster was an orphan (pg_ctl and Patroni daemonise it): until PID 1 reaps it,
    # about a second later here and never under an init that does not reap, the zombie still
    # answers kill(pid, 0), and a new postmaster refuses both lock files that name it. Every process
    # of the server is dead now: the stale files protect nothing, as after a reboot.
    (data_dir / "postmaster.pid").unlink(missing_ok=True)
    if len(lines) >= 5 and lines[4]:
        (Path(lines[4]) / f".s.PGSQL.{lines[3]}.lock").unlink(missing_ok=True)


def immediate_stop(data_dir: Path, log: Path) -> None:
    """`pg_ctl stop -m immediate` if a postmaster runs there (teardown: the data is thrown away)."""
    if postmaster_pid(data_dir) is None:
        return
    try:
        run_tool([str(PG_BIN / "pg_ctl"), "-D", str(data_dir), "-m", "immediate", "-w", "stop"], log, timeout=30)
    except PgError:
        kill_postmaster(data_dir)


def append_settings(config: Path, settings: Mapping[str, str]) -> None:
    """Append `key = 'value'` lines to a postgresql.conf (later lines win over earlier ones)."""
    with config.open("a") as out:
        out.write("\n# tests/support/postgres.py\n")
        for key, value in settings.items():
            out.write(f"{key} = '{value}'\n")


class PgServer:
    """One PostgreSQL server in its own temporary directory, on 127.0.0.1:`port`, as a context manager."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.workdir = workdir
        self.port = port
        self.data_dir = workdir / "data"
        self.log_path = workdir / "postgres.log"  # the server's own log (pg_ctl -l), written as postgres
        self.tool_log = workdir / "tools.log"  # initdb, pg_ctl, pg_basebackup output

    @classmethod
    def create(cls, settings: Mapping[str, str] | None = None, name: str = "pg") -> Self:
        """initdb, configure and start a new server; `settings` go into postgresql.conf after the defaults."""
        server = cls(owned_workdir(name), free_ports(1)[0])
        try:
            initdb = [str(PG_BIN / "initdb"), "-D", str(server.data_dir), "-A", "trust", "-U", OWNER, "--no-sync"]
            run_tool([*initdb, "-E", "UTF8", "--locale=C"], server.tool_log)
            server.configure(settings or {})
            server.start()
        except BaseException:
            server.close()
            raise
        return server

    def configure(self, settings: Mapping[str, str]) -> None:
        own = {"port": str(self.port), "unix_socket_directories": str(self.workdir)}
        append_settings(self.data_dir / "postgresql.conf", {**SETTINGS, **own, **settings})

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        return f"postgresql://{OWNER}@127.0.0.1:{self.port}/{database}"

    @property
    def pid(self) -> int:
        """The postmaster's PID; PgError when the server is not running."""
        pid = postmaster_pid(self.data_dir)
        if pid is None:
            raise PgError(f"no postmaster runs on {self.data_dir}")
        return pid

    def running(self) -> bool:
        return postmaster_pid(self.data_dir) is not None

    def start(self, timeout: float = 60.0) -> None:
        """Start the server (again) on its data directory; returns when it accepts connections."""
        pg_ctl = [str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_path)]
        try:
            run_tool([*pg_ctl, "-w", "-t", str(int(timeout)), "start"], self.tool_log, timeout=timeout + 10)
        except PgError as error:
            raise PgError(f"{error}\n{log_tail(self.log_path)}") from None

    def stop(self) -> None:
        """Fast shutdown: open transactions are rolled back, the server waits for nothing else."""
        run_tool([str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"], self.tool_log)

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend at once (the host dies); `start()` recovers from the WAL."""
        kill_postmaster(self.data_dir)

    def sql(self, statement: str, database: str = "postgres") -> str:
        return psql(self.port, statement, database)

    def close(self) -> None:
        """Stop immediately (nothing is kept) and remove the directory."""
        immediate_stop(self.data_dir, self.tool_log)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def create_database(server: PgServer) -> str:
    """A new empty database with a unique name on `server`: its DSN."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    server.sql(f'CREATE DATABASE "{name}"')
    return server.dsn_for(name)


def drop_database(server: PgServer, dsn: str) -> None:
    """Drop the database of `dsn`, disconnecting whatever still uses it (a pool a test left open)."""
    name = urlsplit(dsn).path.lstrip("/")
    server.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_database(server: PgServer) -> Iterator[str]:
    """A new empty database for the block, dropped afterwards (if the server still runs)."""
    dsn = create_database(server)
    try:
        yield dsn
    finally:
        if server.running():
            drop_database(server, dsn)


@dataclass(frozen=True)
class PrimaryWithStandby:
    """A primary and the synchronous standby it waits for at every commit."""

    primary: PgServer
    standby: PgServer

    @property
    def dsn(self) -> str:
        return self.primary.dsn


def add_sync_standby(primary: PgServer, timeout: float = 60.0) -> PgServer:
    """A streaming standby (pg_basebackup -R) that `primary` waits for at every commit.

    Returns once the primary's pg_stat_replication shows it with sync_state 'sync'. A second call
    replaces the first as the synchronous one.
    """
    standby = PgServer(owned_workdir("standby"), free_ports(1)[0])
    name = f"standby{standby.port}"
    try:
        backup = [str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port), "-U", OWNER]
        backup += ["-D", str(standby.data_dir), "-R", "-X", "stream", "-c", "fast", "--no-sync"]
        run_tool(backup, standby.tool_log)
        standby.configure({})  # its own port and socket: the copied postgresql.conf has the primary's
        name_in_primary_conninfo(standby.data_dir / "postgresql.auto.conf", name)
        standby.start()
        primary.sql(f"ALTER SYSTEM SET synchronous_standby_names = '\"{name}\"'")
        primary.sql("SELECT pg_reload_conf()")
        query = f"SELECT sync_state FROM pg_stat_replication WHERE application_name = '{name}' AND state = 'streaming'"
        logs = [standby.log_path, primary.log_path]
        wait_until(lambda: True if primary.sql(query) == "sync" else None, timeout, f"{name} in sync", logs)
    except BaseException:
        standby.close()
        raise
    return standby


def name_in_primary_conninfo(auto_conf: Path, name: str) -> None:
    """Give the standby its application_name in primary_conninfo.

    pg_basebackup -R writes primary_conninfo into postgresql.auto.conf, which overrides
    postgresql.conf: the name has to go into that line (setting it elsewhere has no effect).
    """
    text = auto_conf.read_text()
    line = re.compile(r"^(primary_conninfo = '.*)'$", re.MULTILINE)
    if not line.search(text):
        raise PgError(f"pg_basebackup -R wrote no primary_conninfo into {auto_conf}:\n{text}")
    auto_conf.write_text(line.sub(lambda match: f"{match.group(1)} application_name={name}'", text, count=1))
