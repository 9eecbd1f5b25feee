"""Start the stack's nodes as separate processes the way `ros2 launch`
would (same node specs, params files and command lines, from
video2act_core.bringup), for machines without `ros2 launch` (the PyPI
wheels have none) and for the multi-process tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from video2act_core.bringup import PERCEPTION, POLICY, SIM_ARM, Executable, NodeSpec, ros_arguments, write_params_files

__all__ = ["PERCEPTION", "POLICY", "SIM_ARM", "executable_path", "start_node", "start_spec", "stop_nodes"]


def executable_path(executable: Executable) -> Path:
    from ament_index_python.packages import get_package_prefix

    path = Path(get_package_prefix(executable.package)) / "lib" / executable.package / executable.name
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is the workspace built (scripts/setup.sh)?")
    return path


def start_spec(spec: NodeSpec, log_file=None) -> subprocess.Popen:
    """One node process as launch would start it, in a process group of its
    own; its params files are removed by `stop_nodes`."""
    directory = Path(tempfile.mkdtemp(prefix="video2act_"))
    command = [
        sys.executable,
        str(executable_path(spec.executable)),
        *ros_arguments(spec, write_params_files(spec, directory)),
    ]
    try:
        process = subprocess.Popen(
            command,
            stdout=log_file or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if log_file else subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    process.params_directory = directory
    return process


def start_node(
    executable: Executable,
    params_files: str | os.PathLike | list,
    parameters: dict[str, object] | None = None,
    log_file=None,
    namespace: str = "",
) -> subprocess.Popen:
    """One node with the params file(s) in order, then `parameters` above every section of them."""
    files = params_files if isinstance(params_files, list) else [params_files]
    return start_spec(NodeSpec(executable, namespace, tuple(str(f) for f in files), dict(parameters or {})), log_file)


def stop_nodes(processes: list[subprocess.Popen], timeout_s: float = 10.0) -> list[int]:
    """SIGINT (a clean stop), then SIGKILL after `timeout_s`."""
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
        if hasattr(process, "params_directory"):
            shutil.rmtree(process.params_directory, ignore_errors=True)
    return codes
