#!/usr/bin/env bash
# Native install of Video2Act on a robot computer with ROS 2 from apt
# (/opt/ros/<distro>): Jazzy on Ubuntu 24.04 (Python 3.12), or Kilted
# (24.04, 3.12) the same way. Humble is refused: its Python 3.10 is older
# than requirements/python.txt's pins need (diffusers 0.42, transformers 5,
# pyarrow 26, av 18, matplotlib 3.11: Python >= 3.11). docker/Dockerfile
# runs this script too, so the image and a native install cannot drift.
#
#   scripts/install_ros2.sh [--cpu | --torch-index URL] [--venv DIR]
#                           [--rosdistro NAME] [--steps LIST] [--dry-run]
#
# Steps, in this order; each is safe to rerun and skips what is done:
#   system  apt packages the other steps need (rosdep, colcon, python3-venv,
#           rosbag2 with mcap storage)
#   rosdep  `rosdep install` of the ROS dependencies in src/*/package.xml,
#           skipping the keys in docker/rosdep-skip-keys.txt (the venv
#           installs those: apt's torch is CPU-only, -pip keys run pip on the
#           system python, which PEP 668 refuses)
#   venv    a venv over the system site packages (rclpy, messages, cv_bridge
#           and numpy from apt) with requirements/python.txt; numpy stays
#           Ubuntu's, which cv_bridge is compiled against (docker/constraints.txt)
#   build   colcon build under the venv's python, so that the node scripts'
#           shebangs name it and `ros2 launch` starts the nodes where torch
#           imports; fails if a node script has another interpreter
#   check   the nodes' interpreter imports torch, rclpy, diffusers, cv_bridge
#           and the workspace; the launch files load
#
# Options:
#   --cpu              torch from PyTorch's CPU index (no CUDA; a few hundred
#                      MB instead of several GB)
#   --torch-index URL  torch from another index (a CUDA build for an older
#                      driver, see https://download.pytorch.org/whl/); the
#                      default, PyPI's torch, is built for CUDA 13.0 and needs
#                      an NVIDIA driver >= 580 (docs/robot.md, "GPU driver")
#   --venv DIR         the venv (default $VIDEO2ACT_VENV, else ~/.venvs/video2act)
#   --rosdistro NAME   jazzy or kilted (default $ROS_DISTRO, else the one
#                      installed under /opt/ros)
#   --steps LIST       comma-separated steps to run (default: all)
#   --dry-run          print the commands instead of running them (lines
#                      starting with "+ "); the machine itself is not checked
#   --print-requirements  print what the venv step gives pip (-r), and exit
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ALL_STEPS=(system rosdep venv build check)
CPU_INDEX=https://download.pytorch.org/whl/cpu
SKIP_KEYS_FILE="$root/docker/rosdep-skip-keys.txt"
CONSTRAINTS="$root/docker/constraints.txt"
REQUIREMENTS="$root/requirements/python.txt"

venv="${VIDEO2ACT_VENV:-$HOME/.venvs/video2act}"
ros_root="${VIDEO2ACT_ROS_ROOT:-/opt/ros}"  # another root only for the tests
distro="${ROS_DISTRO:-}"
torch_index=""
steps="$(IFS=,; echo "${ALL_STEPS[*]}")"
dry_run=0
print_requirements=0

die() { echo "install_ros2.sh: $*" >&2; exit 1; }
say() { echo "video2act: $*" >&2; }

while [ "$#" -gt 0 ]; do
  case "$1" in
    --cpu) torch_index="$CPU_INDEX" ;;
    --torch-index) [ "$#" -ge 2 ] || die "--torch-index needs a URL"; torch_index="$2"; shift ;;
    --venv) [ "$#" -ge 2 ] || die "--venv needs a directory"; venv="$2"; shift ;;
    --rosdistro) [ "$#" -ge 2 ] || die "--rosdistro needs a name"; distro="$2"; shift ;;
    --steps) [ "$#" -ge 2 ] || die "--steps needs a list"; steps="$2"; shift ;;
    --dry-run) dry_run=1 ;;
    --print-requirements) print_requirements=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (--help lists the options)" ;;
  esac
  shift
done

# requirements/python.txt with every package that docker/constraints.txt
# names left unpinned, so that the constraint decides its version: numpy stays
# Ubuntu's (cv_bridge is compiled against it), pyarrow at the newest release
# that imports with that numpy. A constraint alone cannot override a pin.
ros_requirements() {
  local names
  names="$(sed -E -e 's/#.*//' -e 's/^[[:space:]]*([A-Za-z0-9_.-]+).*/\1/' "$CONSTRAINTS" | grep . | paste -sd'|')"
  sed -E "s/^($names)([^A-Za-z0-9_.-].*)?\$/\1/" "$REQUIREMENTS"
}
if [ "$print_requirements" = 1 ]; then
  ros_requirements
  exit 0
