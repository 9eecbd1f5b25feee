"""A kinematic simulated arm with a top-down camera, free of ROS.

Joint positions follow the commanded trajectory (JTC semantics, see
`video2act_core.trajectory`) through a first-order lag, as a position
controlled servo does, within a real arm's limits: joint stops, and
velocity and acceleration limits a little above the policy's envelope
(`HardwareLimits`); steps where the arm could not follow its command are
counted. The overhead camera renders the arm's links and a target block;
a second, wrist camera sees the table around the gripper tip, magnified
(`CAMERAS`: the params' image_topic, then its extra_camera_topics). Two tasks
(`TASKS`): `reach`, the gripper tip reaches a still block; `track`, the
block slides along an arc and the tip must stay on it for `TRACK_HOLD_S`:
aiming where the block is now lags behind it, so a policy has to see
which way and how fast it moves (the motion stream's job). Scenes
(`SCENES`, the paper's generalisation splits) change what the camera sees,
not the task: dimmer, warmer light; a block of another colour; a
textured table of another colour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from video2act_core.camera_pose import CameraPose
from video2act_core.control import JointLimits
from video2act_core.params import SIM_SCENES, SimArmParams
from video2act_core.trajectory import ControllerSet, Trajectory

LINK_LENGTHS = (0.35, 0.3, 0.15)  # upper arm, forearm, wrist (fraction of the view)
SUCCESS_RADIUS = 0.06
TARGET_HALF_SIZE = 0.05
HOME = np.array([0.0, -0.6, 1.2, 0.4, 0.0, 0.2])
START_SPREAD = np.array([1.0, 0.25, 0.3, 0.2, 0.5, 0.2])  # +- around HOME, rad
# View-plane units per image size: the arm's full reach (0.8) and every
# target (|x| <= 0.65) stay in frame.
VIEW_SCALE = 0.7
TASKS = ("reach", "track")
SCENES = SIM_SCENES
TIME_LIMIT_S = 4.0
TABLE_COLOUR = (70, 80, 90)
TARGET_COLOUR = (200, 40, 40)
# The splits' changes.
LIGHTING_GAIN = np.array([0.75, 0.65, 0.5])
OTHER_TARGET_COLOUR = (210, 130, 30)
OTHER_TABLE_COLOURS = ((115, 100, 70), (95, 85, 60))  # a checkerboard
# The tracked block: angular speed about the base (rad/s), the arc it stays
# on (it turns back at the ends), and how long the tip must stay on it.
TRACK_SPEED = (0.5, 0.7)
TRACK_ARC = 1.2
TRACK_HOLD_S = 0.5
# The expert aims this far ahead of the block: its own and the servos' lag.
TRACK_LEAD_S = 0.35
# The top-down camera above the centre of its view, optical axis down
# (optical frame: x right, y down the image, z forward): in view units.
CAMERA_HEIGHT = 1.0
CAMERA_ROTATION_XYZW = (1.0, 0.0, 0.0, 0.0)  # half a turn about the base's x axis
CAMERAS = ("overhead", "wrist")
WRIST_ZOOM = 3.0  # the wrist camera's magnification over the overhead view


@dataclass
class SlidingTarget:
    """The track task's block: it slides along an arc about the arm's base
    at a constant angular speed and turns back at the arc's ends."""

    radius: float
    angle: float  # about the base, 0 straight ahead (rad)
    speed: float  # rad/s
    arc: float  # |angle| stays within this

    def after(self, seconds: float) -> tuple[float, float]:
        """(angle, speed) `seconds` from now."""
        angle, speed = self.angle + self.speed * seconds, self.speed
        while abs(angle) > self.arc:
            angle = np.sign(angle) * 2 * self.arc - angle
            speed = -speed
        return angle, speed

    def step(self, dt: float) -> None:
        self.angle, self.speed = self.after(dt)


@dataclass
class ArmState:
    positions: np.ndarray
    velocities: np.ndarray


