"""The Docker build, package.xml dependencies and sample ros2_control controllers agree with the code."""

import ast
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "docker" / "Dockerfile"
PARAMS_FILE = REPO / "config" / "video2act.yaml"
CONTROLLER_FILES = sorted((REPO / "config" / "controllers").glob("*.yaml"))
SO101_CONTROLLERS = REPO / "config" / "controllers" / "so101_controllers.yaml"
VENV = "/opt/video2act"
VENV_PYTHON = f"{VENV}/bin/python"

# Python packages of the workspace, and the bringup whose launch files import.
PYTHON_PACKAGES = sorted(p.parent.name for p in (REPO / "src").glob("*/setup.py"))
PACKAGE_SOURCES = {name: REPO / "src" / name / name for name in PYTHON_PACKAGES}
PACKAGE_SOURCES["video2act"] = REPO / "launch"
ROS_MODULES = {"rclpy", "rcl_interfaces", "ament_index_python", "builtin_interfaces", "launch", "launch_ros",
               "cv_bridge", "tf2_ros", "rosbag2_py", "message_filters"}
# Module -> rosdep key in ros/rosdistro rosdep/python.yaml (checked 2026-08), and
# whether the image takes it from the venv (requirements/python.txt) instead.
PYTHON_KEYS = {
    "numpy": ("python3-numpy", False),
    "yaml": ("python3-yaml", False),
    "torch": ("python3-torch", True),
    "rosbags": ("python3-rosbags-pip", True),
    "mujoco": ("python3-mujoco-pip", True),
    "tqdm": ("python3-tqdm", True),
    "matplotlib": ("python3-matplotlib", True),
}
# Keys as in ros2_controllers jazzy joint_trajectory_controller_parameters.yaml.
JTC_PARAMETERS = {
    "joints", "command_joints", "command_interfaces", "state_interfaces", "speed_scaling",
    "allow_partial_joints_goal", "open_loop_control", "interpolate_from_desired_state",
    "allow_integration_in_goal_trajectories", "set_last_command_interface_value_as_state_on_activation",
    "action_monitor_rate", "interpolation_method", "allow_nonzero_velocity_at_trajectory_end", "cmd_timeout",
    "gains", "constraints",
}


