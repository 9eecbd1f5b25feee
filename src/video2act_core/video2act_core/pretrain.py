"""Pretrain System 2's video model on videos alone, with its own denoising
objective (stage 1 of training, without a head or actions), and measure
what it learned on held-out episodes against the same model at its start.

    python -m video2act_sim.expert --out data/activity --episodes 500 --wander
    python -m video2act_core.pretrain --data data/activity --out checkpoints/prior --steps 20000

Clips come from recorded episodes (bags or LeRobot datasets: the
recorder's --wander activity, demonstrations, a robot's recordings); every
10th episode is held out. --out gets the video model in diffusers' layout,
what a model config's `backbone.pretrained_path` and the benchmark's
--pretrained-backbone read, and `pretraining.json`: the data, the budget,
the held-out denoising loss at the start and at the end, and its curve
(every --eval-every steps; the held-out noise is drawn alike each time, so
the points compare). State is saved to `<out>.train/` every --save-every
steps: rerunning the same command resumes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from video2act_core.data.joint_names import JointNameMap
from video2act_core.data.samples import Clips
from video2act_core.params import CommonParams, node_params
from video2act_core.processing import frames_to_tensor
from video2act_core.training.checkpointing import STATE_FILE, initial_models, load_state, restore_weights
from video2act_core.training.data import load_training_data
from video2act_core.training.distributed import TrainingProcess, start_process
from video2act_core.training.recipe import TrainingRecipe
from video2act_core.training.stage1 import CLIPS_PER_BATCH, attach_adapters, check_stage1, merge_adapters, train_stage1

HELD_OUT_EVERY = 10  # episodes: every 10th is held out
HELD_OUT_SEED = 12345
CURVE_FILE = "curve.jsonl"


@torch.no_grad()
def held_out_loss(encoder, clips: Clips, count: int, batch: int = 4) -> float:
    """The denoising loss on `count` held-out clips spread over them, their
    noise levels and noise drawn from a generator seeded alike every time."""
    training = encoder.training
    encoder.eval()
    generator = torch.Generator().manual_seed(HELD_OUT_SEED)
    picks = np.linspace(0, len(clips) - 1, min(len(clips), count)).astype(int)
    total = 0.0
    for start in range(0, len(picks), batch):
        chosen = picks[start : start + batch]
        frames = torch.cat([frames_to_tensor(clips[i]) for i in chosen])
        total += encoder.denoising_loss(frames, generator).item() * len(chosen)
    encoder.train(training)
    return total / len(picks)


def build_parser() -> argparse.ArgumentParser:
    repo = Path(__file__).resolve().parents[3]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, nargs="+", required=True, help="bag directories or LeRobot datasets")
    parser.add_argument("--out", type=Path, required=True, help="directory for the pretrained video model")
    parser.add_argument("--model-config", type=Path, default=repo / "config" / "model_tiny.yaml")
    parser.add_argument("--params", type=Path, default=repo / "config" / "video2act.yaml")
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--clips-per-step", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4, help="from scratch: larger than fine-tuning's 1e-5")
    parser.add_argument("--eval-every", type=int, default=500, help="steps between held-out losses")
    parser.add_argument("--held-out-clips", type=int, default=64, help="clips each held-out loss averages")
    parser.add_argument("--save-every", type=int, default=500)
    parser.add_argument("--camera", help="the LeRobot camera key (default: the first)")
    parser.add_argument("--frame-stride", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return parser


def split_clips(episode_index: np.ndarray, clips: Clips) -> tuple[Clips, Clips]:
    """(training clips, held-out clips): every HELD_OUT_EVERY-th episode held out."""
    held = episode_index % HELD_OUT_EVERY == 0
    if held.all() or not held.any():
        raise SystemExit(
            f"{len(set(episode_index.tolist()))} episode(s): pretraining holds out every {HELD_OUT_EVERY}th "
            "and needs some of both"
        )
    return clips.subset(np.flatnonzero(~held)), clips.subset(np.flatnonzero(held))


class Curve:
    """The held-out loss over the steps, in `<out>.train/curve.jsonl`; a
    resumed run drops the points after its saved step (they are redone)."""

    def __init__(self, path: Path, resumed_step: int):
        self.path = path
        lines = path.read_text().splitlines() if path.exists() and resumed_step else []
        self.points = [point for point in map(json.loads, lines) if point["step"] <= resumed_step]
        path.write_text("".join(json.dumps(point) + "\n" for point in self.points))

    def add(self, step: int, loss: float) -> None:
        self.points.append({"step": step, "held_out_loss": loss})
        with open(self.path, "a") as file:
            file.write(json.dumps(self.points[-1]) + "\n")


def pretrain(args: argparse.Namespace, process: TrainingProcess) -> dict:
    """Stage 1 on the clips of --data with held-out evaluations; the summary."""
    work = args.out.with_name(args.out.name + ".train")
    work.mkdir(parents=True, exist_ok=True)
    common = node_params(CommonParams, args.params, "/**")
    encoder, action = initial_models(args.model_config, None, common.joint_names, args.seed, True, True)
    recipe = TrainingRecipe.from_model_config(yaml.safe_load(args.model_config.read_text()))
    check_stage1(encoder, args.steps)
    encoder.to(process.device)
    data = load_training_data(
        roots=args.data,
        params_path=args.params,
        common=common,
        encoder_config=encoder.config,
        horizon=action.config.horizon,
        joint_map=JointNameMap(),
        camera=args.camera,
        spill_dir=work / "frames",
        successful_only=False,
        frame_stride=args.frame_stride,
        sample_every=1,
        progress=process.progress,
        quiet=process.quiet,
    )
    training_clips, held_out = split_clips(data.samples.episode_index, data.samples.clips)
    resumed = load_state(work / STATE_FILE)
    adapters = attach_adapters(encoder, recipe)
    if resumed:
        restore_weights(resumed, encoder, action, work / STATE_FILE)
        print(f"resuming from {work / STATE_FILE}: step {resumed['step']}")
    curve = Curve(work / CURVE_FILE, resumed["step"] if resumed else 0)
    if not curve.points:
        curve.add(0, held_out_loss(encoder, held_out, args.held_out_clips))
    print(
        f"{len(training_clips)} clips to train on, {len(held_out)} held out; held-out loss at the start "
        f"{curve.points[0]['held_out_loss']:.4f}"
    )
    started = time.monotonic()
    train_stage1(
        encoder,
        action,
        training_clips,
        process,
        steps=args.steps,
        batch_size=args.clips_per_step * CLIPS_PER_BATCH,
        save_every=args.save_every,
        state_path=work / STATE_FILE,
        resumed=resumed,
        generator=torch.Generator().manual_seed(args.seed + (resumed["step"] if resumed else 0)),
        recipe=recipe,
        adapters=adapters,
        lr=args.lr,
        after_step=lambda step: (
            step % args.eval_every or curve.add(step, held_out_loss(encoder, held_out, args.held_out_clips))
        ),
    )
    if adapters is not None:
        print(f"the adapters merged: the weights hold {merge_adapters(encoder):.0%} of their update")
    if curve.points[-1]["step"] != args.steps:
        curve.add(args.steps, held_out_loss(encoder, held_out, args.held_out_clips))
    if args.out.exists():
        shutil.rmtree(args.out)
    encoder.backbone.save(args.out)
    summary = {
        "data": [str(root) for root in args.data],
        "episodes": len(data.episodes),
        "training_clips": len(training_clips),
        "held_out_clips": min(len(held_out), args.held_out_clips),
        "backbone": encoder.config.backbone,
        "recipe": {"steps": args.steps, "clips_per_step": args.clips_per_step, "lr": args.lr, "seed": args.seed},
        "held_out_loss_start": curve.points[0]["held_out_loss"],
        "held_out_loss_end": curve.points[-1]["held_out_loss"],
        "curve": curve.points,
        "seconds_this_run": round(time.monotonic() - started, 1),
        "device": str(process.device),
    }
    (args.out / "pretraining.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.out.exists() and not args.overwrite:
        raise SystemExit(f"{args.out} exists; pass --overwrite to replace it")
    process = start_process(args.device)
    if process.world != 1:
        raise SystemExit("pretraining runs as one process")
    summary = pretrain(args, process)
    print(
        f"wrote {args.out}: held-out denoising loss {summary['held_out_loss_start']:.4f} at the start, "
        f"{summary['held_out_loss_end']:.4f} after {args.steps} steps"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
