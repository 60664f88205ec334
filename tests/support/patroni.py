"""A real Patroni cluster for failover tests: one etcd and three PostgreSQL 15 nodes on loopback ports.

`PatroniCluster()` is a context manager: entering starts etcd and the nodes (each Patroni runs
as the `postgres` user in a temporary directory of its own) and waits until the cluster is
healthy, i.e. a running leader and a synchronous standby that the leader's pg_stat_replication
shows streaming in sync. Synchronous mode is on, so the standby Patroni promotes has every
acknowledged commit.

`kill_node(name)` is the death of a host: SIGKILL of its Patroni and of its postmaster with every
backend. The leader key then expires after `ttl` seconds and the synchronous standby takes over;
`dsn` names every node with target_session_attrs=read-write, so a client reconnecting through it
finds the new leader. `restart_node(name)` brings the host back (Patroni rewinds it with
pg_rewind and it rejoins as a replica).

Teardown kills every Patroni by PID, stops every data directory with `pg_ctl stop -m immediate`
(a Patroni that dies leaves its postmaster running) and stops etcd. Logs (etcd.log, and per node
patroni.log and postgres.log) stay in the cluster's directory until then; a wait that fails
raises PgError with their tails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Self

from tests.support.ports import free_ports
from tests.support.postgres import (
    OWNER,
    PG_BIN,
    SETTINGS,
    PgError,
    as_owner,
    immediate_stop,
    kill_postmaster,
    missing_postgres,
    owned_workdir,
    psql,
    server_env,
    wait_until,
)
from tests.support.processes import terminate

#: Trust on loopback only: the cluster lives and dies with the test.
PG_HBA = ["local all all trust", "host all all 127.0.0.1/32 trust", "host replication all 127.0.0.1/32 trust"]


def missing_patroni() -> str | None:
    """Why no Patroni cluster can be started here, or None when everything is in place."""
    for tool, package in (("patroni", "patroni"), ("etcd", "etcd-server")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install {package} python3-etcd)"
    if not patroni_reaches_etcd():
        return "Patroni's etcd client is not installed (apt-get install python3-etcd)"
    return missing_postgres()


def patroni_reaches_etcd() -> bool:
    """Whether Patroni's own interpreter has python-etcd: Debian lets another DCS client stand in for it."""
    patroni = Path(shutil.which("patroni") or "patroni")
    shebang = patroni.read_text(errors="replace").split("\n", 1)[0]
    interpreter = shebang[2:].strip().split() if shebang.startswith("#!") else ["python3"]
    probe = subprocess.run([*interpreter, "-c", "import etcd"], capture_output=True, timeout=30, check=False)
    return probe.returncode == 0