def dockerfile_commands() -> list[str]:
    """Every shell command of every RUN, continuations joined and comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    runs = re.findall(r"^RUN\s+(.*)$", "\n".join(lines).replace("\\\n", " "), re.MULTILINE)
    return [part.strip() for run in runs for part in re.split(r"&&|\|\||;", run) if part.strip()]


def imported_modules(sources: Path) -> set[str]:
    """Top-level names of every absolute import, at module level or inside functions."""
    modules = set()
    for path in sources.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules


def ros_package(module: str) -> str | None:
    interfaces = re.fullmatch(r"\w+_(msgs|srvs|interfaces)", module)
    return module if module in ROS_MODULES or module.startswith("video2act") or interfaces else None


def run_dependencies(package: str) -> set[str]:
    root = ElementTree.parse(REPO / "src" / package / "package.xml").getroot()
    return {element.text.strip() for tag in ("exec_depend", "depend") for element in root.iter(tag)}


def find_value(node, key):
    """The first value of `key` anywhere in a nested YAML document."""
    if isinstance(node, dict):
        if key in node:
            return node[key]
        for child in node.values():
            if (found := find_value(child, key)) is not None:
                return found
    return None


def controllers(path: Path) -> dict[str, tuple[str, dict]]:
    """name -> (type, ros__parameters) of every controller controller_manager loads."""
    document = yaml.safe_load(path.read_text())
    loaded = document["controller_manager"]["ros__parameters"]
    return {
        name: (spec["type"], (document.get(name) or {}).get("ros__parameters", {}))
        for name, spec in loaded.items()
        if isinstance(spec, dict) and "type" in spec
    }


def trajectory_controllers(path: Path) -> dict[str, dict]:
    loaded = controllers(path).items()
    return {name: params for name, (kind, params) in loaded if kind.endswith("JointTrajectoryController")}


def controller_of(topic: str) -> str:
    return topic.strip("/").split("/")[-2]


def test_docker_image_builds_the_workspace_with_the_venv_python():
    commands = dockerfile_commands()
    assert any(re.search(rf"-m venv --system-site-packages {VENV}(\s|$)", c) for c in commands)
    builds = [c.split() for c in commands if re.search(r"(^|[\s/])colcon\s(.*\s)?build(\s|$)", c)]
    assert builds, "no colcon build in the Dockerfile"
    for words in builds:
        at = next(i for i, word in enumerate(words) if word.rsplit("/", 1)[-1] == "colcon")
        assert VENV_PYTHON in words[:at] or words[at] == f"{VENV}/bin/colcon", " ".join(words)
        assert f"-DPython3_EXECUTABLE={VENV_PYTHON}" in words, " ".join(words)


def test_docker_image_runs_rosdep_install_and_skips_the_keys_pip_installs():
    installs = [c for c in dockerfile_commands() if re.match(r"rosdep install\b", c)]
    assert len(installs) == 1
    (install,) = installs
    assert "--from-paths src" in install and "--ignore-src" in install
    assert re.search(r"\s(-y|--default-yes)\b", install)
    skipped = {key for quoted, bare in re.findall(r'--skip-keys[= ](?:"([^"]*)"|(\S+))', install)
               for key in (quoted or bare).split()}
    declared = set().union(*(run_dependencies(package) for package in PACKAGE_SOURCES))
    from_venv = {key for key, venv in PYTHON_KEYS.values() if venv}
    assert declared & from_venv <= skipped


@pytest.mark.parametrize("package", sorted(PACKAGE_SOURCES))
def test_package_declares_the_ros_packages_its_python_imports(package):
    modules = imported_modules(PACKAGE_SOURCES[package])
    needed = {ros_package(m) for m in modules} - {None, package}
    needed |= {PYTHON_KEYS[m][0] for m in modules if m in PYTHON_KEYS}
    missing = needed - run_dependencies(package)
    assert not missing, f"src/{package}/package.xml lacks exec_depend {sorted(missing)}"


@pytest.mark.parametrize("package", sorted(PACKAGE_SOURCES))
def test_package_python_dependencies_are_rosdep_keys_that_exist(package):
    root = ElementTree.parse(REPO / "src" / package / "package.xml").getroot()
    python_keys = {e.text.strip() for e in root.iter() if (e.text or "").startswith("python3-")}
    known = {key for key, _ in PYTHON_KEYS.values()} | {"python3-pytest"}
    assert python_keys <= known, f"not a checked rosdep key: {sorted(python_keys - known)}"


@pytest.mark.parametrize("path", CONTROLLER_FILES, ids=lambda p: p.name)
def test_trajectory_controllers_accept_streamed_chunks(path):
    jtcs = trajectory_controllers(path)
    assert jtcs
    for name, params in jtcs.items():
        assert params.get("allow_nonzero_velocity_at_trajectory_end") is True, name
        assert params.get("allow_partial_joints_goal") is False, name
        assert params.get("joints"), name
        assert set(params) <= JTC_PARAMETERS, f"{name}: {sorted(set(params) - JTC_PARAMETERS)}"


def test_so101_controllers_cover_the_params_file_joints():
    params = yaml.safe_load(PARAMS_FILE.read_text())
    jtcs = trajectory_controllers(SO101_CONTROLLERS)
    joints = jtcs["arm_controller"]["joints"] + jtcs["gripper_controller"]["joints"]
    assert joints == find_value(params, "joint_names")
    gripper_joint_names = find_value(params, "gripper_joint_names")
    if gripper_joint_names:
        assert jtcs["gripper_controller"]["joints"] == gripper_joint_names


@pytest.mark.parametrize("path", CONTROLLER_FILES, ids=lambda p: p.name)
def test_sample_controllers_serve_the_policy_topics(path):
    params = yaml.safe_load(PARAMS_FILE.read_text())
    assert controller_of(find_value(params, "trajectory_topic")) in trajectory_controllers(path)
    gripper_topic = find_value(params, "gripper_command_topic")
    if path == SO101_CONTROLLERS and gripper_topic:
        assert controller_of(gripper_topic) in controllers(path)
