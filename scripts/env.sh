# Source me: the venv plus the colcon workspace overlay (messages, nodes).
_video2act_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
# colcon's and venv's scripts read unset variables; allow that while sourcing.
case $- in *u*) _video2act_nounset=1; set +u ;; *) _video2act_nounset= ;; esac
. "${VIDEO2ACT_VENV:-$_video2act_root/.venv}/bin/activate"
export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
. "$_video2act_root/install/local_setup.sh"
[ -n "$_video2act_nounset" ] && set -u
unset _video2act_root _video2act_nounset
