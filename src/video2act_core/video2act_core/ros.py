"""The one ROS-facing helper module of the core, used by the node shells:
declares a params dataclass as typed ROS parameters and resolves resource
paths against the installed `video2act` package, and runs nodes with their
model calls on a thread of their own."""

from __future__ import annotations

import typing
from pathlib import Path

from rcl_interfaces.msg import ParameterDescriptor, ParameterType
from rclpy.node import Node
from rclpy.parameter import Parameter

from video2act_core.params import param_fields

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


def declare_params(node: Node, params_type: type):
    """Declare every field of `params_type` as a typed parameter (the params
    file and `--ros-args -p` override the defaults) and return the values."""
    values = {}
    for name, (python_type, default) in param_fields(params_type).items():
        descriptor = ParameterDescriptor(name=name, type=ros_parameter_type(python_type), read_only=True)
        if isinstance(default, list) and not default:
            # An empty list carries no element type; declare by type instead.
            node.declare_parameter(name, Parameter.Type(descriptor.type), descriptor)
        else:
            node.declare_parameter(name, default, descriptor)
        value = node.get_parameter(name).value
        values[name] = list(value) if typing.get_origin(python_type) is list else value
        if value is None:
            values[name] = []
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

    def start_model_thread(self, period_s: float, step, name: str) -> None:
        """Call `step` every `period_s` of node time (sim time included) on a
        ModelThread, so the executor keeps taking sensor messages meanwhile."""
        from video2act_core.model_thread import ModelThread

        def log_failure(error: Exception) -> None:
            self.get_logger().error(f"{name} failed: {error!r}", throttle_duration_sec=5.0)

        thread = ModelThread(step, log_failure, name)
        self._model_threads.append(thread)
        self.create_timer(period_s, thread.tick)

    def destroy_node(self):
        # A running call may still publish: let it finish before the publishers go.
        for thread in self._model_threads:
            thread.stop()
        return super().destroy_node()


def run_node(node_factory, args=None) -> int:
    """Spin a node on a single-threaded executor (model calls run on their
    own thread, see model_thread.py) until shutdown; 1 if it could not start."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    rclpy.init(args=args)
    try:
        node = node_factory()
    except Exception as error:  # a startup failure must say why, not dump a trace
        rclpy.logging.get_logger("video2act").fatal(f"cannot start: {error}")
        rclpy.try_shutdown()
        return 1
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