@dataclass(frozen=True)
class HardwareLimits:
    """What the arm's hardware allows, per joint (+-inf where unlimited)."""

    lower: np.ndarray
    upper: np.ndarray
    max_velocity: np.ndarray
    max_acceleration: np.ndarray

    @classmethod
    def from_params(cls, sim: SimArmParams) -> HardwareLimits:
        """The joint limits the policy reads too, velocities with the hardware margin."""
        joints = JointLimits.from_lists(
            sim.joint_names, sim.joint_lower_limits, sim.joint_upper_limits, sim.max_joint_velocity
        )
        acceleration = (
            np.asarray(sim.max_joint_acceleration, dtype=np.float64)
            if sim.max_joint_acceleration
            else np.full(len(sim.joint_names), np.inf)
        )
        return cls(joints.lower, joints.upper, joints.max_velocity * (1.0 + sim.hardware_limit_margin), acceleration)


class Servos:
    """Moves joints towards a desired position within the hardware limits,
    counting the steps where a limit held them back."""

    def __init__(self, limits: HardwareLimits | None, joints: int):
        self.limits = limits or HardwareLimits(*(np.full(joints, bound) for bound in (-np.inf, np.inf, np.inf, np.inf)))
        self.limited_steps = 0
        self.peak_speed_ratio = 0.0  # highest |velocity| / max_velocity seen

    def move(self, state: ArmState, desired: np.ndarray, dt: float) -> ArmState:
        wanted = (desired - state.positions) / dt
        velocity = np.clip(wanted, -self.limits.max_velocity, self.limits.max_velocity)
        change = self.limits.max_acceleration * dt
        velocity = np.clip(velocity, state.velocities - change, state.velocities + change)
        positions = np.clip(state.positions + velocity * dt, self.limits.lower, self.limits.upper)
        velocity = (positions - state.positions) / dt
        if np.any(np.abs(velocity - wanted) > 1e-9):
            self.limited_steps += 1
        self.peak_speed_ratio = max(
            self.peak_speed_ratio, float(np.max(np.abs(velocity) * (1.0 + 1e-12) / self.limits.max_velocity))
        )
        return ArmState(positions, velocity)


class SimArm(Protocol):
    """What the sim node, the episode loop and the expert need of a backend."""

    time_s: float
    servos: Servos
    moving_target: bool  # the goal moves
    time_limit_s: float  # an episode of its task fails after this long

    @property
    def state(self) -> ArmState: ...

    def command(self, trajectory: Trajectory, joints: tuple[int, ...] | None = None) -> None:
        """Hand `trajectory` to the controller of `joints` (all when None)."""

    def step(self, dt: float) -> None: ...

    def distance(self) -> float: ...

    def success(self) -> bool: ...

    def expert_goal(self) -> np.ndarray:
        """The scripted expert's next joint goal, read from the simulation."""

    def object_position(self) -> np.ndarray:
        """(x, y) in m on the table plane of what the task is about (the
        target square, the block): what a probe asks features to locate."""

    # The cameras it renders; the first is the video camera (image_topic).
    cameras: tuple[str, ...]

    def render(self, height: int, width: int, camera: int = 0) -> np.ndarray:
        """(H, W, 3) uint8 RGB from camera `camera` (an index into `cameras`)."""

    def camera_pose(self, base_frame: str, camera_frame: str) -> CameraPose: ...

    def close(self) -> None:
        """Release what rendering holds (a GL context)."""


