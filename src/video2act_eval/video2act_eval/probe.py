"""What a video model's features know about the world: linear probes.

    python -m video2act_eval.probe --task mujoco_track --out runs/probe
    python -m video2act_eval.probe --task mujoco_track --out runs/probe \
        --pretrained-backbone svd=checkpoints/prior --docs docs/models.md

The simulator runs episodes of `--task` (the benchmark's) under the wanderer (activity without
a task, `video2act_sim.expert`) from seed 5000 on, apart from demonstrations
(1000 on) and evaluation (0 on), and every few steps keeps the clip System 2
would read and, from the simulation, where the task's object is and how it
moves. Each readout turns a clip into a vector: the video model's features
of its newest latent frame and of the one `VELOCITY_WINDOW_S` earlier,
pooled to 4 x 4 cells (`SpatioMotionEncoder.clip_features`, unfiltered: what
both streams filter), for the model config's video model at its random
initialisation and, with --pretrained-backbone, for a pretrained one; and,
as the floor any video model should beat, the same two frames' pixels at
8 x 8. A ridge regression per readout (its strength chosen by
cross-validation across training episodes) is fitted on 4 of every 5
episodes and scored on the fifth: R^2 of the object's position, of its
velocity and of its speed, and the share of moving samples whose predicted
velocity points within 90 degrees of the true one (chance: one half).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from tqdm import tqdm

from video2act_core.data.frames import CameraInputs
from video2act_core.devices import resolve_device
from video2act_core.models.factory import build_models
from video2act_core.models.vdm_encoder import SpatioMotionEncoder
from video2act_core.params import PolicyParams, SimArmParams, node_params
from video2act_core.processing import frames_to_tensor, resize_frames
from video2act_eval.benchmark import TASKS, model_config_with_backbone, pretrained_backbone
from video2act_eval.tables import write_block
from video2act_sim.arm import SimArm
from video2act_sim.episode import Command, run_episode
from video2act_sim.expert import Wanderer, wanderer

REPO = Path(__file__).resolve().parents[3]
FIRST_SEED = 5000
HELD_OUT_EVERY = 5  # episodes
VELOCITY_WINDOW_S = 0.2
FEATURE_CELLS = 4
CLIPS_PER_PASS = 8
PIXEL_CELLS = 8
MOVING_M_S = 0.05  # slower samples have no direction to score
RIDGE_STRENGTHS = np.logspace(-3, 4, 15)  # times the number of training samples
CROSS_VALIDATION_FOLDS = 4
TARGETS = ("position", "velocity", "speed")


class Observer:
    """Drives the arm as `controller` does and, every `every` calls once
    `VELOCITY_WINDOW_S` has passed, keeps the video camera's clip with the
    object's position at its newest frame and its velocity over the window
    before."""

    def __init__(self, controller: Wanderer, every: int):
        self.controller, self.every = controller, every

    def reset(self, arm: SimArm) -> None:
        self.controller.reset(arm)
        self.arm, self.calls = arm, 0
        self.times, self.positions = [], []
        self.clips, self.labels = [], []

    def act(self, time_s: float, joint_positions: np.ndarray, cameras: CameraInputs) -> Command | None:
        self.times.append(time_s)
        self.positions.append(self.arm.object_position())
        self.calls += 1
        clip = cameras.read()[0] if self.calls % self.every == 0 else None
        # The labels at the newest frame's time (up to a camera period before now).
        newest_s = clip.stamps_ns[-1] * 1e-9 if clip is not None else -np.inf
        if newest_s - self.times[0] >= VELOCITY_WINDOW_S - 1e-9:
            track = np.array(self.positions).T
            at = lambda t: np.array([np.interp(t, self.times, axis) for axis in track])
            position = at(newest_s)
            velocity = (position - at(newest_s - VELOCITY_WINDOW_S)) / VELOCITY_WINDOW_S
            self.clips.append(clip.frames)
            self.labels.append(np.concatenate([position, velocity, [np.linalg.norm(velocity)]]))
        return self.controller.act(time_s, joint_positions, cameras)


def frame_lag(frames: int, fps: float, what: str) -> int:
    """Frames back to the one about `VELOCITY_WINDOW_S` before the newest."""
    lag = max(1, round(VELOCITY_WINDOW_S * fps))
    if lag >= frames:
        raise SystemExit(
            f"the {what} holds {frames} frame(s) at {fps:g} Hz: none {VELOCITY_WINDOW_S} s before its newest"
        )
    return lag


def video_readout(encoder: SpatioMotionEncoder) -> Callable[[np.ndarray], np.ndarray]:
    """Clips (N, T, H, W, 3) uint8 -> the features of the newest latent frame
    and of the one about `VELOCITY_WINDOW_S` earlier (a latent frame of a
    temporally compressing VAE spans several frames: 0.27 s for Wan's 4 at
    15 Hz), pooled, (N, 2 * C * cells^2)."""
    config = encoder.config
    lag = frame_lag(*config.latent_frames_and_rate(encoder.backbone.temporal_compression), "latent clip")
    size = (config.image_height, config.image_width)

    @torch.no_grad()
    def read(clips: np.ndarray) -> np.ndarray:
        vectors = []
        for start in range(0, len(clips), CLIPS_PER_PASS):
            batch = clips[start : start + CLIPS_PER_PASS]
            frames = torch.cat([frames_to_tensor(resize_frames(clip, size)) for clip in batch])
            features = encoder.clip_features(frames)[:, [-1 - lag, -1]]
            pooled = F.adaptive_avg_pool2d(features.flatten(0, 1), FEATURE_CELLS)
            vectors.append(pooled.unflatten(0, features.shape[:2]).flatten(1).cpu().numpy())
        return np.concatenate(vectors)

    return read


def pixel_readout(num_frames: int, motion_fps: float) -> Callable[[np.ndarray], np.ndarray]:
    """The floor: two frames' pixels at PIXEL_CELLS x PIXEL_CELLS, the newest
    and the one `VELOCITY_WINDOW_S` before."""
    lag = frame_lag(num_frames, motion_fps, "clip")

    def read(clips: np.ndarray) -> np.ndarray:
        frames = torch.cat([frames_to_tensor(clip[[-1 - lag, -1]]) for clip in clips])
        return F.adaptive_avg_pool2d(frames.flatten(0, 1), PIXEL_CELLS).flatten(1).reshape(len(clips), -1).numpy()

    return read


def ridge_predictions(
    features: np.ndarray, targets: np.ndarray, train: np.ndarray, strengths: np.ndarray
) -> np.ndarray:
    """Predictions for every sample (strengths, N, targets) of ridge
    regressions fitted on the `train` rows, features standardised on them."""
    mean, scale = features[train].mean(0), features[train].std(0) + 1e-8
    x = (features - mean) / scale
    target_mean = targets[train].mean(0)
    # One SVD serves every strength: w = V diag(s / (s^2 + a)) U^T y.
    u, s, vt = np.linalg.svd(x[train], full_matrices=False)
    projected = u.T @ (targets[train] - target_mean)
    shrink = s[None, :] / (s[None, :] ** 2 + strengths[:, None] * train.sum())
    weights = np.einsum("kr,rd,rt->kdt", shrink, vt, projected)
    return np.einsum("nd,kdt->knt", x, weights) + target_mean


def r_squared(predicted: np.ndarray, true: np.ndarray) -> float:
    return float(1.0 - ((predicted - true) ** 2).sum() / ((true - true.mean(0)) ** 2).sum())


def probe(features: np.ndarray, labels: np.ndarray, episodes: np.ndarray) -> dict[str, float]:
    """Held-out scores of one readout's ridge probes (the module docstring)."""
    held_out = episodes % HELD_OUT_EVERY == HELD_OUT_EVERY - 1
    columns = {"position": slice(0, 2), "velocity": slice(2, 4), "speed": slice(4, 5)}
    scores = {}
    for name, column in columns.items():
        targets = labels[:, column]
        # The strength with the best R^2 over folds of the training episodes.
        errors = np.zeros(len(RIDGE_STRENGTHS))
        for fold in range(CROSS_VALIDATION_FOLDS):
            validation = ~held_out & (episodes % CROSS_VALIDATION_FOLDS == fold)
            predicted = ridge_predictions(features, targets, ~held_out & ~validation, RIDGE_STRENGTHS)
            errors += ((predicted[:, validation] - targets[validation]) ** 2).sum(axis=(1, 2))
        best = RIDGE_STRENGTHS[[int(np.argmin(errors))]]
        predicted = ridge_predictions(features, targets, ~held_out, best)[0]
        scores[f"{name}_r2"] = r_squared(predicted[held_out], targets[held_out])
        if name == "velocity":
            true = targets[held_out]
            moving = np.linalg.norm(true, axis=1) > MOVING_M_S
            agree = (predicted[held_out][moving] * true[moving]).sum(axis=1) > 0
            scores["direction_agreement"] = float(agree.mean()) if moving.any() else float("nan")
            scores["moving_samples"] = int(moving.sum())
    return scores


