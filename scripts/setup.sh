#!/usr/bin/env bash
# One-command development setup on a fresh Debian/Ubuntu with Python 3.11 and
# no ROS install: venv with ROS 2 Kilted wheels, torch (CPU) and diffusers,
# wheel repairs, then `colcon build` of the workspace. Safe to rerun: pip is
# skipped while the requirement files are unchanged, colcon builds
# incrementally.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VIDEO2ACT_VENV:-$root/.venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
# shellcheck disable=SC1091
. "$venv/bin/activate"

stamp="$venv/.video2act-requirements"
wanted="$(cat "$root"/requirements/*.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  python -m pip install --quiet --disable-pip-version-check \
    -r "$root/requirements/ros.txt" -r "$root/requirements/python.txt" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  echo "$wanted" > "$stamp"
fi

# The wheels' exported CMake files point at the build machine's interpreter
# (/opt/python/cp311-cp311/...); aim them at this one.
py_include="$(python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
np_include="$(python -c 'import numpy; print(numpy.get_include())')"
{ grep -rlE "/opt/python/cp311-cp311" "$venv/share" --include="*.cmake" || true; } \
  | xargs -r sed -i \
      -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_include#g" \
      -e "s#/opt/python/cp311-cp311/include/python3.11#$py_include#g"

# The venv is an ament prefix: colcon finds the wheels' packages through it.
export AMENT_PREFIX_PATH="$venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
cd "$root"
mkdir -p build
colcon --log-base build/log build --symlink-install \
  --build-base build --install-base install \
  --event-handlers console_direct- \
  --cmake-args -DPython3_EXECUTABLE="$venv/bin/python" -DBUILD_TESTING=OFF \
  > build/colcon.log 2>&1 || { cat build/colcon.log; exit 1; }
echo "video2act: workspace ready (venv: $venv, install: $root/install)"
