# Source me: the venv plus the colcon workspace overlay (messages, nodes).
_video2act_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
. "${VIDEO2ACT_VENV:-$_video2act_root/.venv}/bin/activate"
export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
. "$_video2act_root/install/local_setup.sh"
unset _video2act_root
