"""deploy/patroni: three Patroni nodes and three etcd members that agree with each other, and that
Patroni itself accepts.

The files are an example an operator copies, one pair per host: a typo in one of them (a port, a
cluster name, an etcd member left out, synchronous mode on one node only) would show only when a
node fails to join or a failover does not happen. Agreement is checked here without anything
installed; `patroni --validate-config` runs where Patroni is installed (scripts/install --test
installs it), and must run under CI=true.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml

PATRONI_DIR = Path(__file__).resolve().parents[2] / "deploy" / "patroni"
NODES = (1, 2, 3)
PATRONI = shutil.which("patroni")
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: A node's own address (host:port) in the examples: 10.0.0.11 .. 10.0.0.13.
NODE_ADDRESS = re.compile(r"\b10\.0\.0\.1([1-9]):(\d+)\b")


def patroni(node: int) -> dict[str, Any]:
    return yaml.safe_load((PATRONI_DIR / f"patroni{node}.yml").read_text())  # type: ignore[no-any-return]


def etcd(node: int) -> dict[str, Any]:
    return yaml.safe_load((PATRONI_DIR / f"etcd{node}.yml").read_text())  # type: ignore[no-any-return]


def host(address: str) -> str:
    return address.rsplit(":", 1)[0]


def port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def own_address(node: int) -> str:
    return host(patroni(node)["postgresql"]["connect_address"])


def test_each_node_names_itself_and_its_own_address_only() -> None:
    assert [patroni(n)["name"] for n in NODES] == ["pg1", "pg2", "pg3"]
    addresses = [own_address(n) for n in NODES]
    assert len(set(addresses)) == 3
    for n in NODES:
        config = patroni(n)
        assert config["restapi"]["listen"] == config["restapi"]["connect_address"]
        assert config["postgresql"]["listen"] == config["postgresql"]["connect_address"]
        assert host(config["restapi"]["connect_address"]) == own_address(n)
        assert (port(config["restapi"]["listen"]), port(config["postgresql"]["listen"])) == (8008, 5432)


def test_the_nodes_differ_only_in_their_name_and_address() -> None:
    """Everything else (bootstrap.dcs above all: the first node to start writes it to etcd for all)
    is the same text in the three files, comments included."""

    def template(node: int) -> str:
        text = (PATRONI_DIR / f"patroni{node}.yml").read_text()
        text = re.sub(rf"\b{re.escape(own_address(node))}\b(?!/|:2379)", "NODE_ADDRESS", text)  # not pg_hba, etcd
        return re.sub(rf"\bpg{node}\b", "NODE_NAME", text).replace(f"node {node} of 3", "node N of 3")

    assert template(1) == template(2) == template(3)


def test_synchronous_mode_and_failover_timing() -> None:
    dcs = patroni(1)["bootstrap"]["dcs"]
    assert dcs["synchronous_mode"] is True
    assert dcs["synchronous_mode_strict"] is False  # README.md says why; a change must be deliberate
    assert dcs["synchronous_node_count"] == 1
    assert 10 <= dcs["ttl"] <= 15
    # Patroni's own rule; beyond it the leader could lose its key between two renewals.
    assert dcs["loop_wait"] + 2 * dcs["retry_timeout"] <= dcs["ttl"]
    postgresql = dcs["postgresql"]
    assert postgresql["use_pg_rewind"] is True
    parameters = postgresql["parameters"]
    assert parameters["wal_level"] == "replica"
    assert parameters["hot_standby"] == "on"
    assert parameters["synchronous_commit"] == "on"
    assert parameters["wal_log_hints"] == "on"  # pg_rewind needs it (or data checksums)
    assert parameters["max_wal_senders"] >= len(NODES)


def test_every_node_may_replicate_and_rewind_from_every_other() -> None:
    hba = patroni(1)["bootstrap"]["pg_hba"]
    for n in NODES:
        assert f"host replication replicator {own_address(n)}/32 scram-sha-256" in hba
        assert f"host postgres rewinder {own_address(n)}/32 scram-sha-256" in hba
    users = patroni(1)["postgresql"]["authentication"]
    assert (users["replication"]["username"], users["rewind"]["username"]) == ("replicator", "rewinder")


def test_patroni_and_etcd_name_the_same_three_members() -> None:
    members = {etcd(n)["name"]: etcd(n)["initial-advertise-peer-urls"] for n in NODES}
    assert list(members) == ["etcd1", "etcd2", "etcd3"]
    expected_cluster = ",".join(f"{name}={url}" for name, url in members.items())
    client_urls = [etcd(n)["advertise-client-urls"] for n in NODES]
    for n in NODES:
        member = etcd(n)
        assert member["initial-cluster"] == expected_cluster
        assert member["initial-cluster-token"] == etcd(1)["initial-cluster-token"]
        assert member["listen-peer-urls"] == member["initial-advertise-peer-urls"]
        # Patroni's etcd3 client uses the HTTP gateway, off by default in a configuration file.
        assert member["enable-grpc-gateway"] is True
        assert member["advertise-client-urls"] in member["listen-client-urls"].split(",")
        # Each etcd member runs next to the Patroni node of the same number.
        assert member["advertise-client-urls"] == f"http://{own_address(n)}:2379"
        # An etcd election (milliseconds) must fit well inside Patroni's retry_timeout (seconds).
        assert member["election-timeout"] / 1000 <= patroni(n)["bootstrap"]["dcs"]["retry_timeout"] / 2
    for n in NODES:
        assert ["http://" + h for h in patroni(n)["etcd3"]["hosts"]] == client_urls


def test_the_readme_connects_origins_to_every_node_and_only_to_the_primary() -> None:
    readme = (PATRONI_DIR / "README.md").read_text()
    nodes = ",".join(patroni(n)["postgresql"]["connect_address"] for n in NODES)
    assert f"@{nodes}/streams?target_session_attrs=read-write" in readme
    ttl = patroni(1)["bootstrap"]["dcs"]["ttl"]
    assert f"`ttl` {ttl}" in readme  # the pause it states is that of the shipped setting


def test_the_origin_env_example_connects_to_the_same_cluster() -> None:
    origin_env = (PATRONI_DIR.parent / "systemd" / "origin.env").read_text()
    url = re.search(r"^#?DS_ORIGIN_DATABASE_URL=(\S+)$", origin_env, re.M)
    assert url is not None
    readme = (PATRONI_DIR / "README.md").read_text()
    assert f"DS_ORIGIN_DATABASE_URL={url[1]}" in readme


def test_the_units_run_the_installed_configurations() -> None:
    readme = (PATRONI_DIR / "README.md").read_text()
    for unit, config in (
        ("plugin-streams-patroni.service", "patroni.yml"),
        ("plugin-streams-etcd.service", "etcd.yml"),
    ):
        text = (PATRONI_DIR / unit).read_text()
        exec_start = re.search(r"^ExecStart=(.+)$", text, re.M)
        assert exec_start is not None, unit
        assert f"/etc/plugin-streams/{config}" in exec_start.group(1)
        assert f"/etc/plugin-streams/{config}" in readme
    # Stopping Patroni must leave it the time to stop PostgreSQL itself (and release the leader key).
    assert re.search(r"^KillMode=process$", (PATRONI_DIR / "plugin-streams-patroni.service").read_text(), re.M)


# -- patroni --validate-config --------------------------------------------------------------------


def free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def reachable_etcd() -> Iterator[dict[str, str]]:
    """{example host:port: loopback host:port}: the examples' addresses moved to free loopback
    ports, with something listening where etcd members are named.

    The validator connects to every address: it wants the etcd hosts reachable and the node's own
    ports free, as on a real host just before Patroni starts. Node N moves to 127.0.0.(40+N).
    """
    moved: dict[str, str] = {}
    with ExitStack() as stack:
        for n in NODES:
            config = patroni(n)
            for address in (config["restapi"]["listen"], config["postgresql"]["listen"], *config["etcd3"]["hosts"]):
                loopback = f"127.0.0.{40 + int(NODE_ADDRESS.fullmatch(address)[1])}"  # type: ignore[index]
                moved.setdefault(address, f"{loopback}:{free_port(loopback)}")
        for address in patroni(1)["etcd3"]["hosts"]:
            listener = stack.enter_context(socket.socket())
            listener.bind((host(moved[address]), port(moved[address])))
            listener.listen()
        yield moved


def runnable(node: int, moved: dict[str, str], tmp_path: Path) -> Path:
    text = (PATRONI_DIR / f"patroni{node}.yml").read_text()
    text = NODE_ADDRESS.sub(lambda match: moved[match[0]], text)
    config = yaml.safe_load(text)
    config["postgresql"]["data_dir"] = str(tmp_path / f"pg{node}")  # not created: a node before bootstrap
    config["postgresql"]["pgpass"] = str(tmp_path / f"pgpass{node}")
    path = tmp_path / f"patroni{node}.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.skipif(
    PATRONI is None and not CI,
    reason="patroni is not installed: `apt-get install -y --no-install-recommends patroni` (scripts/install --test)",
)
@pytest.mark.parametrize("node", NODES)
def test_patroni_accepts_each_node(node: int, reachable_etcd: dict[str, str], tmp_path: Path) -> None:
    assert PATRONI is not None, "CI=true: patroni must be installed (scripts/install --test)"
    path = runnable(node, reachable_etcd, tmp_path)
    checked = subprocess.run(
        [PATRONI, "--validate-config", str(path)], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")
