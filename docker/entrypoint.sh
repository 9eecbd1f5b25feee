#!/usr/bin/env bash
# Runs a video2act launch file, or any command, in the built workspace:
#   docker run IMAGE [key:=value ...]                -> bringup.launch.py with those arguments
#   docker run IMAGE sim.launch.py [key:=value ...]  -> that launch file of the video2act package
#   docker run IMAGE /path/to/x.launch.py [...]      -> a launch file by path (mount it with -v)
#   docker run IMAGE COMMAND ...                     -> the command, e.g. bash or ros2 topic list
set -e
. /opt/ros/jazzy/setup.bash
. /ws/install/setup.bash
if [ "$#" -gt 0 ] && [[ "$1" == *.launch.py ]]; then
  if [[ "$1" == */* ]]; then
    exec ros2 launch "$@"
  fi
  exec ros2 launch video2act "$@"
fi
if [ "$#" -gt 0 ] && [[ "$1" == *":="* ]]; then
  exec ros2 launch video2act bringup.launch.py "$@"
fi
exec "$@"
