"""Model calls off the ROS executor thread.

The nodes spin a single-threaded executor and hand each model call to a
ModelThread. Not rclpy's MultiThreadedExecutor (Kilted wheels): with callbacks
in flight its spin loop ran 1,000-4,000 times a second with nothing ready,
holding the GIL the model needs; on 2 cores that stretched a 40 ms System 1
call to 0.7 s, until the policy starved its own joint-state callback into a
hold (a CI failure)."""

from __future__ import annotations

import threading
from collections.abc import Callable


class ModelThread:
    """Runs `step` on its own thread each time `tick` is called, one call at a
    time: ticks that arrive during a call collapse into one call after it, as
    an overdue ROS timer would fire once, not once per missed period."""

    def __init__(self, step: Callable[[], None], on_error: Callable[[Exception], None], name: str):
        self._step = step
        self._on_error = on_error
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def tick(self) -> None:
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Let the running call finish (it may publish), then end the thread."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                self._step()
            except Exception as error:  # the loop outlives one bad call; the caller logs it
                self._on_error(error)
