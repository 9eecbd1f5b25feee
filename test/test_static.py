"""The launch file, params file, setup.py entry points and declared
parameters agree; checked without `launch` (not installable here)."""

import ast
import re
import typing
from pathlib import Path

import pytest

from conftest import PARAMS_FILE, REPO
from video2act_core.params import NODE_PARAMS, WILDCARD, load_params_file, param_fields

LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))
# Node params files: the main one and the bridge overrides layered on it.
PARAMS_FILES = [PARAMS_FILE, REPO / "config" / "bridges" / "gazebo.yaml", REPO / "config" / "bridges" / "isaac_sim.yaml"]


def launched_nodes(launch_file: Path) -> list[tuple[str, str, str]]:
    """(package, executable, name) of every Node(...) call and of every
    (package, executable, name) tuple of string literals naming a node."""
    nodes = []
    for item in ast.walk(ast.parse(launch_file.read_text())):
        if isinstance(item, ast.Call) and getattr(item.func, "id", "") == "Node":
            kwargs = {k.arg: k.value.value for k in item.keywords if isinstance(k.value, ast.Constant)}
            if {"package", "executable", "name"} <= set(kwargs):
                nodes.append((kwargs["package"], kwargs["executable"], kwargs["name"]))
        elif isinstance(item, ast.Tuple) and len(item.elts) == 3 and all(isinstance(e, ast.Constant) for e in item.elts):
            values = tuple(e.value for e in item.elts)
            if all(isinstance(v, str) for v in values) and values[0].startswith("video2act"):
                nodes.append(values)
    return nodes


def entry_points(package: str) -> set[str]:
    setup = (REPO / "src" / package / "setup.py").read_text()
    return {m.group(1) for m in re.finditer(r'"([\w-]+) = [\w.]+:\w+"', setup)}


@pytest.mark.parametrize("launch_file", LAUNCH_FILES, ids=lambda p: p.name)
def test_every_launched_executable_is_an_entry_point(launch_file):
    nodes = launched_nodes(launch_file)
    assert nodes, f"no nodes found in {launch_file}"
    for package, executable, name in nodes:
        assert executable in entry_points(package), f"{package}/{executable}"
        assert name in NODE_PARAMS, f"{name} has no parameter schema"


@pytest.mark.parametrize("params_file", PARAMS_FILES, ids=lambda p: p.name)
def test_params_file_keys_are_declared_by_the_nodes(params_file):
    sections = load_params_file(params_file)
    declared = {node: param_fields(params) for node, params in NODE_PARAMS.items()}
    for section, values in sections.items():
        owners = list(declared.values()) if section == WILDCARD else [declared[section]]
        for key, value in values.items():
            assert any(key in fields for fields in owners), f"{section}.{key} is declared by no node"
            python_type = next(fields[key][0] for fields in owners if key in fields)
            check_type(f"{section}.{key}", value, python_type)


def check_type(where: str, value, python_type) -> None:
    # rclpy refuses e.g. an integer YAML value for a double parameter.
    if typing.get_origin(python_type) is list:
        (element,) = typing.get_args(python_type)
        assert isinstance(value, list) and all(type(v) is element for v in value), f"{where}: {value!r}"
    else:
        assert type(value) is python_type, f"{where}: {value!r} is not {python_type.__name__}"


def test_every_node_parameter_has_one_home_in_the_params_file():
    """A shared fact lives under /** only, never repeated in a node section."""
    sections = load_params_file(PARAMS_FILE)
    shared = set(sections[WILDCARD])
    for section, values in sections.items():
        if section != WILDCARD:
            assert not shared & set(values), f"{section} repeats {sorted(shared & set(values))}"
