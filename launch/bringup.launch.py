"""Video2Act on a robot (or a Gazebo / Isaac Sim bridge): perception and
policy nodes with the shared params file. The policy starts disarmed: arm it
with `ros2 service call /<namespace>/video2act_policy/arm std_srvs/srv/SetBool "{data: true}"`.

    ros2 launch video2act bringup.launch.py [namespace:=arm1]
        [params_file:=/path/to.yaml] [overrides_file:=/path/to/bridge.yaml]
        [checkpoint:=/path/to/checkpoint] [device:=cuda] [use_sim_time:=true]

`ros2 launch video2act bringup.launch.py --show-args` describes each
argument. What it starts is defined once, in video2act_core.bringup.
"""

import tempfile
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.logging import get_logger
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from video2act_core.bringup import BRINGUP_ARGUMENTS, bringup_nodes, write_params_files


def video2act_nodes(context):
    values = {argument.name: LaunchConfiguration(argument.name).perform(context) for argument in BRINGUP_ARGUMENTS}
    unknown = sorted(set(context.launch_configurations) - set(values))
    if unknown:  # `ros2 launch` itself accepts any name:=value without a word
        get_logger("video2act").warning(f"ignoring unknown launch arguments {unknown}; see --show-args")
    directory = Path(tempfile.mkdtemp(prefix="video2act_launch_"))
    specs = bringup_nodes(values, Path(get_package_share_directory("video2act")))
    return [
        Node(package=spec.executable.package, executable=spec.executable.name, name=spec.executable.node,
             namespace=spec.namespace, parameters=write_params_files(spec, directory), output="screen",
             emulate_tty=True)
        for spec in specs
    ]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description) for a in BRINGUP_ARGUMENTS]
        + [OpaqueFunction(function=video2act_nodes)]
    )
