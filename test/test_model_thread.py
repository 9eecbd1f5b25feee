"""Model calls on their own thread: no overlap, no lost loop, and sensor
callbacks keep running on the nodes' single-threaded executor while a model
call is slow."""

import threading
import time

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import JointState

from video2act_core.model_thread import ModelThread
from video2act_core.ros import ModelNode


class SlowStep:
    def __init__(self, seconds: float, fail_first: bool = False):
        self.seconds, self.fail_first = seconds, fail_first
        self.calls, self.overlaps = 0, 0
        self._running = threading.Lock()

    def __call__(self):
        if not self._running.acquire(blocking=False):
            self.overlaps += 1
            return
        try:
            self.calls += 1
            time.sleep(self.seconds)
            if self.fail_first and self.calls == 1:
                raise RuntimeError("model blew up")
        finally:
            self._running.release()


def test_ticks_during_a_call_collapse_into_one_call_after_it():
    step = SlowStep(0.2)
    thread = ModelThread(step, on_error=lambda error: None, name="test")
    thread.tick()
    time.sleep(0.05)
    for _ in range(5):  # all while the first call runs
        thread.tick()
    time.sleep(0.6)
    thread.stop()
    assert (step.calls, step.overlaps) == (2, 0)


def test_a_failing_call_is_reported_and_the_loop_goes_on():
    step, errors = SlowStep(0.0, fail_first=True), []
    thread = ModelThread(step, on_error=errors.append, name="test")
    thread.tick()
    time.sleep(0.1)
    thread.tick()
    time.sleep(0.1)
    thread.stop()
    assert step.calls == 2
    assert [str(e) for e in errors] == ["model blew up"]


def test_stop_lets_the_running_call_finish_and_nothing_runs_after():
    step = SlowStep(0.3)
    thread = ModelThread(step, on_error=lambda error: None, name="test")
    thread.tick()
    time.sleep(0.05)
    thread.stop()
    assert step.calls == 1 and not step._running.locked()
    thread.tick()
    time.sleep(0.05)
    assert step.calls == 1


def test_the_executor_keeps_taking_messages_while_the_model_is_slow():
    context = Context()
    rclpy.init(context=context)
    node = ModelNode("model_thread_probe", context=context)
    received = []
    node.create_subscription(JointState, "/model_thread_probe", received.append, 100)
    publisher = node.create_publisher(JointState, "/model_thread_probe", 100)
    step = SlowStep(0.5)
    node.start_model_thread(0.1, step, "probe")
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    wall_start = time.monotonic()
    sent, next_send = 0, wall_start
    try:
        while time.monotonic() - wall_start < 2.0:
            if time.monotonic() >= next_send:  # joint states at 50 Hz
                publisher.publish(JointState())
                sent, next_send = sent + 1, next_send + 0.02
            executor.spin_once(timeout_sec=0.005)
    finally:
        executor.shutdown()
        node.destroy_node()  # stops the model thread
        rclpy.try_shutdown(context=context)

    assert step.calls >= 3 and step.overlaps == 0 and not step._running.locked()
    assert len(received) >= sent - 2  # taken while the model slept, not after
