"""Start the stack's nodes as separate processes the way `ros2 run` would,
for machines without `ros2 launch` (the PyPI wheels have none) and for the
multi-process tests. On a full ROS 2 install use launch/bringup.launch.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Executable:
    package: str
    name: str
    node: str  # the node's name: its section in the params file


PERCEPTION = Executable("video2act_perception", "perception_node", "video2act_perception")
POLICY = Executable("video2act_policy", "policy_node", "video2act_policy")
SIM_ARM = Executable("video2act_sim", "sim_arm_node", "video2act_sim_arm")


def executable_path(executable: Executable) -> Path:
    from ament_index_python.packages import get_package_prefix

    path = Path(get_package_prefix(executable.package)) / "lib" / executable.package / executable.name
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is the workspace built (scripts/setup.sh)?")
    return path


def start_node(
    executable: Executable,
    params_file: str | os.PathLike,
    parameters: dict[str, object] | None = None,
    log_file=None,
) -> subprocess.Popen:
    """One node process with the params file, then `parameters` on top.

    The overrides go in a second params file under the node's own name: a
    `-p` override is a wildcard, and node-specific file entries beat those.
    """
    command = [sys.executable, str(executable_path(executable)), "--ros-args", "--params-file", str(params_file)]
    if parameters:
        overrides = tempfile.NamedTemporaryFile("w", prefix=f"{executable.node}-", suffix=".yaml", delete=False)
        with overrides:
            yaml.safe_dump({executable.node: {"ros__parameters": parameters}}, overrides)
        command += ["--params-file", overrides.name]
    return subprocess.Popen(
        command,
        stdout=log_file or subprocess.DEVNULL,
        stderr=subprocess.STDOUT if log_file else subprocess.DEVNULL,
        start_new_session=True,
    )


def stop_nodes(processes: list[subprocess.Popen], timeout_s: float = 10.0) -> list[int]:
    """SIGINT (a clean rclpy shutdown), then SIGKILL after `timeout_s`."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(timeout=timeout_s))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            codes.append(process.wait())
    return codes
