"""Scripted expert for the simulated arm and the demonstration recorder.

    python -m video2act_sim.expert --out data/demos --episodes 40

The expert knows the target (it reads the simulator state, not pixels),
solves the arm's inverse kinematics, and moves there along a smooth
joint-space path, closing the gripper on arrival. Each episode is written
as a rosbag2 directory with the topics of config/video2act.yaml.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from video2act_core.bags import EpisodeRecorder, EpisodeTopics
from video2act_core.frames import FrameBuffer
from video2act_core.params import PolicyParams, SimArmParams, node_params
from video2act_sim.arm import LINK_LENGTHS, KinematicArm
from video2act_sim.episode import Command, run_episode


def reach_configuration(arm: KinematicArm, target: np.ndarray) -> np.ndarray:
    """Joint positions whose tip is at `target`, nearest the current pose."""
    start = arm.state.positions
    lift, elbow = np.meshgrid(np.linspace(-1.6, 0.6, 221), np.linspace(-0.2, 2.6, 281), indexing="ij")
    wrist = np.full_like(lift, start[3])
    a1 = lift + np.pi / 2
    reach = LINK_LENGTHS[0] * np.sin(a1) + LINK_LENGTHS[1] * np.sin(a1 + elbow) + LINK_LENGTHS[2] * np.sin(a1 + elbow + wrist)
    cost = (reach - np.linalg.norm(target)) ** 2 + 1e-3 * ((lift - start[1]) ** 2 + (elbow - start[2]) ** 2)
    best = np.unravel_index(np.argmin(cost), cost.shape)
    goal = start.copy()
    goal[0] = np.arctan2(target[0], target[1])
    goal[1], goal[2] = lift[best], elbow[best]
    return goal


class ScriptedReacher:
    def __init__(self, horizon: int, action_period_s: float, duration_s: float = 2.0):
        self.horizon = horizon
        self.action_period_s = action_period_s
        self.duration_s = duration_s

    def reset(self, arm: KinematicArm) -> None:
        self.start = arm.state.positions.copy()
        self.goal = reach_configuration(arm, arm.target)
        self.goal[5] = 0.0  # close the gripper
        self.start_time_s = arm.time_s

    def plan_at(self, time_s: float) -> np.ndarray:
        phase = np.clip((time_s - self.start_time_s) / self.duration_s, 0.0, 1.0)
        smooth = phase * phase * (3.0 - 2.0 * phase)
        return self.start + smooth[..., None] * (self.goal - self.start)

    def act(self, time_s: float, joint_positions: np.ndarray, frames: FrameBuffer) -> Command:
        times = time_s + self.action_period_s * np.arange(1, self.horizon + 1)
        return Command(self.plan_at(times))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="directory for one bag per episode")
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--first-seed", type=int, default=1000, help="evaluation uses seeds from 0; keep them apart")
    parser.add_argument("--params", type=Path, default=Path(__file__).resolve().parents[3] / "config" / "video2act.yaml")
    parser.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    parser.add_argument("--horizon", type=int, default=16)
    args = parser.parse_args(argv)

    sim = node_params(SimArmParams, args.params, "video2act_sim_arm")
    policy = node_params(PolicyParams, args.params, "video2act_policy")
    topics = EpisodeTopics(sim.image_topic, sim.joint_states_topic, sim.trajectory_topic, sim.success_topic)
    args.out.mkdir(parents=True, exist_ok=True)
    expert = ScriptedReacher(args.horizon, policy.action_period_s)
    successes = 0
    for index in range(args.episodes):
        seed = args.first_seed + index
        path = args.out / f"episode_{seed:06d}"
        if path.exists():
            raise SystemExit(f"{path} exists; refusing to overwrite recorded data")
        with EpisodeRecorder(path, topics, sim.joint_names, args.storage) as recorder:
            result = run_episode(expert, seed, sim, policy.action_period_s, num_frames=2, recorder=recorder)
        successes += result.success
    print(f"recorded {args.episodes} episodes in {args.out}: expert success {successes}/{args.episodes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
