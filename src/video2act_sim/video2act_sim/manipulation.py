"""Manipulation tasks on the MuJoCo SO-101 scene, free of MuJoCo itself:
where blocks and goals are drawn, when a task is done, and the scripted
expert's phases. `mujoco_arm.MujocoArm` adds the bodies, runs the physics
and turns the expert's Cartesian targets into joints (top-down inverse
kinematics on the point between the jaw pads).

Tasks (`MANIPULATION_TASKS`):
- `push`: slide the block onto a green goal disc with the shut gripper
  held vertical; done when its centre is within `GOAL_RADIUS` of the
  disc's.
- `pick_place`: pick the block up and put it down on the disc; done when it
  was carried (risen `MIN_CARRY_RISE`) and rests within `GOAL_RADIUS` of the
  disc, slower than `MAX_REST_SPEED`, the jaw open past half its range.
- `stack` (two stages: grasp, then place with centimetre accuracy on a
  moving support): pick the block up and put it on a second, teal block;
  done when carried and resting on the teal block's top, centres within
  `STACK_RADIUS`, jaw open.
Each has a distractor: a white block that no task asks about, placed
apart from the others. Push and pick-and-place thresholds follow
lerobot-env-so101's pick-and-place task.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

MANIPULATION_TASKS = ("push", "pick_place", "stack")
BLOCK_HALF = 0.02  # the scene's cube: 4 cm
GOAL_RADIUS = 0.03
STACK_RADIUS = 0.02
MIN_CARRY_RISE = 0.03
MAX_REST_SPEED = 0.01  # m/s
# Where the gripper can stand vertical with the elbow inside the configured
# limits (elbow_flex >= -0.2 rad): 0.14-0.24 m from the base, lower than
# about 8 cm.
WORKSPACE_X, WORKSPACE_Y = (0.14, 0.24), (-0.1, 0.1)
MAX_REACH = 0.24
MIN_SEPARATION = 0.08  # between the block and its goal (or support)
# A distractor block lies anywhere in view, this far from the block, the
# goal and where a push starts.
DISTRACTOR_X, DISTRACTOR_Y = (0.1, 0.3), (-0.15, 0.15)
DISTRACTOR_CLEARANCE = 0.07
TIME_LIMIT_S = {"push": 8.0, "pick_place": 10.0, "stack": 10.0}
# The expert drives the servos harder than the reach tasks' gentle approach
# (ScriptedReacher's time constant): phases end on millimetres.
EXPERT_TIME_CONSTANT_S = 0.1

# Jaw angles (rad): shut, and open wide enough to straddle the block.
JAW_CLOSED, JAW_OPEN = 0.0, 1.0
# The controlled point lies between the pads at this jaw angle.
GRASP_JAW_ANGLE = 0.46
HOVER_HEIGHT = 0.06  # above the table, of the controlled point
GRASP_HEIGHT = 0.015
# Carrying: the held block's underside 2 cm above a support block's top.
LIFT_HEIGHT = 0.075
RELEASE_CLEARANCE = 0.004
# Push: the pads this far behind the block's centre before pushing, and
# this low; a pusher off the line by more than PUSH_LATERAL_TOLERANCE
# backs off and lines up again.
PUSH_STANDOFF = 0.045
PUSH_HEIGHT = 0.015
PUSH_LATERAL_TOLERANCE = 0.015
PUSH_LEAD = 0.02  # the finger aims this far ahead of where it touches the block

# A phase ends when the controlled point is this close to its target, or
# after PHASE_TIMEOUT expert decisions (the arm may stop a little short).
POSITION_TOLERANCE = 0.006
PHASE_TIMEOUT = 25
CLOSE_DECISIONS, OPEN_DECISIONS = 6, 5


@dataclass(frozen=True)
class Layout:
    block: np.ndarray  # (x, y) of the block to move
    goal: np.ndarray  # (x, y) of the goal disc, or of the support block
    distractor: np.ndarray  # (x, y) of a block no task asks about


def reachable(xy: np.ndarray) -> bool:
    return WORKSPACE_X[0] - 0.01 <= xy[0] and np.linalg.norm(xy) <= MAX_REACH


def draw_layout(rng: np.random.Generator, push: bool = False) -> Layout:
    """The block and its goal apart by at least MIN_SEPARATION, both where
    the gripper reaches vertically (for a push, also the spot behind the
    block it pushes from)."""
    while True:
        block, goal = (np.array([rng.uniform(*WORKSPACE_X), rng.uniform(*WORKSPACE_Y)]) for _ in range(2))
        behind = block - PUSH_STANDOFF * (goal - block) / max(np.linalg.norm(goal - block), 1e-6)
        if (
            np.linalg.norm(goal - block) >= MIN_SEPARATION
            and reachable(block)
            and reachable(goal)
            and (not push or reachable(behind))
        ):
            break
    # Drawn last, so a seed places the block and goal as without it; in view,
    # clear of both and of the push's approach.
    while True:
        distractor = np.array([rng.uniform(*DISTRACTOR_X), rng.uniform(*DISTRACTOR_Y)])
        if min(np.linalg.norm(distractor - point) for point in (block, goal, behind)) >= DISTRACTOR_CLEARANCE:
            return Layout(block, goal, distractor)


@dataclass
class BlockState:
    position: np.ndarray  # (3,) centre
    speed: float  # m/s


@dataclass(frozen=True)
class ExpertTarget:
    """What the expert asks of the arm: the point between the jaw pads here,
    the jaw at this angle, its closing axis along `jaw_axis` (horizontal)."""

    point: np.ndarray
    jaw: float
    jaw_axis: np.ndarray


class Carried:
    """Whether the block has been lifted off the table in this episode: a
    block pushed along the table to the goal does not count as placed."""

    def __init__(self, start_height: float):
        self.start_height = start_height
        self.lifted = False

    def update(self, block: BlockState) -> None:
        self.lifted |= block.position[2] > self.start_height + MIN_CARRY_RISE


def placed(block: BlockState, goal_centre: np.ndarray, radius: float, jaw_opening: float, carried: Carried) -> bool:
    """At rest on its goal after being carried, released."""
    return (
        carried.lifted
        and float(np.linalg.norm(block.position - goal_centre)) < radius
        and block.speed < MAX_REST_SPEED
        and jaw_opening > 0.5
    )


class Phase(enum.Enum):
    HOVER = enum.auto()
    DESCEND = enum.auto()
    CLOSE = enum.auto()
    LIFT = enum.auto()
    TRAVERSE = enum.auto()
    LOWER = enum.auto()
    OPEN = enum.auto()
    RETREAT = enum.auto()


_JAW = {
    Phase.HOVER: JAW_OPEN,
    Phase.DESCEND: JAW_OPEN,
    Phase.CLOSE: JAW_CLOSED,
    Phase.LIFT: JAW_CLOSED,
    Phase.TRAVERSE: JAW_CLOSED,
    Phase.LOWER: JAW_CLOSED,
    Phase.OPEN: JAW_OPEN,
    Phase.RETREAT: JAW_OPEN,
}
_TIMED = {Phase.CLOSE: CLOSE_DECISIONS, Phase.OPEN: OPEN_DECISIONS}


class PickPlaceExpert:
    """Hover over the block, descend, close, lift, carry over the goal,
    lower, open, retreat. Carrying and lowering aim the block (not the jaws)
    at the goal, so a block that slipped in the jaws is still placed where
    it should be. The jaws close across the world's y axis."""

    JAW_AXIS = np.array([0.0, 1.0, 0.0])

    def __init__(self, table_height: float = 0.0):
        self.table = table_height
        self.phase, self.decisions = Phase.HOVER, 0

    def target(self, grasp: np.ndarray, block: BlockState, goal_centre: np.ndarray) -> ExpertTarget:
        """The next target from the pads' point, the block and where the
        block's centre should end up; advances the phase once its target is
        met (call once per decision)."""
        point = self._point(self.phase, grasp, block.position, goal_centre)
        timed = _TIMED.get(self.phase)
        done = (
            self.decisions + 1 >= timed
            if timed
            else np.linalg.norm(point - grasp) < POSITION_TOLERANCE or self.decisions + 1 >= PHASE_TIMEOUT
        )
        self.decisions += 1
        if done and self.phase is not Phase.RETREAT:
            self.phase, self.decisions = list(Phase)[list(Phase).index(self.phase) + 1], 0
            point = self._point(self.phase, grasp, block.position, goal_centre)
        return ExpertTarget(point, _JAW[self.phase], self.JAW_AXIS)

    def _point(self, phase: Phase, grasp: np.ndarray, block: np.ndarray, goal: np.ndarray) -> np.ndarray:
        lift = self.table + LIFT_HEIGHT
        if phase is Phase.HOVER:
            return np.array([block[0], block[1], self.table + HOVER_HEIGHT])
        if phase in (Phase.DESCEND, Phase.CLOSE):
            return np.array([block[0], block[1], self.table + GRASP_HEIGHT])
        if phase in (Phase.LIFT, Phase.RETREAT):
            return np.array([grasp[0], grasp[1], lift])
        # Where the pads must be for the block's centre to be at the goal.
        carry = grasp + goal - block
        if phase is Phase.TRAVERSE:
            return np.array([carry[0], carry[1], lift])
        return carry + [0.0, 0.0, RELEASE_CLEARANCE]  # lower, then open there


