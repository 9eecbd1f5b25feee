"""The simulated arm closed-loop with both Video2Act nodes on sim time, the
policy armed.

    ros2 launch video2act sim.launch.py [namespace:=sim1] [backend:=mujoco_so101]
        [params_file:=/path/to.yaml] [checkpoint:=/path/to/checkpoint] [device:=cpu]

The simulator publishes /clock; perception and policy follow it. Without a
ROS install the same nodes start with `python -m video2act_sim.demo --sim-time`.
What it starts is defined once, in video2act_core.bringup.
"""

import tempfile
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.logging import get_logger
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from video2act_core.bringup import SIM_ARGUMENTS, sim_nodes, write_params_files


def video2act_nodes(context):
    values = {argument.name: LaunchConfiguration(argument.name).perform(context) for argument in SIM_ARGUMENTS}
    unknown = sorted(set(context.launch_configurations) - set(values))
    if unknown:  # `ros2 launch` itself accepts any name:=value without a word
        get_logger("video2act").warning(f"ignoring unknown launch arguments {unknown}; see --show-args")
    directory = Path(tempfile.mkdtemp(prefix="video2act_launch_"))
    specs = sim_nodes(values, Path(get_package_share_directory("video2act")))
    return [
        Node(package=spec.executable.package, executable=spec.executable.name, name=spec.executable.node,
             namespace=spec.namespace, parameters=write_params_files(spec, directory), output="screen",
             emulate_tty=True)
        for spec in specs
    ]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description) for a in SIM_ARGUMENTS]
        + [OpaqueFunction(function=video2act_nodes)]
    )