class PatroniNode:
    """One "host": a Patroni process and the PostgreSQL server it runs, in `workdir`."""

    def __init__(self, name: str, workdir: Path, pg_port: int, rest_port: int) -> None:
        self.name = name
        self.workdir = workdir
        self.pg_port = pg_port
        self.rest_port = rest_port
        self.data_dir = workdir / "data"
        self.config_path = workdir / "patroni.yml"
        self.log_path = workdir / "patroni.log"
        self.postgres_log = workdir / "postgres.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def config(self, scope: str, etcd_port: int, dcs: dict[str, Any]) -> dict[str, Any]:
        """Patroni's YAML configuration (written as JSON, which YAML reads)."""
        address = f"127.0.0.1:{self.pg_port}"
        parameters = {key: value for key, value in SETTINGS.items() if key not in ("listen_addresses",)}
        parameters |= {
            "unix_socket_directories": str(self.workdir),
            "logging_collector": "on",  # the server's log in this node's directory, not lost with Patroni's stderr
            "log_directory": str(self.workdir),
            "log_filename": self.postgres_log.name,
        }
        return {
            "scope": scope,
            "namespace": "/ds-tests/",
            "name": self.name,
            "restapi": {"listen": f"127.0.0.1:{self.rest_port}", "connect_address": f"127.0.0.1:{self.rest_port}"},
            "etcd3": {"hosts": [f"127.0.0.1:{etcd_port}"]},
            "bootstrap": {"dcs": dcs, "initdb": [{"encoding": "UTF8"}, {"locale": "C"}]},
            "postgresql": {
                "listen": address,
                "connect_address": address,
                "data_dir": str(self.data_dir),
                "bin_dir": str(PG_BIN),
                "pgpass": str(self.workdir / "pgpass"),
                "authentication": {
                    "superuser": {"username": OWNER, "password": OWNER},
                    "replication": {"username": "replicator", "password": "replicator"},
                    "rewind": {"username": OWNER, "password": OWNER},
                },
                "parameters": parameters,
                "pg_hba": PG_HBA,
            },
            "watchdog": {"mode": "off"},
        }

    def start(self) -> None:
        """Run Patroni as the postgres user (subprocess `user=`: its PID is Patroni's own, for kill_node)."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                ["patroni", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=server_env(self.workdir),
                start_new_session=True,  # a Ctrl-C of pytest reaches pytest, which tears down in order
                **as_owner(),
            )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL Patroni, then at once its postmaster and every backend: the host is gone."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
        kill_postmaster(self.data_dir)

    def logs(self) -> list[Path]:
        return [self.log_path, self.postgres_log]


class PatroniCluster:
    """etcd plus `size` Patroni nodes (node1..nodeN) in synchronous mode; see the module's docstring."""

    def __init__(self, size: int = 3, ttl: int = 8, loop_wait: int = 1, retry_timeout: int = 3) -> None:
        self.ttl = ttl
        self.dcs: dict[str, Any] = {
            "ttl": ttl,
            "loop_wait": loop_wait,
            "retry_timeout": retry_timeout,
            "maximum_lag_on_failover": 1_048_576,
            "synchronous_mode": True,
            "postgresql": {"use_pg_rewind": True, "use_slots": True},
        }
        self.workdir = owned_workdir("patroni")
        self.scope = f"ds-{uuid.uuid4().hex[:8]}"
        ports = free_ports(2 + 2 * size)
        self.etcd_port, self.etcd_peer_port = ports[:2]
        names = [f"node{i}" for i in range(1, size + 1)]
        self.nodes = {
            name: PatroniNode(name, self.workdir / name, ports[2 + 2 * i], ports[3 + 2 * i])
            for i, name in enumerate(names)
        }
        self.etcd_log = self.workdir / "etcd.log"
        self.etcd: subprocess.Popen[bytes] | None = None

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        """Every node, for libpq and asyncpg to find the one that takes writes (after a failover too)."""
        hosts = ",".join(f"127.0.0.1:{node.pg_port}" for node in self.nodes.values())
        return f"postgresql://{OWNER}@{hosts}/{database}?target_session_attrs=read-write"

    def start(self, timeout: float = 60.0) -> None:
        """Start etcd and every node, then wait_healthy(timeout)."""
        self.start_etcd()
        for node in self.nodes.values():
            node.workdir.mkdir()
            if os.geteuid() == 0:
                shutil.chown(node.workdir, OWNER, OWNER)
            node.config_path.write_text(json.dumps(node.config(self.scope, self.etcd_port, self.dcs), indent=2))
            node.start()
        self.wait_healthy(timeout)

    def start_etcd(self) -> None:
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        args = ["etcd", "--name", "etcd0", "--data-dir", str(self.workdir / "etcd")]
        args += ["--listen-client-urls", client, "--advertise-client-urls", client]
        args += ["--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer]
        args += ["--initial-cluster", f"etcd0={peer}", "--initial-cluster-state", "new"]
        args += ["--initial-cluster-token", self.scope]
        with self.etcd_log.open("ab") as log:
            self.etcd = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_until(lambda: True if self._etcd_healthy(client) else None, 30, "etcd healthy", [self.etcd_log])

    @staticmethod
    def _etcd_healthy(client: str) -> bool:
        with urllib.request.urlopen(f"{client}/health", timeout=2) as response:
            return bool(json.load(response).get("health") == "true")

    def cluster_state(self) -> dict[str, Any]:
        """Patroni's GET /cluster from the first node that answers: {"members": [{name, role, state, ...}]}."""
        errors = []
        for node in self.nodes.values():
            if not node.running():
                continue
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{node.rest_port}/cluster", timeout=2) as response:
                    state: dict[str, Any] = json.load(response)
                    return state
            except OSError as error:
                errors.append(f"{node.name}: {error}")
        raise PgError(f"no Patroni node answered GET /cluster: {errors}")

    def members(self) -> dict[str, dict[str, Any]]:
        return {member["name"]: member for member in self.cluster_state()["members"]}

    def leader(self) -> str:
        """The leader's node name; PgError when the cluster has none (during a failover)."""
        for name, member in self.members().items():
            if member["role"] == "leader" and member["state"] == "running":
                return name
        raise PgError(f"no running leader: {self.cluster_state()}")

    def wait_healthy(self, timeout: float = 60.0) -> str:
        """Wait for a running leader whose pg_stat_replication shows a sync standby streaming; the leader's name."""
        return wait_until(self._healthy_leader, timeout, "a leader with a streaming sync standby", self.logs())

    def _healthy_leader(self) -> str | None:
        members = self.members()
        leader = self.leader()
        standbys = [name for name, member in members.items() if member["role"] == "sync_standby"]
        query = "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming' AND sync_state = 'sync'"
        in_sync = psql(self.nodes[leader].pg_port, query).split()
        return leader if any(name in in_sync for name in standbys) else None

    def wait_replica(self, name: str, timeout: float = 60.0) -> None:
        """Wait until node `name` is a running replica that streams from the leader."""

        def streaming() -> bool | None:
            member = self.members().get(name, {})
            if member.get("role") not in ("replica", "sync_standby") or member.get("state") != "running":
                return None
            query = f"SELECT state FROM pg_stat_replication WHERE application_name = '{name}'"
            return True if psql(self.nodes[self.leader()].pg_port, query) == "streaming" else None

        wait_until(streaming, timeout, f"{name} streaming as a replica", self.nodes[name].logs())

    def kill_node(self, name: str) -> None:
        """The host of `name` dies: SIGKILL of its Patroni, its postmaster and every backend."""
        self.nodes[name].kill()

    def restart_node(self, name: str) -> None:
        """The host comes back: its Patroni starts again on the same data directory (wait_replica to see it rejoin)."""
        node = self.nodes[name]
        if node.running():
            raise PgError(f"{name} is still running")
        node.start()

    def logs(self) -> list[Path]:
        return [self.etcd_log, *(log for node in self.nodes.values() for log in node.logs())]

    def close(self) -> None:
        """Kill every Patroni, stop every postmaster immediately, stop etcd, remove the directory."""
        for node in self.nodes.values():
            if node.proc is not None and node.proc.poll() is None:
                node.proc.kill()
                node.proc.wait(10)
        for node in self.nodes.values():
            immediate_stop(node.data_dir, node.workdir / "pg_ctl.log")
        if self.etcd is not None:
            terminate(self.etcd)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
