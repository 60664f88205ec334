"""The built wheel installs under one import root, next to distributions named shared/origin/edge.

Builds the wheel of this checkout, installs it into a fresh virtual environment that already
holds stand-in packages called `shared`, `origin` and `edge` (PyPI has distributions with each
of those names), then runs what a user would from that install. First the client alone (`pip install
plugin-streams`: no server dependency comes with it, the server commands say what to install,
and a round trip works against an origin run from the checkout); then with the servers
(`plugin-streams[server]`): `plugin-streams --help`, an origin from the install, and a round
trip. The stand-ins must still import as themselves afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from plugin_streams.shared.aio import loop_watch
from tests.support.processes import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
STAND_INS = ("shared", "origin", "edge")
WHEEL_SOURCES = ("pyproject.toml", "README.md", "LICENSE", "origin", "edge", "shared", "plugin_streams")
ROUND_TRIP = """
import sys
from plugin_streams import SyncStreams
import shared, origin, edge
assert [m.WHO for m in (shared, origin, edge)] == ["stand-in shared", "stand-in origin", "stand-in edge"]
with SyncStreams(sys.argv[1]) as streams:
    stream = streams.create("wheel/" + sys.argv[2])
    stream.append({"hello": sys.argv[2]})
    print([m.data for m in stream.read()])
"""

SERVER_DEPENDENCIES = ("uvloop", "cachetools", "aiofiles", "prometheus_client")
SERVER_ONLY = f"""
import importlib.util
print(*[name for name in {SERVER_DEPENDENCIES!r} if importlib.util.find_spec(name) is None])
"""
ORIGIN_ARGS = ("origin", "--host", "127.0.0.1", "--port", "0", "--engine", "memory")

pytestmark = pytest.mark.timeout(600)


def _run(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=540)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_the_wheel_installs_and_runs_next_to_packages_named_shared_origin_and_edge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheels = tmp_path / "wheels"
    # From a copy of what the build reads: setuptools builds in the source folder and leaves
    # build/lib there, whose stale modules (deleted since) would otherwise go into the wheel.
    source = tmp_path / "source"
    source.mkdir()
    for name in WHEEL_SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(source))
    (wheel,) = wheels.glob("plugin_streams-*.whl")
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", str(venv))
    python = venv / "bin" / "python"
    site = Path(_run(str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip())
    for name in STAND_INS:  # what `pip install shared origin edge` would leave in site-packages
        (site / name).mkdir()
        (site / name / "__init__.py").write_text(f'WHO = "stand-in {name}"\n')
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    cli = str(venv / "bin" / "plugin-streams")
    monkeypatch.chdir(tmp_path)  # nothing of the checkout on the path

    # The client alone: `pip install plugin-streams` brings aiohttp and none of the servers' dependencies.
    _run(*pip, "-c", str(ROOT / "constraints.txt"), str(wheel), env=env)
    missing = _run(str(python), "-c", SERVER_ONLY, env=env).split()
    assert missing == list(SERVER_DEPENDENCIES), missing
    refused = subprocess.run([cli, "origin"], capture_output=True, text=True, env=env, timeout=60)
    assert refused.returncode == 2 and "plugin-streams[server]" in refused.stderr, refused.stderr
    checkout_cli = str(Path(sys.executable).parent / "plugin-streams")
    with ServerProcess([checkout_cli, *ORIGIN_ARGS], tmp_path / "checkout-origin.log") as server:
        out = _run(str(python), "-c", ROUND_TRIP, server.url, "client-only", env=env)
    assert out.strip() == "[{'hello': 'client-only'}]"

    # With the servers: plugin-streams[server].
    _run(*pip, "-c", str(ROOT / "constraints.txt"), f"{wheel}[server]", env=env)
    assert "origin" in _run(cli, "--help", env=env) and "edge" in _run(cli, "edge", "--help", env=env)
    installed = Path(_run(str(python), "-c", "import plugin_streams.origin as o; print(o.__file__)", env=env))
    assert str(installed).startswith(str(site)), installed  # from the wheel, not this checkout
    monkeypatch.setenv(loop_watch.ENV, "0")  # the watch needs blockbuster, a test dependency, not installed there
    with ServerProcess([cli, *ORIGIN_ARGS], tmp_path / "origin.log") as server:
        out = _run(str(python), "-c", ROUND_TRIP, server.url, "wheel", env=env)
    assert out.strip() == "[{'hello': 'wheel'}]"
