"""Train a Video2Act checkpoint from recorded episodes: rosbag2 directories
(one episode each) and LeRobot-format datasets on local disk.

    python -m video2act_core.train --data data/demos --out checkpoints/mine
    torchrun --nproc_per_node=4 -m video2act_core.train --data ... --out ...

Stage 1 (optional, --stage1-steps) fine-tunes the video model on the
robot's clips with its own denoising objective. Stage 2 runs System 2 once
per sample, caches the filtered spatial/motion maps, and trains the token
projections and the DiT action head on them; a backbone trained end to end
(the ResNet baseline) runs on every batch instead, with the head. Training
state is saved to `<out>.train/` every --save-every steps, and the feature
pass in parts as it goes; rerunning the same command resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from video2act_core.camera_pose import demonstrations_camera_pose
from video2act_core.checkpoint import load_system1, load_system2, save_checkpoint
from video2act_core.models.factory import build_models
from video2act_core.data.augmentation import CameraAugmentation
from video2act_core.data.episode import EpisodeTopics
from video2act_core.data.samples import first_sample_of_episode, keep_every, load_episodes, load_samples
from video2act_core.data.frames import ViewSpec
from video2act_core.data.joint_names import JointNameMap
from video2act_core.models.dit import Instruction
from video2act_core.params import CommonParams, PerceptionParams, SimArmParams, node_params
from video2act_core.devices import resolve_device
from video2act_core.processing import frames_to_tensor, views_to_tensor

STATE_FILE = "state.pt"
LOSS_WINDOW = 50  # steps per loss reading (progress bar, checkpoint's final_loss)
# Cached maps move to the GPU when they take at most this share of its free
# memory; larger caches stay memory-mapped and are copied batch by batch.
RESIDENT_CACHE_SHARE = 0.5


class Stage2Objective(nn.Module):
    """Token projections + DiT on cached maps (or on frames, through a
    backbone trained end to end); one module so DDP can wrap it."""

    def __init__(self, encoder, action, state_noise: float):
        super().__init__()
        self.encoder, self.action = encoder, action
        self.state_noise = state_noise

    def forward(self, inputs, state, actions, instruction=None):
        """`inputs`: (spatial maps, motion maps, view maps or None) from the
        cache, or (frames (B, T, 3, H, W), camera frames or None)."""
        if inputs[0].dim() == 5:
            maps = self.encoder.refine(*inputs)
            inputs = maps.spatial, maps.motion, maps.views
        spatial, motion, views = self.encoder.tokens(*inputs)
        # Noise on the (normalised) joint state keeps the head from reading
        # the demonstration's progress off the state instead of the images.
        state = state + self.state_noise * torch.randn_like(state)
        return self.action.loss(actions, state, spatial, motion, instruction, views)


def resident_on(device: torch.device, *maps: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
    """The cached maps on the GPU when they fit there: a host-to-device copy
    per step from a memory map otherwise bounds training by the CPU."""
    if device.type != "cuda":
        return maps
    size = sum(m.numel() * m.element_size() for m in maps if m is not None)
    free, _ = torch.cuda.mem_get_info(device)
    if size > RESIDENT_CACHE_SHARE * free:
        return maps
    return tuple(m.to(device) if m is not None else None for m in maps)


def distributed() -> tuple[int, int]:
    """(rank, world size); initialises torch.distributed under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        # Rank 0 alone builds the feature cache while the others wait at a
        # barrier: allow hours, not the default 30 minutes.
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo",
                                             timeout=timedelta(hours=6))
    return (torch.distributed.get_rank() if world > 1 else 0), world


def save_atomically(state: object, path: Path) -> None:
    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    partial.replace(path)


def fill_once(path: Path, fill: Callable[[], object]) -> bool:
    """Saves `fill()` at `path` unless a file is there; True if this call
    filled it. Another process filling the same path (a training beside
    this one reading the same feature cache) finishes first, and this one
    then finds its file."""
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            return False
        save_atomically(fill(), path)
        return True


