#!/usr/bin/env bash
# Runs a video2act launch file, or any command, in the built workspace:
#   docker run IMAGE [key:=value ...]                -> bringup.launch.py with those arguments
#   docker run IMAGE sim.launch.py [key:=value ...]  -> that launch file of the video2act package
#   docker run IMAGE /path/to/x.launch.py [...]      -> a launch file by path (mount it with -v)
#   docker run IMAGE COMMAND ...                     -> the command, e.g. bash or ros2 topic list
# Every path execs, so that the command is PID 1 and gets `docker stop`'s
# signal (STOPSIGNAL SIGINT, see the Dockerfile). `ros2 launch` runs with
# --noninteractive: on SIGINT it then sends SIGINT to each node itself (the
# policy's final hold), even under `docker run -it`, where it would otherwise
# leave that to the terminal.
set -e
# shellcheck disable=SC1090,SC1091
. "${VIDEO2ACT_ROS_SETUP:-/opt/ros/${ROS_DISTRO:-jazzy}/setup.bash}"
# shellcheck disable=SC1090,SC1091
. "${VIDEO2ACT_WS_SETUP:-/ws/install/setup.bash}"
if [ "$#" -gt 0 ] && [[ "$1" == *.launch.py ]]; then
  if [[ "$1" == */* ]]; then
    exec ros2 launch --noninteractive "$@"
  fi
  exec ros2 launch --noninteractive video2act "$@"
fi
if [ "$#" -eq 0 ] || [[ "$1" == *":="* ]]; then
  exec ros2 launch --noninteractive video2act bringup.launch.py "$@"
fi
if [ "$#" -ge 2 ] && [ "$1" = ros2 ] && [ "$2" = launch ]; then
  shift 2
  exec ros2 launch --noninteractive "$@"
fi
exec "$@"
