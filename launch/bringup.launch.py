"""Video2Act on a robot (or a Gazebo / Isaac Sim bridge): perception and
policy nodes with the shared params file. The policy starts disarmed: arm it
with `ros2 service call /<namespace>/video2act_policy/arm std_srvs/srv/SetBool "{data: true}"`.

    ros2 launch video2act bringup.launch.py [namespace:=arm1]
        [params_file:=/path/to.yaml] [overrides_file:=/path/to/bridge.yaml]
        [checkpoint:=/path/to/checkpoint] [device:=cuda] [use_sim_time:=true]

`ros2 launch video2act bringup.launch.py --show-args` describes each
argument. What it starts is defined once, in video2act_core.bringup.
"""

from video2act_core.bringup import BRINGUP_ARGUMENTS, bringup_nodes, launch_description


def generate_launch_description():
    return launch_description(BRINGUP_ARGUMENTS, bringup_nodes)
