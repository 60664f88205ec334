"""Every setting named in deploy/systemd/*.env (commented or not) is one the process knows.

An unknown DS_* variable stops a process at start-up, so a typo or a renamed flag in a shipped
env file would break a deployment the moment someone uncomments it.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from plugin_streams.edge import cli as edge_cli
from plugin_streams.origin import cli as origin_cli

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "systemd"


@pytest.mark.parametrize(("env_file", "module"), [("edge.env", edge_cli), ("origin.env", origin_cli)])
def test_env_files_name_only_known_settings(env_file: str, module: object) -> None:
    module.configure(argparse.ArgumentParser())  # type: ignore[attr-defined]
    known = module._settings._known  # type: ignore[attr-defined]
    named = re.findall(r"^#?(DS_[A-Z_]+)=", (DEPLOY / env_file).read_text(), re.MULTILINE)
    assert named, env_file
    unknown = sorted(set(named) - known)
    assert not unknown, f"{env_file} names settings the process does not know: {unknown}"
