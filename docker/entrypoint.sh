#!/usr/bin/env bash
set -e
. /opt/ros/jazzy/setup.bash
. /ws/install/setup.bash
# `docker run image key:=value ...` passes launch arguments to the bringup.
if [ "$#" -gt 0 ] && [[ "$1" == *":="* ]]; then
  exec ros2 launch video2act bringup.launch.py "$@"
fi
exec "$@"
