"""Scripted expert for the simulated arm and the demonstration recorder.

    python -m video2act_sim.expert --out data/demos --episodes 40
    python -m video2act_sim.expert --out data/activity --episodes 500 --wander --image-format png \
        --scenes original lighting object background   # no task, every scene: pretraining videos

The expert knows the target (it reads the simulator state, not pixels),
asks the simulator for its next joint goal (the arm's inverse kinematics
of the target, or of the manipulation task's current phase), and steers
the joints there by state feedback. Each episode is written
as a rosbag2 directory with the topics of config/video2act.yaml.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from video2act_core.data.episode import EpisodeTopics
from video2act_core.data.frames import CameraInputs
from video2act_core.data.rosbag import EpisodeRecorder
from video2act_core.params import SIM_SCENES, SIM_TASKS, PolicyParams, SimArmParams, node_params
from video2act_sim.arm import SimArm
from video2act_sim.episode import Command, run_episode
from video2act_sim.manipulation import EXPERT_TIME_CONSTANT_S, MANIPULATION_TASKS

# Demonstrations are recorded from this seed on; evaluation uses seeds from 0.
FIRST_SEED = 1000


class ScriptedReacher:
    """A state-feedback reacher: every chunk approaches the goal from the
    current joint positions (exponentially, within the velocity limits).

    Its actions depend only on the current state and the target (for a
    moving one, where it will be shortly; for the manipulation tasks, on
    their phase, which the jaw and the block show), not on the
    time since the start or the start pose, so a policy that sees the target
    in the image and the state on /joint_states can reproduce them, also
    from latents a few steps old.
    """

    def __init__(
        self, horizon: int, action_period_s: float, max_velocity: np.ndarray | None = None, time_constant_s: float = 0.3
    ):
        self.horizon = horizon
        self.action_period_s = action_period_s
        self.max_step = None if max_velocity is None else np.asarray(max_velocity) * action_period_s
        self.gain = 1.0 - np.exp(-action_period_s / time_constant_s)

    def reset(self, arm: SimArm) -> None:
        self.arm = arm

    def act(self, time_s: float, joint_positions: np.ndarray, cameras: CameraInputs) -> Command:
        self.goal = self.next_goal(time_s)
        points, position = [], joint_positions.copy()
        for _ in range(self.horizon):
            step = self.gain * (self.goal - position)
            if self.max_step is not None:
                step = np.clip(step, -self.max_step, self.max_step)
            position = position + step
            points.append(position)
        return Command(np.stack(points))

    def next_goal(self, time_s: float) -> np.ndarray:
        return self.arm.expert_goal()


class Wanderer(ScriptedReacher):
    """Activity without a task, for videos a video model pretrains on: the
    arm steered as the expert steers it, toward a goal that changes every
    0.5-1.5 s: joints drawn within the limits (the arm sweeping its
    workspace, knocking into what stands there), or, `expert_share` of the
    time, the task expert's own goal with noise on it (blocks approached,
    pushed, lifted, stacked, dropped where the noise makes it miss)."""

    def __init__(self, *args, lower: np.ndarray, upper: np.ndarray, seed: int, expert_share: float = 0.5, **kwargs):
        super().__init__(*args, **kwargs)
        self.lower, self.upper, self.expert_share = np.asarray(lower), np.asarray(upper), expert_share
        self.rng = np.random.default_rng(seed)

    def reset(self, arm: SimArm) -> None:
        super().reset(arm)
        self.change_at_s, self.follows_expert, self.drawn = 0.0, False, self.lower

    def next_goal(self, time_s: float) -> np.ndarray:
        if time_s >= self.change_at_s:
            self.change_at_s = time_s + self.rng.uniform(0.5, 1.5)
            self.follows_expert = self.rng.random() < self.expert_share
            self.drawn = self.rng.uniform(self.lower, self.upper)
            self.noise = self.rng.normal(0.0, 0.15, self.lower.shape)
        # The expert's goal is asked for every time: its phases advance as it is.
        goal = self.arm.expert_goal() + self.noise if self.follows_expert else self.drawn
        return np.clip(goal, self.lower, self.upper)


def steering(policy: PolicyParams, task: str, horizon: int) -> tuple:
    """A ScriptedReacher's arguments: within the policy node's velocity
    envelope, with a margin; the manipulation tasks' time constant."""
    time_constant_s = EXPERT_TIME_CONSTANT_S if task in MANIPULATION_TASKS else 0.3
    return horizon, policy.action_period_s, 0.8 * np.asarray(policy.max_joint_velocity), time_constant_s


def wanderer(policy: PolicyParams, task: str, horizon: int, seed: int) -> Wanderer:
    """The recorder's wanderer: steered as the expert is, within the policy's joint limits."""
    limits = {"lower": policy.joint_lower_limits, "upper": policy.joint_upper_limits}
    return Wanderer(*steering(policy, task, horizon), **limits, seed=seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="directory for one bag per episode")
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument(
        "--first-seed", type=int, default=FIRST_SEED, help="evaluation uses seeds from 0; keep them apart"
    )
    parser.add_argument(
        "--params", type=Path, default=Path(__file__).resolve().parents[3] / "config" / "video2act.yaml"
    )
    parser.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    parser.add_argument(
        "--image-format",
        choices=["raw", "png", "jpeg"],
        default="raw",
        help="raw rgb8 Images, or CompressedImage on <topic>/compressed (png: lossless, a fraction of the size)",
    )
    parser.add_argument("--horizon", type=int, default=16)
    parser.add_argument("--backend", choices=["kinematic", "mujoco_so101"], help="overrides the params file's")
    parser.add_argument("--task", choices=SIM_TASKS, help="overrides the params file's")
    parser.add_argument("--instruction", help="the task instruction to record (overrides the params file's)")
    parser.add_argument(
        "--scenes",
        nargs="+",
        choices=SIM_SCENES,
        help="episodes cycle through these scenes (default: the params file's scene)",
    )
    parser.add_argument(
        "--wander",
        action="store_true",
        help="record activity without a task (Wanderer), videos for pretraining the video model",
    )
    args = parser.parse_args(argv)

    overrides = {
        name: value
        for name, value in (("backend", args.backend), ("task", args.task), ("task_instruction", args.instruction))
        if value
    }
    sim = node_params(SimArmParams, args.params, "video2act_sim_arm", overrides or None)
    policy = node_params(PolicyParams, args.params, "video2act_policy")
    topics = EpisodeTopics(
        sim.image_topic,
        sim.joint_states_topic,
        sim.trajectory_topic,
        sim.success_topic,
        sim.instruction_topic,
        tuple(sim.extra_camera_topics),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    expert = (
        wanderer(policy, sim.task, args.horizon, args.first_seed)
        if args.wander
        else ScriptedReacher(*steering(policy, sim.task, args.horizon))
    )
    successes = 0
    for index in tqdm(range(args.episodes), desc="recording", unit="episode"):
        seed = args.first_seed + index
        path = args.out / f"episode_{seed:06d}"
        if path.exists():
            raise SystemExit(f"{path} exists; refusing to overwrite recorded data")
        with EpisodeRecorder(path, topics, sim.joint_names, args.storage, args.image_format) as recorder:
            scene = args.scenes[index % len(args.scenes)] if args.scenes else sim.scene
            result = run_episode(
                expert, seed, replace(sim, scene=scene), policy.action_period_s, num_frames=2, recorder=recorder
            )
        successes += result.success
    who = "wanderer (no task)" if args.wander else "expert"
    print(f"recorded {args.episodes} episodes in {args.out}: {who} success {successes}/{args.episodes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
