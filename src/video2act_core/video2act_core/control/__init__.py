"""Control: joint handling, limits, the safety envelope, System 1's planner,
the execution strategies that join chunks, and the supervisor that arms and
drives the arm. Free of ROS."""

from video2act_core.control.envelope import JointCommand, SafetyEnvelope, envelope_violations, point_velocities
from video2act_core.control.execution import STRATEGIES, ExecutionStrategy
from video2act_core.control.joints import JointGroups
from video2act_core.control.limits import JointLimits
from video2act_core.control.planner import ChunkPlanner, JointStateSample, LatentsSample, Mode, Plan
from video2act_core.control.supervisor import PolicySupervisor, Step, build_supervisor

__all__ = [
    "STRATEGIES",
    "ChunkPlanner",
    "ExecutionStrategy",
    "JointCommand",
    "JointGroups",
    "JointLimits",
    "JointStateSample",
    "LatentsSample",
    "Mode",
    "Plan",
    "PolicySupervisor",
    "SafetyEnvelope",
    "Step",
    "envelope_violations",
    "build_supervisor",
    "point_velocities",
]
