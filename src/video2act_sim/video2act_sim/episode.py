"""Closed-loop episodes on the simulated arm in sim time, without ROS: the
scripted expert records demonstrations through this loop and the offline
evaluation runs policies through it.

Physics steps at the joint-state rate, the cameras render at their rate
(the video camera and each of `extra_camera_topics`), and a
controller is asked for a trajectory every tick (an action period, or a
policy node's rate). The trajectory
reaches the arm once the compute it took has passed in sim time, stamped
with the time it was planned at, and the arm tracks it with
JointTrajectoryController semantics (what elapsed meanwhile is skipped)
within its hardware limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from video2act_core.control.smoothness import SetpointLog
from video2act_core.data.frames import CameraInputs, ViewSpec
from video2act_core.data.rosbag import EpisodeRecorder
from video2act_core.params import SimArmParams
from video2act_core.trajectory import Trajectory, TrajectoryRejected
from video2act_sim.arm import HardwareLimits, SimArm
from video2act_sim.arms import make_arm
from video2act_sim.camera import camera_effects, camera_noise_streams

# Sim time starts here rather than at 0: a zero stamp means "now" to a
# trajectory controller and "unset" to many drivers.
EPISODE_START_NS = 1_000_000_000


@dataclass
class Command:
    points: np.ndarray  # (P, J) trajectory positions
    # Compute time it took: the arm gets it this much later in sim time, as
    # a robot's controller would, waiting for the model.
    latency_s: float = 0.0
    # As on a JointTrajectory: None, the points follow every action period
    # from the step's time.
    stamp_s: float | None = None
    times_s: np.ndarray | None = None
    velocities: np.ndarray | None = None
    hold: bool = False  # a stop, not a chunk from the policy


class Controller(Protocol):
    def reset(self, arm: SimArm) -> None: ...

    def act(self, time_s: float, joint_positions: np.ndarray, cameras: CameraInputs) -> Command | None:
        """A command for the arm, or None to leave it be."""


@dataclass
class EpisodeResult:
    seed: int
    success: bool
    steps: int  # action periods until success (or the time limit)
    final_distance: float
    hold_s: float  # ticks without a new chunk (holding, waiting for inputs, or System 1 still busy), in s
    rejected_commands: int  # commands the arm's controller refused (every point past)
    limited_steps: int  # physics steps where the hardware limits held the arm back
    peak_speed_ratio: float  # highest joint speed over its limit (incl. the hardware margin)
    duration_s: float
    chunks: int  # policy chunks (not holds) that reached the arm's controller
    # Smoothness of the commanded setpoint (what the arm's controller tracks),
    # sampled at the physics rate: chunk seams are where policies jerk.
    seam_position_jump: float  # mean |new command's first point - the running one's setpoint then| (rad)
    seam_velocity_jump: float  # mean |change of setpoint velocity| across a new command's take-over (rad/s)
    setpoint_rms_jerk: float  # rad/s^3
    tracking_rms: float  # measured positions against the setpoint (rad)


def run_episode(
    controller: Controller,
    seed: int,
    sim: SimArmParams,
    action_period_s: float,
    num_frames: int,
    max_duration_s: float | None = None,
    settle_s: float = 0.3,
    recorder: EpisodeRecorder | None = None,
    tick_period_s: float | None = None,
    views: ViewSpec | None = None,
) -> EpisodeResult:
    """One episode; ends `settle_s` after first success or at the time limit
    (`max_duration_s`, default the arm's for its task).
    The controller is asked every `tick_period_s` (default: every action
    period, as demonstrations are recorded; a policy node ticks at its rate_hz)
    and reads `num_frames` clips and, with `views`, image-token frames."""
    arm = make_arm(sim.backend, len(sim.joint_names), seed, HardwareLimits.from_params(sim), sim.task, sim.scene)
    try:
        camera_rngs = camera_noise_streams(seed, arm, sim)
        if views and views.cameras > len(camera_rngs):
            raise ValueError(
                f"image_topic and extra_camera_topics name {len(camera_rngs)} camera(s), the policy "
                f"reads {views.cameras}"
            )
        inputs = CameraInputs(num_frames, views=views, names=[sim.image_topic, *sim.extra_camera_topics])
        return _run(
            arm,
            controller,
            seed,
            sim,
            action_period_s,
            inputs,
            camera_rngs,
            arm.time_limit_s if max_duration_s is None else max_duration_s,
            settle_s,
            recorder,
            tick_period_s or action_period_s,
        )
    finally:
        arm.close()


def _start_recording(recorder: EpisodeRecorder, arm: SimArm, sim: SimArmParams) -> None:
    """The state the first command is decided on, as a robot's bag has it."""
    recorder.clock(EPISODE_START_NS)
    recorder.camera_pose(EPISODE_START_NS, arm.camera_pose(sim.base_frame, sim.camera_frame))
    if recorder.topics.instruction:
        recorder.instruction(EPISODE_START_NS, sim.task_instruction)
    recorder.joint_state(EPISODE_START_NS, arm.state.positions, arm.state.velocities)


def _capture(
    arm: SimArm,
    sim: SimArmParams,
    inputs: CameraInputs,
    camera_rngs: list[np.random.Generator],
    recorder: EpisodeRecorder | None,
    now_ns: int,
) -> None:
    """One frame of every camera into the controller's inputs (and the bag)."""
    for camera, rng in enumerate(camera_rngs):
        frame = camera_effects(
            arm.render(sim.image_height, sim.image_width, camera), rng, sim.camera_noise_std, sim.camera_flicker
        )
        inputs.push(camera, now_ns, frame)
        if recorder:
            recorder.image(now_ns, frame, camera)


def _decide(
    controller: Controller,
    arm: SimArm,
    inputs: CameraInputs,
    action_period_s: float,
    recorder: EpisodeRecorder | None,
    now_ns: int,
    in_transit: list,
) -> bool:
    """The controller's command this tick, sent on its way (it arrives after
    its latency); whether the tick left the arm without a fresh chunk."""
    command = controller.act(arm.time_s, arm.state.positions.copy(), inputs)
    if command is None:
        return True
    times = command.times_s if command.times_s is not None else action_period_s * np.arange(1, len(command.points) + 1)
    stamp = arm.time_s if command.stamp_s is None else command.stamp_s
    trajectory = Trajectory(stamp, times, command.points, command.velocities)
    in_transit.append((arm.time_s + command.latency_s, trajectory, command.hold))
    if recorder:
        recorder.command(now_ns, command.points, action_period_s)
    return command.hold


def _deliver(arm: SimArm, in_transit: list, setpoints: SetpointLog) -> int:
    """The commands that have arrived, to the arm's controller; how many it refused."""
    rejected = 0
    for item in [item for item in in_transit if item[0] <= arm.time_s + 1e-9]:
        in_transit.remove(item)
        _, trajectory, hold = item
        try:
            arm.command(trajectory)
        except TrajectoryRejected:
            rejected += 1
            continue
        setpoints.command(arm.time_s, trajectory, hold=hold)
    return rejected


def _run(
    arm: SimArm,
    controller: Controller,
    seed: int,
    sim: SimArmParams,
    action_period_s: float,
    inputs: CameraInputs,
    camera_rngs: list[np.random.Generator],
    max_duration_s: float,
    settle_s: float,
    recorder: EpisodeRecorder | None,
    tick_period_s: float,
) -> EpisodeResult:
    arm.time_s = EPISODE_START_NS * 1e-9
    controller.reset(arm)
    physics_dt = 1.0 / sim.joint_state_rate_hz
    camera_period, next_camera, next_action = 1.0 / sim.camera_rate_hz, 0.0, 0.0
    elapsed, succeeded_at = 0.0, None
    in_transit: list[tuple[float, Trajectory, bool]] = []  # (arrival time, trajectory, is a hold)
    idle_ticks = rejected = 0
    setpoints = SetpointLog(physics_dt)
    setpoints.state(arm.time_s, arm.state.positions)
    if recorder:
        _start_recording(recorder, arm, sim)
    while elapsed < max_duration_s and (succeeded_at is None or elapsed < succeeded_at + settle_s):
        now_ns = EPISODE_START_NS + int(round(elapsed * 1e9))
        if elapsed >= next_camera - 1e-9:
            _capture(arm, sim, inputs, camera_rngs, recorder, now_ns)
            next_camera += camera_period
        if elapsed >= next_action - 1e-9:
            idle_ticks += _decide(controller, arm, inputs, action_period_s, recorder, now_ns, in_transit)
            next_action += tick_period_s
        rejected += _deliver(arm, in_transit, setpoints)
        arm.step(physics_dt)
        setpoints.state(arm.time_s, arm.state.positions)
        elapsed += physics_dt
        success = arm.success()
        if success and succeeded_at is None:
            succeeded_at = elapsed
        if recorder:
            stamp = EPISODE_START_NS + int(round(elapsed * 1e9))
            recorder.clock(stamp)
            recorder.joint_state(stamp, arm.state.positions, arm.state.velocities)
            recorder.success(stamp, success)
    steps_to_success = int(np.ceil((elapsed if succeeded_at is None else succeeded_at) / action_period_s - 1e-9))
    smooth = setpoints.summary()
    return EpisodeResult(
        seed,
        succeeded_at is not None,
        steps_to_success,
        arm.distance(),
        idle_ticks * tick_period_s,
        rejected,
        arm.servos.limited_steps,
        arm.servos.peak_speed_ratio,
        elapsed,
        smooth.commands,
        smooth.seam_position_jump,
        smooth.seam_velocity_jump,
        smooth.setpoint_rms_jerk,
        smooth.tracking_rms,
    )