def collect(
    task: str, params: Path, episodes: int, every: int, readouts: dict[str, Callable], num_frames: int
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Each readout's vectors, the labels (position, velocity, speed) and
    each sample's episode, episode by episode (clips are not kept)."""
    scene = TASKS[task]
    sim = node_params(SimArmParams, params, "video2act_sim_arm", {"backend": scene.backend, "task": scene.task})
    policy = node_params(PolicyParams, params, "video2act_policy")
    features = {name: [] for name in readouts}
    labels, episode_of = [], []
    for episode in tqdm(range(episodes), desc=f"probing {task}", unit="episode"):
        observer = Observer(wanderer(policy, scene.task, 16, FIRST_SEED + episode), every)
        run_episode(observer, FIRST_SEED + episode, sim, policy.action_period_s, num_frames=num_frames)
        if not observer.clips:
            continue
        clips = np.stack(observer.clips)
        for name, read in readouts.items():
            features[name].append(read(clips))
        labels.append(np.stack(observer.labels))
        episode_of.append(np.full(len(clips), episode))
    return (
        {name: np.concatenate(parts) for name, parts in features.items()},
        np.concatenate(labels),
        np.concatenate(episode_of),
    )


def table(results: dict[str, dict[str, float]], task: str, samples: int, episodes: int) -> str:
    lines = [
        f"`{task}`, {episodes} wanderer episodes, {samples} clips (every {HELD_OUT_EVERY}th episode held out):",
        "",
        "| readout | position R^2 | velocity R^2 | speed R^2 | direction within 90 deg |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, scores in results.items():
        lines.append(
            f"| {name} | {scores['position_r2']:.2f} | {scores['velocity_r2']:.2f} | {scores['speed_r2']:.2f} | "
            f"{scores['direction_agreement']:.2f} ({scores['moving_samples']} moving) |"
        )
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=TASKS, default="mujoco_track", help="a benchmark task")
    parser.add_argument("--out", type=Path, required=True, help="directory for probe.json and table.md")
    parser.add_argument("--model-config", type=Path, default=REPO / "config" / "model_tiny.yaml")
    parser.add_argument(
        "--pretrained-backbone", metavar="TYPE=PATH", help="a local pretrained video model (svd or wan) to probe too"
    )
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--every", type=int, default=3, help="keep a clip every this many action periods")
    parser.add_argument("--params", type=Path, default=REPO / "config" / "video2act.yaml")
    parser.add_argument("--device", default="auto", help="the video models' (float32)")
    parser.add_argument("--docs", type=Path, help="also write the table into this file's <!-- results:probe --> block")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.episodes < 2 * HELD_OUT_EVERY:
        parser.error(f"--episodes must be at least {2 * HELD_OUT_EVERY}: every {HELD_OUT_EVERY}th is held out")
    pretrained = pretrained_backbone(args, parser)
    config = yaml.safe_load(args.model_config.read_text())
    device = resolve_device(args.device)
    random_encoder, _ = build_models(config, ["j"], seed=0)
    random_encoder.to(device)
    readouts = {
        "pixels": pixel_readout(random_encoder.config.num_frames, random_encoder.config.motion_fps),
        f"video model at random init ({args.model_config.name})": video_readout(random_encoder.eval()),
    }
    if pretrained:
        encoder, _ = build_models(model_config_with_backbone(config, pretrained), ["j"], seed=0)
        encoder.to(device)
        readouts[f"pretrained video model ({pretrained[1]})"] = video_readout(encoder.eval())
    features, labels, episodes = collect(
        args.task, args.params, args.episodes, args.every, readouts, random_encoder.config.num_frames
    )
    results = {name: probe(vectors, labels, episodes) for name, vectors in features.items()}
    text = table(results, args.task, len(labels), args.episodes)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "probe.json").write_text(json.dumps({"task": args.task, "samples": len(labels), **results}, indent=1))
    (args.out / "table.md").write_text(text)
    print(text)
    if args.docs:
        command = ["python", "-m", "video2act_eval.probe", *(argv if argv is not None else sys.argv[1:])]
        write_block(args.docs, "probe", text, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
