"""The one ROS-facing helper module of the core, used by the node shells:
declares a params dataclass as typed, described ROS parameters, resolves
resource paths against the installed `video2act` package, runs nodes with
their model calls on a thread of their own, and stops them cleanly on
SIGINT or SIGTERM (a terminal's Ctrl-C reaches every process of the group)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import typing
from pathlib import Path

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.exceptions import (
    InvalidParameterTypeException,
    InvalidParameterValueException,
    ParameterUninitializedException,
)
from rclpy.node import Node
from rclpy.parameter import Parameter

from video2act_core.params import param_fields, param_metadata

_ROS_TYPES = {
    str: ParameterType.PARAMETER_STRING,
    float: ParameterType.PARAMETER_DOUBLE,
    int: ParameterType.PARAMETER_INTEGER,
    bool: ParameterType.PARAMETER_BOOL,
    list[str]: ParameterType.PARAMETER_STRING_ARRAY,
    list[float]: ParameterType.PARAMETER_DOUBLE_ARRAY,
}


def ros_parameter_type(python_type: type) -> int:
    return _ROS_TYPES[python_type]


def parameter_descriptor(name: str, python_type: type, meta: dict) -> ParameterDescriptor:
    """The dataclass field's description, range and choices, for `ros2 param describe`."""
    descriptor = ParameterDescriptor(
        name=name, type=ros_parameter_type(python_type), read_only=True, description=meta.get("description", "")
    )
    if meta.get("choices"):
        descriptor.additional_constraints = "one of: " + ", ".join(meta["choices"])
    low, high = meta.get("low"), meta.get("high")
    if python_type is float and (low is not None or high is not None):
        descriptor.floating_point_range = [
            FloatingPointRange(
                from_value=float(low if low is not None else -sys.float_info.max),
                to_value=float(high if high is not None else sys.float_info.max),
            )
        ]
    elif python_type is int and (low is not None or high is not None):
        descriptor.integer_range = [
            IntegerRange(
                from_value=int(low if low is not None else -(2**63)),
                to_value=int(high if high is not None else 2**63 - 1),
            )
        ]
    return descriptor


def declare_params(node: Node, params_type: type):
    """Declare every field of `params_type` as a typed, described parameter
    (the params files and `--ros-args -p` override the defaults) and return
    the values, checked by the dataclass.

    Raises:
        ValueError: a value outside its range or choices, in one line.
    """
    values = {}
    metadata = param_metadata(params_type)
    for name, (python_type, default) in param_fields(params_type).items():
        descriptor = parameter_descriptor(name, python_type, metadata[name])
        try:
            if isinstance(default, list) and not default:
                # An empty list carries no element type; declare by type instead.
                node.declare_parameter(name, Parameter.Type(descriptor.type), descriptor)
            else:
                node.declare_parameter(name, default, descriptor)
            value = node.get_parameter(name).value
        except ParameterUninitializedException:
            value = default  # a typed list the params files leave out
        except (InvalidParameterValueException, InvalidParameterTypeException) as error:
            raise ValueError(f"parameter {name}: {error}") from None
        values[name] = list(value) if typing.get_origin(python_type) is list else value
    return params_type(**values)


def resolve_resource(path: str) -> Path:
    """Absolute paths as given; relative ones against the `video2act` share dir."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        return candidate
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        return Path(get_package_share_directory("video2act")) / candidate
    except PackageNotFoundError:
        return candidate.resolve()


def latched_qos():
    """Reliable, transient local, depth 1: what robot_state_publisher and the
    instruction topic latch, so a late subscriber still gets the last one."""
    from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy

    return QoSProfile(
        depth=1, reliability=QoSReliabilityPolicy.RELIABLE, durability=QoSDurabilityPolicy.TRANSIENT_LOCAL
    )


def latents_qos():
    """Reliable, keep-last 1: the policy only ever wants the newest update."""
    from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy

    return QoSProfile(
        history=QoSHistoryPolicy.KEEP_LAST,
        depth=1,
        reliability=QoSReliabilityPolicy.RELIABLE,
        durability=QoSDurabilityPolicy.VOLATILE,
    )


class ModelNode(Node):
    """A node whose model calls run on ModelThreads, stopped with the node."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._model_threads = []

    def start_model_thread(self, period_s: float, step, name: str):
        """Call `step` every `period_s` of node time (sim time included) on a
        ModelThread, so the executor keeps taking sensor messages meanwhile;
        returns the thread (`tick` it to call `step` sooner)."""
        from video2act_core.model_thread import ModelThread

        def log_failure(error: Exception) -> None:
            self.get_logger().error(f"{name} failed: {error!r}", throttle_duration_sec=5.0)

        thread = ModelThread(step, log_failure, name)
        self._model_threads.append(thread)
        self.create_timer(period_s, thread.tick)
        return thread

    def on_stop(self) -> None:
        """Last words once the model threads are stopped, before the
        publishers go (the policy sends its final hold here)."""

    def destroy_node(self):
        # A running call may still publish: let it finish before the publishers go.
        for thread in self._model_threads:
            thread.stop()
        if self._model_threads:  # a node that failed while starting has nothing to stop
            self.on_stop()
        return super().destroy_node()


def run_node(node_factory, name: str, args=None) -> int:
    """Spin a node on a single-threaded executor (model calls run on their
    own thread, see model_thread.py) until SIGINT or SIGTERM (the node
    modules call process.guard_process_start first, so the death of the
    launching process sends one too), then stop it cleanly and exit the
    process with 0: no traceback, model threads joined. Returns 1 if the
    node could not start, having logged why under the node's `name`.

    rclpy's own handlers are off: they shut the context down at the signal
    (so a final command could not be published) and raise KeyboardInterrupt
    wherever the main thread is, a second Ctrl-C inside destroy_node included.
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = node_factory()
    except Exception as error:  # a startup failure must say why, not dump a trace
        rclpy.logging.get_logger(name).fatal(f"cannot start: {error}")
        rclpy.try_shutdown()
        return 1
    # From here a signal stops the node cleanly (until now it ended the process).
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        # Short waits so that a signal is seen within 0.1 s.
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except ExternalShutdownException:
        pass
    finally:
        node.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown()
    # All is stopped; skip the interpreter's finalisation, which takes 1.1 s
    # with torch loaded on this machine: a Ctrl-C should end in 0.1 s.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