fi

for step in ${steps//,/ }; do
  [[ " ${ALL_STEPS[*]} " == *" $step "* ]] || die "unknown step '$step' (steps: ${ALL_STEPS[*]})"
done
wants() { [[ ",$steps," == *",$1,"* ]]; }

# --- what each command does: run it, or print it in a dry run --------------
run() {
  if [ "$dry_run" = 1 ]; then
    printf '+'; printf ' %q' "$@"; printf '\n'
  else
    "$@"
  fi
}
# run_to FILE COMMAND...: COMMAND's output into FILE.
run_to() {
  local file="$1"; shift
  if [ "$dry_run" = 1 ]; then
    printf '+'; printf ' %q' "$@"; printf ' > %q\n' "$file"
  else
    "$@" > "$file"
  fi
}
# source_setup FILE: a ROS or colcon setup script, which reads unset variables.
source_setup() {
  if [ "$dry_run" = 1 ]; then
    printf '+ . %q\n' "$1"
  else
    set +u
    # shellcheck disable=SC1090
    . "$1"
    set -u
  fi
}

# --- the distribution and the machine ---------------------------------------
if [ -z "$distro" ]; then
  found=()
  for candidate in jazzy kilted; do
    [ -f "$ros_root/$candidate/setup.bash" ] && found+=("$candidate")
  done
  [ "${#found[@]}" -le 1 ] || die "several ROS 2 installs under $ros_root (${found[*]}): pick one with --rosdistro"
  distro="${found[0]:-}"
fi
case "$distro" in
  jazzy|kilted) python_version=3.12 ;;
  humble) die "ROS 2 humble runs Python 3.10; requirements/python.txt needs >= 3.11" \
    "(diffusers 0.42, transformers 5, pyarrow 26, av 18, matplotlib 3.11): use jazzy (Ubuntu 24.04) or the Docker image" ;;
  "") die "no ROS 2 jazzy or kilted under $ros_root: install ros-jazzy-ros-base from apt (Ubuntu 24.04), or set ROS_DISTRO" ;;
  *) die "ROS 2 '$distro' is not supported: jazzy or kilted (Ubuntu 24.04) from apt" ;;
esac
ros_setup="$ros_root/$distro/setup.bash"
python=/usr/bin/python3  # the interpreter ROS's apt packages are built for
venv="$(realpath -m "$venv")"
venv_python="$venv/bin/python"
sudo=()
if [ "$(id -u)" != 0 ]; then
  sudo=(sudo)
fi

if [ "$dry_run" = 1 ]; then
  say "dry run for ROS 2 $distro (Python $python_version), venv $venv: this machine is not checked"
else
  [ -f "$ros_setup" ] || die "$ros_setup not found: install ROS 2 $distro from apt first (ros-$distro-ros-base)"
  have="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo none)"
  [ "$have" = "$python_version" ] \
    || die "ROS 2 $distro runs on Python $python_version as $python (rclpy is built for it); this machine has $have"
  [ "${#sudo[@]}" = 0 ] || command -v sudo > /dev/null || die "run as root, or install sudo: apt and rosdep need it"
  if [ -e "$venv" ]; then
    grep -qx 'include-system-site-packages = true' "$venv/pyvenv.cfg" 2>/dev/null \
      || die "$venv exists but is not a venv with --system-site-packages (rclpy comes from apt): remove it or pick --venv"
    have="$("$venv_python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo none)"
    [ "$have" = "$python_version" ] || die "$venv runs Python $have, not $python_version: remove it or pick --venv"
  fi
fi
cd "$root"

# --- system: what the steps below run ---------------------------------------
installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}
if wants system; then
  packages=(python3-venv python3-pip build-essential cmake "ros-$distro-rosbag2" "ros-$distro-rosbag2-storage-mcap")
  command -v rosdep > /dev/null || packages+=(python3-rosdep)
  command -v colcon > /dev/null || packages+=(python3-colcon-common-extensions)
  missing=()
  for package in "${packages[@]}"; do
    installed "$package" || missing+=("$package")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    run "${sudo[@]}" apt-get update
    run "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
  fi
fi

# --- rosdep: the ROS dependencies of src/*/package.xml ----------------------
# One key a line; `#` starts a comment.
skip_keys="$(sed -e 's/#.*//' "$SKIP_KEYS_FILE" | xargs)"
if wants rosdep; then
  [ -e /etc/ros/rosdep/sources.list.d/20-default.list ] || run "${sudo[@]}" rosdep init
  run rosdep update --rosdistro "$distro"
  rosdep_args=(--from-paths src --ignore-src --rosdistro "$distro" --skip-keys "$skip_keys")
  if [ "$dry_run" = 1 ] || ! rosdep check "${rosdep_args[@]}" > /dev/null 2>&1; then
    run "${sudo[@]}" apt-get update
    run rosdep install --from-paths src --ignore-src -y --rosdistro "$distro" --skip-keys "$skip_keys"
  fi
