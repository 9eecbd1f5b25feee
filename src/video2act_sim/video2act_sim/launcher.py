"""Start the stack's nodes as separate processes the way `ros2 run` would,
for machines without `ros2 launch` (the PyPI wheels have none) and for the
multi-process tests. On a full ROS 2 install use launch/bringup.launch.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Executable:
    package: str
    name: str


PERCEPTION = Executable("video2act_perception", "perception_node")
POLICY = Executable("video2act_policy", "policy_node")
SIM_ARM = Executable("video2act_sim", "sim_arm_node")


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
    """One node process with the params file and `-p name:=value` overrides."""
    command = [sys.executable, str(executable_path(executable)), "--ros-args", "--params-file", str(params_file)]
    for name, value in (parameters or {}).items():
        command += ["-p", f"{name}:={_ros_value(value)}"]
    return subprocess.Popen(
        command,
        stdout=log_file or subprocess.DEVNULL,
        stderr=subprocess.STDOUT if log_file else subprocess.DEVNULL,
        start_new_session=True,
    )


def _ros_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_ros_value(v) for v in value) + "]"
    return str(value)


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