class KinematicArm:
    """Six joints: pan, shoulder lift, elbow, wrist flex, wrist roll, gripper.

    Seen from above, pan turns the whole chain and the three flex joints set
    its planar reach; wrist roll only turns the gripper, the gripper opens.
    """

    cameras = CAMERAS
    time_limit_s = TIME_LIMIT_S

    def __init__(
        self,
        joints: int = 6,
        seed: int = 0,
        time_constant_s: float = 0.05,
        hardware: HardwareLimits | None = None,
        task: str = "reach",
        scene: str = "original",
    ):
        if joints != 6:
            raise ValueError("the kinematic arm models the 6 joints of an SO-101-like arm")
        if task not in TASKS:
            raise ValueError(f"unknown task '{task}' for the kinematic arm ({', '.join(TASKS)})")
        if scene not in SCENES:
            raise ValueError(f"unknown scene '{scene}' ({', '.join(SCENES)})")
        self.task, self.scene = task, scene
        self.time_constant_s = time_constant_s
        self.rng = np.random.default_rng(seed)
        self.servos = Servos(hardware, joints)
        self.reset()

    def reset(self) -> None:
        radius, angle = self.rng.uniform(0.35, 0.7), self.rng.uniform(-1.2, 1.2)
        self.target = np.array([radius * np.sin(angle), radius * np.cos(angle)])
        # A random start pose: with one fixed start, demonstrations all leave
        # it monotonically towards the target, so the joint state alone gives
        # the direction away and policies learn to copy their own motion.
        start = HOME + self.rng.uniform(-1.0, 1.0, 6) * START_SPREAD
        self.state = ArmState(np.clip(start, self.servos.limits.lower, self.servos.limits.upper), np.zeros(6))
        self.tracker = ControllerSet(self.state.positions)
        self.time_s = 0.0
        # Drawn after the reach task's draws: a seed gives both tasks the
        # same start pose and block.
        self.slide = None
        if self.task == "track":
            speed = self.rng.choice([-1.0, 1.0]) * self.rng.uniform(*TRACK_SPEED)
            self.slide = SlidingTarget(radius, angle, speed, TRACK_ARC)
        self.on_target_s = 0.0

    @property
    def moving_target(self) -> bool:
        return self.slide is not None and self.slide.speed != 0.0

    def _on_arc(self, angle: float) -> np.ndarray:
        return self.slide.radius * np.array([np.sin(angle), np.cos(angle)])

    def command(self, trajectory: Trajectory, joints: tuple[int, ...] | None = None) -> None:
        self.tracker.command(trajectory, self.time_s, joints)

    def step(self, dt: float) -> None:
        self.time_s += dt
        reference = self.tracker.reference(self.time_s)
        alpha = 1.0 - np.exp(-dt / self.time_constant_s)
        self.state = self.servos.move(self.state, self.state.positions + alpha * (reference - self.state.positions), dt)
        if self.moving_target:
            self.slide.step(dt)
            self.target = self._on_arc(self.slide.angle)
        self.on_target_s = self.on_target_s + dt if self.distance() < SUCCESS_RADIUS else 0.0

    def joint_points(self) -> np.ndarray:
        """(4, 2) base, elbow, wrist and tip positions in the view plane."""
        pan, lift, elbow, wrist = self.state.positions[:4]
        # Planar reach of the chain projected onto the table plane.
        angles = np.cumsum([lift + np.pi / 2, elbow, wrist])
        reach = np.cumsum([length * np.sin(a) for length, a in zip(LINK_LENGTHS, angles)])
        direction = np.array([np.sin(pan), np.cos(pan)])
        return np.vstack([np.zeros(2), reach[:, None] * direction[None]])

    def tip(self) -> np.ndarray:
        return self.joint_points()[-1]

    def object_position(self) -> np.ndarray:
        return self.target.copy()

    def distance(self) -> float:
        """From the gripper tip to the target."""
        return float(np.linalg.norm(self.tip() - self.target))

    def success(self) -> bool:
        if self.task == "track":
            return self.on_target_s >= TRACK_HOLD_S - 1e-9
        return self.distance() < SUCCESS_RADIUS

    def expert_goal(self) -> np.ndarray:
        """Joint positions whose tip is at the target (a moving one
        `TRACK_LEAD_S` ahead, where the arm will meet it), gripper shut. The
        redundant flex joints take the solution nearest HOME, not the current
        pose, so the goal depends on the target alone: what a policy sees in
        the image. Wrist roll keeps its current value (it does not move the
        tip)."""
        lift, elbow = np.meshgrid(np.linspace(-1.6, 0.6, 221), np.linspace(-0.2, 2.6, 281), indexing="ij")
        wrist = np.full_like(lift, HOME[3])
        a1 = lift + np.pi / 2
        reach = (
            LINK_LENGTHS[0] * np.sin(a1)
            + LINK_LENGTHS[1] * np.sin(a1 + elbow)
            + LINK_LENGTHS[2] * np.sin(a1 + elbow + wrist)
        )
        target = self._on_arc(self.slide.after(TRACK_LEAD_S)[0]) if self.moving_target else self.target
        cost = (reach - np.linalg.norm(target)) ** 2 + 1e-3 * ((lift - HOME[1]) ** 2 + (elbow - HOME[2]) ** 2)
        best = np.unravel_index(np.argmin(cost), cost.shape)
        goal = self.state.positions.copy()
        goal[0] = np.arctan2(target[0], target[1])
        goal[1], goal[2], goal[3] = lift[best], elbow[best], HOME[3]
        goal[5] = 0.0
        return goal

    def camera_pose(self, base_frame: str, camera_frame: str) -> CameraPose:
        return CameraPose(base_frame, camera_frame, (0.0, 0.5 / VIEW_SCALE, CAMERA_HEIGHT), CAMERA_ROTATION_XYZW)

    def render(self, height: int, width: int, camera: int = 0) -> np.ndarray:
        """(H, W, 3) uint8 top-down view: overhead, the base at the bottom
        centre; or the wrist camera's, the tip at the centre, `WRIST_ZOOM`
        times closer."""
        image = np.empty((height, width, 3), dtype=np.uint8)
        rows, cols = np.mgrid[0:height, 0:width]
        if self.scene == "background":
            square = max(1, height // 6)
            checker = ((rows // square + cols // square) % 2).astype(bool)
            image[:] = OTHER_TABLE_COLOURS[0]
            image[checker] = OTHER_TABLE_COLOURS[1]
        else:
            image[:] = TABLE_COLOUR

        if camera not in range(len(CAMERAS)):
            raise ValueError(f"the kinematic arm has cameras {CAMERAS}, no camera {camera}")
        # Where the view centre lies in the table plane (row and column
        # fractions of the image) and how many view units one image spans.
        wrist = CAMERAS[camera] == "wrist"
        zoom = WRIST_ZOOM if wrist else 1.0
        centre, anchor = (self.tip(), (0.5, 0.5)) if wrist else (np.zeros(2), (1.0, 0.5))

        def to_pixels(point: np.ndarray) -> tuple[float, float]:
            # One scale for both axes so the table plane is not distorted.
            offset = (point - centre) * VIEW_SCALE * zoom
            return (anchor[0] - offset[1]) * (height - 1), (anchor[1] + offset[0]) * (width - 1)

        def disk(point: np.ndarray, radius_px: float, colour: tuple[int, int, int]) -> None:
            r, c = to_pixels(point)
            image[(rows - r) ** 2 + (cols - c) ** 2 <= (radius_px * zoom) ** 2] = colour

        # Drawn larger than the success radius so it spans a few pixels at
        # the model's 64 px input.
        half = TARGET_HALF_SIZE
        r0, c0 = to_pixels(self.target + [-half, half])
        r1, c1 = to_pixels(self.target + [half, -half])
        image[max(int(r0), 0) : max(int(r1) + 1, 0), max(int(c0), 0) : max(int(c1) + 1, 0)] = (
            OTHER_TARGET_COLOUR if self.scene == "object" else TARGET_COLOUR
        )
        scale = min(height, width) / 96.0
        points = self.joint_points()
        for start, end in zip(points[:-1], points[1:]):
            for fraction in np.linspace(0.0, 1.0, 12):
                disk(start + fraction * (end - start), 2.5 * scale, (230, 230, 230))
        opening = float(np.clip(self.state.positions[5], 0.0, 1.0))
        disk(points[-1], (2.0 + 3.0 * opening) * scale, (40, 200, 60))
        if self.scene == "lighting":
            return (image * LIGHTING_GAIN).astype(np.uint8)
        return image

    def close(self) -> None:
        pass  # renders with numpy: nothing to release