fi

# --- venv: the model stack over the system site packages --------------------
if wants venv; then
  [ -x "$venv_python" ] || run "$python" -m venv --system-site-packages "$venv"
  stamp="$venv/.video2act-install"
  wanted="$(cat "$REQUIREMENTS" "$CONSTRAINTS" | sha256sum | cut -d' ' -f1) ${torch_index:-pypi}"
  if [ "$dry_run" = 1 ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    pip=("$venv_python" -m pip install --disable-pip-version-check)
    torch_pin="$(grep -E '^torch==' "$REQUIREMENTS")"
    have="$("$venv_python" -c 'from importlib.metadata import version; print(version("torch"))' 2>/dev/null || true)"
    if [ -n "$torch_index" ]; then
      # torch alone from that index (its local label, e.g. +cpu, still
      # satisfies the pin below); its dependencies come from PyPI.
      label="${torch_index%/}"
      if [ "$have" != "${torch_pin#torch==}+${label##*/}" ]; then
        run "${pip[@]}" --no-deps --force-reinstall --index-url "$torch_index" "$torch_pin"
      fi
    elif [[ "$have" == *+* ]]; then
      # A +cpu (or other index's) torch from an earlier run: back to PyPI's.
      run "${pip[@]}" --no-deps --force-reinstall "$torch_pin"
    fi
    requirements="$venv/video2act-requirements.txt"
    run_to "$requirements" ros_requirements
    run "${pip[@]}" -c "$CONSTRAINTS" -r "$requirements"
    run_to "$stamp" echo "$wanted"
  fi
fi

# --- build: colcon under the venv's python ----------------------------------
# ament_python writes the interpreter that runs setup.py into the node
# scripts' shebangs (install/<pkg>/lib/<pkg>/), so `ros2 launch` starts the
# nodes where torch imports. colcon (the apt package) is run as a script by
# that python, which sees it through --system-site-packages; colcon has no
# `python -m` entry point. Python3_EXECUTABLE builds the message package's
# Python bindings for the same interpreter. A plain (non-symlink) install.
check_shebangs() {
  local script count=0
  for script in "$root"/install/video2act_*/lib/video2act_*/*; do
    [ -f "$script" ] || continue
    count=$((count + 1))
    [ "$(head -n1 "$script")" = "#!$venv_python" ] \
      || die "$script does not run under $venv_python: rm -rf build install, then rerun"
  done
  [ "$count" -gt 0 ] || die "no node scripts under $root/install"
}
if wants build; then
  source_setup "$ros_setup"
  colcon="$(command -v colcon || echo /usr/bin/colcon)"
  run "$venv_python" "$colcon" build --cmake-args -DBUILD_TESTING=OFF "-DPython3_EXECUTABLE=$venv_python"
  run check_shebangs
fi

# --- check: what the nodes and the eval tools import, and the launch files ---
# cv_bridge_boost is the compiled part that breaks under the wrong numpy.
IMPORTS="import torch, rclpy, diffusers, PIL, cv2, cv_bridge, cv_bridge.boost.cv_bridge_boost, video2act_msgs.msg"
IMPORTS+="; import video2act_core.checkpoint, video2act_perception.node, video2act_policy.node"
IMPORTS+="; import video2act_eval.evaluate, video2act_eval.replay, video2act_eval.demo"
IMPORTS+="; import pyarrow, av, safetensors, transformers, peft, mujoco, rosbags, matplotlib, yaml, tqdm"
IMPORTS+="; from video2act_core.devices import cuda_unusable_reason"
IMPORTS+="; print('video2act: torch', torch.__version__, 'for CUDA', torch.version.cuda, '- CUDA here:', cuda_unusable_reason() or 'usable')"
if wants check; then
  source_setup "$root/install/setup.bash"
  run "$venv_python" -c "$IMPORTS"
  for launch_file in bringup.launch.py sim.launch.py; do
    run_to /dev/null ros2 launch video2act "$launch_file" --show-args
  done
  [ "$dry_run" = 0 ] || say "dry run: nothing was changed; a real run ends with:"
  say "installed. In each new shell (the nodes run under $venv_python):"
  say "  source $root/install/setup.bash"
  say "  ros2 launch video2act bringup.launch.py"
  say "(for the python -m tools, also: source $venv/bin/activate)"
fi
