"""Every setting is declared once, and the env files and README.md agree with the declarations.

Every setting named in deploy/systemd/*.env (commented or not) is one the process knows: an
unknown DS_* variable stops a process at start-up, so a typo or a renamed flag in a shipped
env file would break a deployment the moment someone uncomments it.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import pytest

from plugin_streams.edge import cli as edge_cli
from plugin_streams.edge.config import EdgeConfig
from plugin_streams.origin import cli as origin_cli
from plugin_streams.origin.config import OriginConfig
from plugin_streams.shared.aio.settings import flag_of, settings_of

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "systemd"


@pytest.mark.parametrize(("env_file", "module"), [("edge.env", edge_cli), ("origin.env", origin_cli)])
def test_env_files_name_only_known_settings(env_file: str, module: object) -> None:
    module.configure(argparse.ArgumentParser())  # type: ignore[attr-defined]
    known = module._settings._known  # type: ignore[attr-defined]
    named = re.findall(r"^#?(DS_[A-Z_]+)=", (DEPLOY / env_file).read_text(), re.MULTILINE)
    assert named, env_file
    unknown = sorted(set(named) - known)
    assert not unknown, f"{env_file} names settings the process does not know: {unknown}"


# -- README.md's settings tables --------------------------------------------------------------
# Each server's settings are declared once, on its config dataclass (shared.aio.settings.setting);
# the flags and environment variables are generated from them, and README.md documents them in a
# table (`| flag | default | meaning |`) under the server's heading. These tests keep the tables
# and the declarations in step, both ways, defaults included.

README = Path(__file__).resolve().parent.parent / "README.md"
_ROW = re.compile(r"^\| (`--[^|]+) \| ([^|]+) \|")


def readme_table(heading: str) -> dict[str, str]:
    """{flag: default as written} from the first settings table after `heading`."""
    section = README.read_text().split(f"\n{heading}\n", 1)[1]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        match = _ROW.match(line)
        if match is None:
            if rows:
                return rows
            continue
        flags = re.findall(r"`(--[a-z-]+)`", match.group(1))
        defaults = [d.strip() for d in match.group(2).split(" / ")]
        assert len(defaults) == len(flags), line
        rows.update(zip(flags, defaults, strict=True))
    return rows


def written(default: object) -> str:
    """A default as the README writes it: `30` for 30.0, none for no value, `false`, a plain `./data`."""
    if default is None or default == ():
        return "none"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, tuple):  # a repeatable setting's values, e.g. the edge's one --origin
        return ", ".join(f"`{item}`" for item in default)
    if isinstance(default, float) and default.is_integer():
        return f"`{int(default)}`"
    return f"`{default}`"


@pytest.mark.parametrize(
    ("heading", "config", "prefix"),
    [("## Running the origin", OriginConfig, origin_cli.PREFIX), ("## Running an edge", EdgeConfig, edge_cli.PREFIX)],
)
def test_readme_tables_match_the_declared_settings(heading: str, config: type, prefix: str) -> None:
    declared = {flag_of(field.name): written(field.default) for field, _ in settings_of(config)}
    documented = readme_table(heading)
    assert sorted(set(declared) - set(documented)) == [], "settings missing from README.md"
    assert sorted(set(documented) - set(declared)) == [], "README.md documents settings that do not exist"
    wrong = {flag: (documented[flag], default) for flag, default in declared.items() if documented[flag] != default}
    assert wrong == {}, "README.md default differs from the declaration: {flag: (README, declared)}"
    section = README.read_text().split(f"\n{heading}\n", 1)[1]
    assert f"`{prefix}`" in section.split("| flag |", 1)[0], "the table's introduction names the env prefix"


@pytest.mark.parametrize(("config", "module"), [(OriginConfig, origin_cli), (EdgeConfig, edge_cli)])
def test_every_config_field_is_a_flag_with_its_variable(config: type, module: object) -> None:
    parser = argparse.ArgumentParser()
    module.configure(parser)  # type: ignore[attr-defined]
    settings = module._settings  # type: ignore[attr-defined]
    fields = [field.name for field in dataclasses.fields(config)]
    assert [field.name for field, _ in settings_of(config)] == fields, "a config field without setting()"
    for name in fields:
        assert settings.env_name(flag_of(name)) == module.PREFIX + name.upper()  # type: ignore[attr-defined]
    built = module.config_from_args(parser.parse_args([]))  # type: ignore[attr-defined]
    for field, spec in settings_of(config):
        expected = field.default if spec.convert is None else spec.convert(field.default)
        assert getattr(built, field.name) == expected, field.name