class PushPhase(enum.Enum):
    APPROACH = enum.auto()  # above the spot behind the block
    DESCEND = enum.auto()
    PUSH = enum.auto()
    RISE = enum.auto()  # off the line: up, then line up again


class PushExpert:
    """Line up behind the block on the far side from the goal with the jaw
    shut (a finger), descend, push through the block towards the goal;
    off the line (the block turned or slid sideways) it rises and lines up
    again. The direction is read from the block and the goal every
    decision. It controls the fixed jaw's pad, not the point between the
    pads (`controls_fingertip`)."""

    controls_fingertip = True

    def __init__(self, table_height: float = 0.0):
        self.table = table_height
        self.phase = PushPhase.APPROACH

    def target(self, finger: np.ndarray, block: BlockState, goal_centre: np.ndarray) -> ExpertTarget:
        to_goal = goal_centre[:2] - block.position[:2]
        direction = to_goal / max(np.linalg.norm(to_goal), 1e-6)
        relative = finger[:2] - block.position[:2]
        behind = float(relative @ direction)
        lateral = abs(float(relative @ [-direction[1], direction[0]]))
        standoff = block.position[:2] - PUSH_STANDOFF * direction
        low, high = self.table + PUSH_HEIGHT, self.table + HOVER_HEIGHT
        if self.phase is PushPhase.APPROACH and np.linalg.norm(finger[:2] - standoff) < 2 * POSITION_TOLERANCE:
            self.phase = PushPhase.DESCEND
        elif self.phase is PushPhase.DESCEND and finger[2] < low + POSITION_TOLERANCE:
            self.phase = PushPhase.PUSH
        elif self.phase is PushPhase.PUSH and (lateral > PUSH_LATERAL_TOLERANCE or behind > -BLOCK_HALF):
            self.phase = PushPhase.RISE
        elif self.phase is PushPhase.RISE and finger[2] > high - 2 * POSITION_TOLERANCE:
            self.phase = PushPhase.APPROACH
        if self.phase is PushPhase.APPROACH:
            point = [*standoff, high]
        elif self.phase is PushPhase.DESCEND:
            point = [*standoff, low]
        elif self.phase is PushPhase.PUSH:
            # Towards the goal, the push line re-aimed through the block's centre.
            ahead = block.position[:2] - (PUSH_STANDOFF - PUSH_LEAD) * direction
            point = [*ahead, low]
        else:
            point = [finger[0], finger[1], high]
        return ExpertTarget(np.array(point), JAW_CLOSED, np.array([*direction, 0.0]))
