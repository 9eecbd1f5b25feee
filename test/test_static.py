"""The launch files, params files, setup.py entry points, declared
parameters and the README agree; checked without `launch` (not
installable here)."""

import ast
import re
import typing
from pathlib import Path

import pytest

from conftest import PARAMS_FILE, REPO
from video2act_core.bringup import BRINGUP_ARGUMENTS, SIM_ARGUMENTS, bringup_nodes, sim_nodes
from video2act_core.params import NODE_PARAMS, WILDCARD, load_params_file, param_fields, param_metadata

LAUNCH_ARGUMENTS = {"bringup.launch.py": BRINGUP_ARGUMENTS, "sim.launch.py": SIM_ARGUMENTS}
LAUNCH_SPECS = {"bringup.launch.py": bringup_nodes, "sim.launch.py": sim_nodes}
# Node params files: the main one and the bridge overrides layered on it.
PARAMS_FILES = [
    PARAMS_FILE,
    REPO / "config" / "bridges" / "gazebo.yaml",
    REPO / "config" / "bridges" / "isaac_sim.yaml",
]


def section_node(section: str) -> str | None:
    """The node a params-file section is for (None for `/**`)."""
    return None if section == WILDCARD else section.removeprefix(f"{WILDCARD}/")


def entry_points(package: str) -> set[str]:
    setup = (REPO / "src" / package / "setup.py").read_text()
    return {m.group(1) for m in re.finditer(r'"([\w-]+) = [\w.]+:\w+"', setup)}


def imported_names(launch_file: Path) -> set[str]:
    tree = ast.parse(launch_file.read_text())
    return {alias.name for item in ast.walk(tree) if isinstance(item, ast.ImportFrom) for alias in item.names}


@pytest.mark.parametrize("launch_file", sorted(LAUNCH_ARGUMENTS))
def test_each_launch_file_starts_its_specs_and_declares_their_arguments(launch_file):
    names = imported_names(REPO / "launch" / launch_file)
    spec_function = LAUNCH_SPECS[launch_file]
    arguments = LAUNCH_ARGUMENTS[launch_file]
    assert {spec_function.__name__, next(k for k, v in globals().items() if v is arguments)} <= names
    for spec in spec_function({}, REPO):
        assert spec.executable.name in entry_points(spec.executable.package), spec.executable
        assert spec.executable.node in NODE_PARAMS, f"{spec.executable.node} has no parameter schema"
    assert all(argument.description for argument in arguments)


# The README and the guides it links to.
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_the_readmes_launch_lines_use_declared_arguments(doc):
    for line in re.findall(r"ros2 launch video2act (\S+\.launch\.py)([^\n]*)", doc.read_text()):
        launch_file, rest = line
        declared = {argument.name for argument in LAUNCH_ARGUMENTS[launch_file]}
        used = set(re.findall(r"([a-z_]+):=", rest))
        assert used <= declared, (launch_file, used - declared)


def heading_anchors(doc: Path) -> set[str]:
    """The anchors GitHub gives a markdown file's headings."""
    text = re.sub(r"^```.*?^```", "", doc.read_text(), flags=re.M | re.S)
    headings = re.findall(r"^#+ (.+)$", text, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_the_readmes_links_point_at_files_and_headings_that_exist(doc):
    text = doc.read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r"^\[[^\]]+\]: (\S+)$", text, flags=re.M)
    for target in targets:
        if "://" in target:
            continue
        path, _, anchor = target.partition("#")
        linked = (doc.parent / path) if path else doc
        assert linked.exists(), f"{doc.name}: {target}"
        if anchor and linked.suffix == ".md":
            assert anchor in heading_anchors(linked), f"{doc.name}: {target}"


@pytest.mark.parametrize("params_file", PARAMS_FILES, ids=lambda p: p.name)
def test_params_file_keys_are_declared_by_the_nodes(params_file):
    sections = load_params_file(params_file)
    declared = {node: param_fields(params) for node, params in NODE_PARAMS.items()}
    for section, values in sections.items():
        node = section_node(section)
        owners = list(declared.values()) if node is None else [declared[node]]
        for key, value in values.items():
            assert any(key in fields for fields in owners), f"{section}.{key} is declared by no node"
            python_type = next(fields[key][0] for fields in owners if key in fields)
            check_type(f"{section}.{key}", value, python_type)


@pytest.mark.parametrize("params_file", PARAMS_FILES, ids=lambda p: p.name)
def test_params_file_sections_apply_under_any_namespace(params_file):
    """A plain `<node>:` section matches the root namespace only: under
    `namespace:=arm1` its values (the joint limits!) would silently go."""
    for section in load_params_file(params_file):
        assert section == WILDCARD or section.startswith(f"{WILDCARD}/"), section


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


@pytest.mark.parametrize("node", sorted(NODE_PARAMS))
def test_every_parameter_is_described(node):
    for name, meta in param_metadata(NODE_PARAMS[node]).items():
        assert meta.get("description"), f"{node}.{name} has no description"


@pytest.mark.parametrize(
    "node, field, value, message",
    [
        ("video2act_policy", "rate_hz", 0.0, r"rate_hz must lie in \[0.1, 1000.0\], got 0.0"),
        ("video2act_perception", "image_qos", "fast", "image_qos must be one of"),
        ("video2act_policy", "max_joint_velocity", [1.0, 2.0], "needs 6 values"),
        ("video2act_policy", "gripper_joint_names", ["claw"], r"\['claw'\] are not in joint_names"),
        ("video2act_policy", "joint_names", ["a", "a"], "duplicates"),
    ],
)
def test_invalid_values_are_refused_in_one_line(node, field, value, message):
    with pytest.raises(ValueError, match=message):
        NODE_PARAMS[node](**{field: value})