def cache_key(sources: list[str], encoder, extra: dict) -> str:
    """Identifies the cached System 2 maps: the System 2 config, the options
    in `extra`, and name, size and mtime of every file of every source."""
    digest = hashlib.sha256(json.dumps(encoder.config.to_dict(), sort_keys=True).encode())
    digest.update(json.dumps(extra, sort_keys=True).encode())
    for root in dict.fromkeys(Path(source.split("#")[0]) for source in sources):
        files = sorted(root.iterdir()) if (root / "metadata.yaml").is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for file in files:
            digest.update(f"{file.name}:{file.stat().st_size}:{file.stat().st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


@torch.no_grad()
def refine_all(encoder, clips: Sequence[np.ndarray], batch_size: int, progress,
               augmentation: CameraAugmentation | None = None, seed: int = 0, views: Sequence[np.ndarray] | None = None,
               parts_dir: Path | None = None, batches_per_part: int = 16
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """System 2's filtered maps of every clip (and of every sample's camera
    frames, with image tokens), each augmented (or not) once: the backbone
    is frozen in stage 2, so its maps are cached.

    With `parts_dir`, every `batches_per_part` batches are saved there with
    the augmentation generator's state, and a rerun starts after the last
    saved part: an interrupted pass (an hour on a CPU) keeps what it did."""
    spatial, motion, view_maps = [], [], []
    rng = np.random.default_rng(seed)
    done = 0
    if parts_dir is not None:
        parts_dir.mkdir(parents=True, exist_ok=True)
        for part in sorted(parts_dir.glob("part-*.pt")):
            saved = torch.load(part)
            if saved["start"] != done:  # a part that does not follow on: redo from here
                break
            spatial.append(saved["spatial"])
            motion.append(saved["motion"])
            if saved["views"] is not None:
                view_maps.append(saved["views"])
            rng.bit_generator.state = json.loads(saved["rng"])
            done = saved["end"]
    encoder.eval()
    part_start, part_first = done, len(spatial)
    starts = range(done, len(clips), batch_size)
    for count, start in enumerate(progress(starts, desc="System 2 features", unit="batch"), 1):
        picks = range(start, min(start + batch_size, len(clips)))
        batch = torch.cat([frames_to_tensor(augmented(clips[i], augmentation, rng)) for i in picks])
        cameras = (torch.stack([camera_frames(views[i], augmentation, rng) for i in picks])
                   if views is not None else None)
        maps = encoder.refine(batch, cameras)
        spatial.append(maps.spatial.float().cpu())
        motion.append(maps.motion.float().cpu())
        if maps.views is not None:
            view_maps.append(maps.views.float().cpu())
        if parts_dir is not None and (count % batches_per_part == 0 or count == len(starts)):
            save_atomically({"start": part_start, "end": picks.stop, "rng": json.dumps(rng.bit_generator.state),
                             "spatial": torch.cat(spatial[part_first:]), "motion": torch.cat(motion[part_first:]),
                             "views": torch.cat(view_maps[part_first:]) if view_maps else None},
                            parts_dir / f"part-{part_start:09d}.pt")
            part_start, part_first = picks.stop, len(spatial)
    return torch.cat(spatial), torch.cat(motion), torch.cat(view_maps) if view_maps else None


def augmented(frames: np.ndarray, augmentation: CameraAugmentation | None, rng: np.random.Generator) -> np.ndarray:
    return augmentation(frames, rng) if augmentation else frames


def camera_frames(views: np.ndarray, augmentation: CameraAugmentation | None, rng: np.random.Generator) -> torch.Tensor:
    """One sample's (V, K, H, W, 3) uint8 camera frames -> (V, K, 3, H, W)
    floats, each camera augmented on its own, as real cameras differ."""
    return views_to_tensor([augmented(camera, augmentation, rng) for camera in views])[0]


def main(argv: list[str] | None = None) -> int:
    repo = Path(__file__).resolve().parents[3]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, nargs="+", required=True,
                        help="bag directories, folders of them, or LeRobot dataset roots")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint directory to write")
    parser.add_argument("--strip-joint-suffix", default="",
                        help="cut this off recorded joint names (LeRobot robots write shoulder_pan.pos)")
    parser.add_argument("--joint-map", nargs="+", default=[], metavar="RECORDED=OURS",
                        help="rename single recorded joints, e.g. joint_1=shoulder_pan")
    parser.add_argument("--camera", help="the LeRobot camera key to train on (default: the first)")
    parser.add_argument("--successful-only", action="store_true",
                        help="leave out episodes that never record success (the bags' success topic, "
                             "LeRobot's next.success): a scripted expert's failures")
    parser.add_argument("--camera-augmentation", type=float, default=0.5, metavar="P",
                        help="share of clips given a real camera's noise, gain, flicker and shake before System 2 "
                             "(0: none)")
    parser.add_argument("--params", type=Path, default=repo / "config" / "video2act.yaml",
                        help="topics and joint names (ROS 2 params file)")
    parser.add_argument("--model-config", type=Path, default=repo / "config" / "model_tiny.yaml")
    parser.add_argument("--init", type=Path, help="start from this checkpoint's weights instead of --model-config")
    parser.add_argument("--name", default="video2act")
    parser.add_argument("--stage1-steps", type=int, default=0)
    parser.add_argument("--steps", type=int, default=2000, help="stage 2 steps")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--frame-stride", type=int, default=1)
    parser.add_argument("--state-noise", type=float, default=0.1, help="std of noise on the normalised joint state")
    parser.add_argument("--max-staleness", type=int, default=8,
                        help="pair each sample with System 2 maps up to this many action periods old, "
                             "as System 1 sees them when System 2 runs asynchronously at a lower rate")
    parser.add_argument("--sample-every", type=int, default=1,
                        help="keep every Nth commanded step of each episode: neighbouring steps look alike, "
                             "and System 2 then runs on 1/N of the clips (more episodes for the same time)")
    parser.add_argument("--no-motion", action="store_true", help="ablation: drop the motion tokens")
    parser.add_argument("--no-spatial", action="store_true", help="ablation: drop the spatial tokens")
    parser.add_argument("--cache-dir", type=Path, help="where System 2 features are cached (default: <out>.train/); "
                        "runs on the same data and System 2 can share it")
    parser.add_argument("--save-every", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint at --out")
    args = parser.parse_args(argv)
    malformed = [pair for pair in args.joint_map if pair.count("=") != 1]
    if malformed:
        parser.error(f"--joint-map takes RECORDED=OURS pairs, got {malformed}")
    joint_map = JointNameMap(args.strip_joint_suffix, dict(pair.split("=") for pair in args.joint_map))

    from tqdm import tqdm

    rank, world = distributed()
    quiet = rank != 0
    progress = lambda iterable, **kw: tqdm(iterable, disable=quiet, dynamic_ncols=True, mininterval=2.0, **kw)
    device = resolve_device(args.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if args.out.exists() and not args.overwrite:
        raise SystemExit(f"{args.out} exists; pass --overwrite to replace it")
    work = args.out.with_name(args.out.name + ".train")
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed + rank)
    generator = torch.Generator().manual_seed(args.seed + rank)

    common = node_params(CommonParams, args.params, "/**")
    sim = node_params(SimArmParams, args.params, "video2act_sim_arm")
    if args.init:
        encoder, action = load_system2(args.init, "cpu").encoder, load_system1(args.init, "cpu").action
        action.config.use_motion, action.config.use_spatial = not args.no_motion, not args.no_spatial
    else:
        model_config = yaml.safe_load(args.model_config.read_text())
        model_config.setdefault("system1", {}).update(use_motion=not args.no_motion, use_spatial=not args.no_spatial)
        encoder, action = build_models(model_config, common.joint_names, args.seed)
    encoder.to(device), action.to(device)
    end_to_end = encoder.backbone.trained_end_to_end
    if end_to_end and args.stage1_steps:
        raise SystemExit(f"--stage1-steps: the {encoder.config.backbone.get('type')} backbone has no denoising "
                         "objective; it trains with the head in stage 2")

    views = encoder.config.view_cameras
    if views > 1 + len(common.extra_camera_topics):
        raise SystemExit(f"the model makes image tokens from {views} cameras: name {views - 1} in "
                         f"extra_camera_topics (in {args.params}), it names {common.extra_camera_topics}")
    cameras = [common.image_topic, *common.extra_camera_topics][:max(views, 1)]
    topics = EpisodeTopics(common.image_topic, common.joint_states_topic, common.trajectory_topic, sim.success_topic,
                           common.instruction_topic, tuple(cameras[1:]))
    view_spec = ViewSpec.of(encoder.config)
    frame_size = (encoder.config.image_height, encoder.config.image_width)
    # Frames at the model's input size, spilled to disk episode by episode:
    # memory does not grow with the recordings' length or resolution.
    spill_dir = work / f"frames-{rank}"
    shutil.rmtree(spill_dir, ignore_errors=True)
    episodes, sources = load_episodes(args.data, topics, common.joint_names, frame_size,
                                      (common.base_frame, common.camera_frame), joint_map, args.camera, spill_dir,
                                      lambda sources: progress(sources, desc="reading episodes", unit="source"))
    if args.successful_only:
        kept = [index for index, episode in enumerate(episodes) if episode.success]
        if not kept:
            raise SystemExit(f"--successful-only: none of the {len(episodes)} episodes records success "
                             f"(on {topics.success} or in a LeRobot dataset's next.success)")
        if not quiet:
            print(f"--successful-only: training on {len(kept)} of {len(episodes)} episodes")
        episodes, sources = [episodes[index] for index in kept], [sources[index] for index in kept]
    perception = node_params(PerceptionParams, args.params, "video2act_perception")
    camera_pose, no_camera_pose = demonstrations_camera_pose(
        [episode.camera_pose for episode in episodes], perception.camera_pose_tolerance_m,
        np.radians(perception.camera_pose_tolerance_deg))
    if no_camera_pose and not quiet:
        print(f"warning: the checkpoint will record no camera pose: {no_camera_pose}")
    samples, stats = load_samples(episodes, common.joint_names, encoder.config.num_frames,
                                  action.config.horizon, args.frame_stride, view_spec)
    samples = keep_every(samples, args.sample_every)  # statistics stay those of every step
    instructions = [episode.instruction.strip() for episode in episodes]
    if action.config.language:
        unnamed = sum(not text for text in instructions)
        if unnamed and not quiet:
            print(f"warning: {unnamed} of {len(episodes)} episodes have no task instruction "
                  f"(on {topics.instruction} or in the dataset's tasks); they train on the empty one")
        # Per episode, tokenized once; each batch picks its samples' rows.
        instruction_ids, instruction_mask = action.model.text_encoder.tokenize(instructions)
    if not quiet:
        print(f"{len(episodes)} episodes, {len(samples.clips)} samples; device {device}, {world} process(es)")

    state_path = work / STATE_FILE
    resumed = torch.load(state_path, map_location="cpu", weights_only=False) if state_path.exists() else None
    if resumed:
        encoder.load_state_dict(resumed["encoder"]), action.model.load_state_dict(resumed["action"])
        if not quiet:
            print(f"resuming from {state_path}: stage {resumed['stage']}, step {resumed['step']}")

    # Stage 1: adapt the video model to the robot's scenes.
    stage1_done = resumed["stage"] == 2 if resumed else args.stage1_steps == 0
    if not stage1_done:
        backbone = [p for p in encoder.parameters()]
        optimizer = torch.optim.AdamW(backbone, lr=1e-5)
        start = resumed["step"] if resumed else 0
        if resumed:
            optimizer.load_state_dict(resumed["optimizer"])
        encoder.train()
        bar = progress(range(start, args.stage1_steps), desc="stage 1 (VDM)", initial=start, total=args.stage1_steps)
        for step in bar:
            picks = torch.randint(len(samples.clips), (max(1, args.batch_size // 16),), generator=generator)
            loss = encoder.denoising_loss(torch.cat([frames_to_tensor(samples.clips[i]) for i in picks]), generator)
            optimizer.zero_grad()
            loss.backward()
            if world > 1:
                for p in backbone:
                    if p.grad is not None:
                        torch.distributed.all_reduce(p.grad)
                        p.grad /= world
            optimizer.step()
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if not quiet and (step + 1) % args.save_every == 0:
                save_atomically({"stage": 1, "step": step + 1, "encoder": encoder.state_dict(),
                                 "action": action.model.state_dict(), "optimizer": optimizer.state_dict()}, state_path)
        resumed = None

    # Stage 2: cache System 2's filtered maps once, train projections + DiT.
    augmentation = CameraAugmentation(args.camera_augmentation) if args.camera_augmentation > 0 else None
    if end_to_end:
        # The formers' scales from the untrained backbone's maps of a subset;
        # every batch then runs the backbone on freshly augmented clips.
        subset = np.linspace(0, len(samples.clips) - 1, min(len(samples.clips), 512)).astype(int)
        spatial_maps, motion_maps, view_maps = refine_all(
            encoder, [samples.clips[i] for i in subset], 16, progress, augmentation, args.seed,
            [samples.views[i] for i in subset] if samples.views else None)
        clip_rng = np.random.default_rng(args.seed + rank)
    else:
        key = cache_key(sources, encoder, {"stage1": args.stage1_steps, "init": str(args.init),
                                           "stride": args.frame_stride, "every": args.sample_every,
                                           "augmentation": repr(augmentation), "seed": args.seed,
                                           # only when set: caches written before the option stay valid
                                           **({"successful_only": True} if args.successful_only else {})})
        cache_dir = args.cache_dir or work
        cache_dir.mkdir(parents=True, exist_ok=True)
        cache_path = cache_dir / f"features-{key}.pt"
        # Rank 0 runs System 2 over the data; the other ranks wait and load it.
        parts_dir = cache_path.with_suffix(".parts")
        if rank == 0 and fill_once(cache_path, lambda: refine_all(
                encoder, samples.clips, 16, progress, augmentation, args.seed, samples.views, parts_dir)):
            shutil.rmtree(parts_dir)
        if world > 1:
            torch.distributed.barrier()
        spatial_maps, motion_maps, view_maps = torch.load(cache_path, mmap=True)  # paged in as batches use them
        spatial_maps, motion_maps, view_maps = resident_on(device, spatial_maps, motion_maps, view_maps)
    states = torch.as_tensor(stats.normalize_state(samples.states), dtype=torch.float32, device=device)
    actions = torch.as_tensor(stats.normalize_action(samples.actions), dtype=torch.float32, device=device)

    for p in encoder.parameters():
        p.requires_grad_(False)
    # Fixed scales from the data keep each cell's magnitude in its tokens.
    encoder.fit_scales(spatial_maps, motion_maps)
    trainable = [p for former in (encoder.spatial_former, encoder.motion_former, encoder.view_former)
                 if former is not None for p in former.parameters()]
    if end_to_end:
        trainable += list(encoder.backbone.parameters())
        encoder.train()
    for p in trainable:
        p.requires_grad_(True)
    trainable += list(action.model.parameters())
    objective = Stage2Objective(encoder, action, args.state_noise)
    if world > 1:
        objective = nn.parallel.DistributedDataParallel(objective, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=1e-4)
    total = max(args.steps, 3)
    # 5% warm-up, but OneCycleLR divides by zero below two warm-up steps.
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=total, pct_start=max(0.05, 2.0 / total))
    start = 0
    if resumed:
        optimizer.load_state_dict(resumed["optimizer"])
        start = resumed["step"]
        # Rebuilt for this run's --steps (a resumed run may train longer),
        # then advanced to where training stopped; stepping it before the
        # optimizer is intended here, so torch's warning about that is not.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
            for _ in range(start):
                schedule.step()
    action.train()
    shard = torch.arange(rank, len(states), world)  # each process its share of the samples
    episode_start = torch.as_tensor(first_sample_of_episode(samples.episode_index))
    sample_episode = torch.as_tensor(samples.episode_index)
    bar = progress(range(start, args.steps), desc="stage 2 (DiT)", initial=start, total=args.steps)
    losses, recent_loss = [], None
    started = time.monotonic()
    for step in bar:
        picks = shard[torch.randint(len(shard), (args.batch_size,), generator=generator)]
        age = torch.randint(args.max_staleness // args.sample_every + 1, (args.batch_size,), generator=generator)
        seen = torch.maximum(picks - age, episode_start[picks])  # never across episodes
        instruction = None
        if action.config.language:
            rows = sample_episode[picks]
            instruction = Instruction(instruction_ids[rows].to(device), instruction_mask[rows].to(device))
        if end_to_end:
            inputs = (torch.cat([frames_to_tensor(augmented(samples.clips[i], augmentation, clip_rng))
                                 for i in seen.tolist()]).to(device),
                      torch.stack([camera_frames(samples.views[i], augmentation, clip_rng)
                                   for i in seen.tolist()]).to(device) if samples.views else None)
        else:
            seen = seen.to(spatial_maps.device)
            inputs = (spatial_maps[seen].to(device), motion_maps[seen].to(device),
                      view_maps[seen].to(device) if view_maps is not None else None)
        picks = picks.to(device)
        loss = objective(inputs, states[picks], actions[picks], instruction)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.detach())
        # Reading a loss waits for the GPU: once per LOSS_WINDOW steps.
        if len(losses) == LOSS_WINDOW or step + 1 == args.steps:
            recent_loss = torch.stack(losses).mean().item()
            losses = []
            bar.set_postfix(loss=f"{recent_loss:.4f}")
        if not quiet and ((step + 1) % args.save_every == 0 or step + 1 == args.steps):
            save_atomically({"stage": 2, "step": step + 1, "encoder": encoder.state_dict(),
                             "action": action.model.state_dict(), "optimizer": optimizer.state_dict()}, state_path)

    if not quiet:
        metadata = {
            "trained": True,
            "episodes": sources,
            "successful_only": args.successful_only,
            "samples": len(states),
            "stage1_steps": args.stage1_steps,
            "stage2_steps": args.steps,
            "state_noise": args.state_noise,
            "max_staleness": args.max_staleness,
            "sample_every": args.sample_every,
            "final_loss": recent_loss,
            "train_seconds": round(time.monotonic() - started, 1),
            "seed": args.seed,
            "device": str(device),
            "camera_augmentation": dataclasses.asdict(augmentation) if augmentation else None,
            # The policy's default instruction when there is only one.
            "instructions": sorted({text for text in instructions if text}),
            # Perception compares it with the robot's tf at start-up.
            "camera_pose": camera_pose.to_dict() if camera_pose else None,
            # The cameras the image tokens were trained on, in order.
            "cameras": cameras if views else [],
        }
        model_id = save_checkpoint(args.out, encoder, action, stats, name=args.name, metadata=metadata,
                                   overwrite=args.overwrite)
        print(f"wrote {args.out} ({model_id})")
    shutil.rmtree(spill_dir, ignore_errors=True)
    if world > 1:
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
