"""Scripted expert for the simulated arm and the demonstration recorder.

    python -m video2act_sim.expert --out data/demos --episodes 40

The expert knows the target (it reads the simulator state, not pixels),
asks the simulator for the arm's inverse kinematics, and moves there along a smooth
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
from video2act_sim.arm import KinematicArm
from video2act_sim.episode import Command, run_episode


class ScriptedReacher:
    def __init__(self, horizon: int, action_period_s: float, duration_s: float = 2.0):
        self.horizon = horizon
        self.action_period_s = action_period_s
        self.duration_s = duration_s

    def reset(self, arm: KinematicArm) -> None:
        self.start = arm.state.positions.copy()
        self.goal = arm.reach_configuration()
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
    parser.add_argument("--backend", choices=["kinematic", "mujoco_so101"], help="overrides the params file's")
    args = parser.parse_args(argv)

    sim = node_params(SimArmParams, args.params, "video2act_sim_arm",
                      {"backend": args.backend} if args.backend else None)
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
