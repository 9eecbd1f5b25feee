"""The simulated arm closed-loop with both Video2Act nodes on sim time, the
policy armed.

    ros2 launch video2act sim.launch.py [namespace:=sim1] [backend:=mujoco_so101] [task:=track]
        [scene:=lighting]
        [params_file:=/path/to.yaml] [checkpoint:=/path/to/checkpoint] [device:=cpu]

The simulator publishes /clock; perception and policy follow it. Without a
ROS install the same nodes start with `python -m video2act_eval.demo --sim-time`.
What it starts is defined once, in video2act_core.bringup.
"""

from video2act_core.bringup import SIM_ARGUMENTS, launch_description, sim_nodes


def generate_launch_description():
    return launch_description(SIM_ARGUMENTS, sim_nodes)
