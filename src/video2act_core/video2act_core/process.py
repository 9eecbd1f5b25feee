"""Guards for a node process from its first line, before the imports that
take seconds (torch): it dies with the process that launched it, and a
Ctrl-C while it starts up ends it at once, as it has nothing to stop
cleanly yet (run_node takes over the signals once the node is built).

`ros2 launch` killed by SIGTERM (systemd, docker stop) leaves its nodes
running (ros2/launch#666), and a policy left running keeps commanding the
arm; a launcher killed while the nodes still load its model left all of
them running before this guard came first."""

from __future__ import annotations

import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1


def stop_with_parent() -> None:
    """Ask Linux for SIGTERM when the launching process dies."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the launcher must stop its nodes itself
        pass


def guard_process_start() -> None:
    stop_with_parent()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: os._exit(0))
