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
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from video2act_core.checkpoint import read_manifest, save_checkpoint
from video2act_core.data.joint_names import JointNameMap
from video2act_core.models.dit import ActionDiffusion
from video2act_core.models.vdm_encoder import SpatioMotionEncoder
from video2act_core.params import CommonParams, node_params
from video2act_core.training.checkpointing import (
    STATE_FILE,
    initial_models,
    load_state,
    restore_weights,
    save_state,
    training_metadata,
)
from video2act_core.training.data import (
    TrainingData,
    camera_augmentation,
    instruction_tokens,
    load_training_data,
    rdt_units,
)
from video2act_core.training.distributed import TrainingProcess, finish, start_process
from video2act_core.training.features import cache_options, cached_features, scale_features
from video2act_core.training.recipe import TrainingRecipe
from video2act_core.training.stage1 import (
    attach_adapters,
    check_stage1,
    merge_adapters,
    stage1_pending,
    train_stage1,
)
from video2act_core.training.stage2 import LR_SCHEDULES, Stage2Options, train_stage2

# The stages live in video2act_core/training/ (see its __init__); this
# module is the command line and the order they run in.


def add_schedule_arguments(parser: argparse.ArgumentParser) -> None:
    """How long, how fast and on which samples the stages train."""
    parser.add_argument("--stage1-steps", type=int, default=0)
    parser.add_argument("--steps", type=int, default=2000, help="stage 2 steps")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-4, help="stage 2's peak learning rate")
    parser.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        default="one_cycle",
        help="one_cycle: 5%% warm-up, then cosine down; constant: the official code's (with --lr 1e-4)",
    )
    parser.add_argument("--frame-stride", type=int, default=1)
    parser.add_argument("--state-noise", type=float, default=0.1, help="std of noise on the normalised joint state")
    parser.add_argument(
        "--max-staleness",
        type=int,
        default=8,
        help="pair each sample with System 2 maps up to this many action periods old, "
        "as System 1 sees them when System 2 runs asynchronously at a lower rate",
    )
    parser.add_argument(
        "--sample-every",
        type=int,
        default=1,
        help="keep every Nth commanded step of each episode: neighbouring steps look alike, "
        "and System 2 then runs on 1/N of the clips (more episodes for the same time)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line: every option of `python -m video2act_core.train`.

    Returns:
        The parser.
    """
    repo = Path(__file__).resolve().parents[3]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data", type=Path, nargs="+", required=True, help="bag directories, folders of them, or LeRobot dataset roots"
    )
    parser.add_argument("--out", type=Path, required=True, help="checkpoint directory to write")
    parser.add_argument(
        "--strip-joint-suffix",
        default="",
        help="cut this off recorded joint names (LeRobot robots write shoulder_pan.pos)",
    )
    parser.add_argument(
        "--joint-map",
        nargs="+",
        default=[],
        metavar="RECORDED=OURS",
        help="rename single recorded joints, e.g. joint_1=shoulder_pan",
    )
    parser.add_argument("--camera", help="the LeRobot camera key to train on (default: the first)")
    parser.add_argument(
        "--successful-only",
        action="store_true",
        help="leave out episodes that never record success (the bags' success topic, "
        "LeRobot's next.success): a scripted expert's failures",
    )
    parser.add_argument(
        "--camera-augmentation",
        type=float,
        default=0.5,
        metavar="P",
        help="share of clips given a real camera's noise, gain, flicker and shake before System 2 (0: none)",
    )
    parser.add_argument(
        "--params",
        type=Path,
        default=repo / "config" / "video2act.yaml",
        help="topics and joint names (ROS 2 params file)",
    )
    parser.add_argument("--model-config", type=Path, default=repo / "config" / "model_tiny.yaml")
    parser.add_argument("--init", type=Path, help="start from this checkpoint's weights instead of --model-config")
    parser.add_argument("--name", default="video2act")
    add_schedule_arguments(parser)
    parser.add_argument("--no-motion", action="store_true", help="ablation: drop the motion tokens")
    parser.add_argument("--no-spatial", action="store_true", help="ablation: drop the spatial tokens")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="where System 2 features are cached (default: <out>.train/); "
        "runs on the same data and System 2 can share it",
    )
    parser.add_argument("--save-every", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint at --out")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Trains a checkpoint as the command line says.

    Args:
        argv: the arguments (default: sys.argv[1:]).

    Returns:
        0 (errors exit with a message).
    """
    command = build_parser()
    args = command.parse_args(argv)
    malformed = [pair for pair in args.joint_map if pair.count("=") != 1]
    if malformed:
        command.error(f"--joint-map takes RECORDED=OURS pairs, got {malformed}")
    train(args, JointNameMap(args.strip_joint_suffix, dict(pair.split("=") for pair in args.joint_map)))
    return 0


@dataclass
class TrainingRun:
    """What the stages of one training share."""

    process: TrainingProcess
    work: Path  # <out>.train/: state, spilled frames, the feature cache by default
    generator: torch.Generator
    encoder: SpatioMotionEncoder
    action: ActionDiffusion
    data: TrainingData
    instructions: object  # the language head's tokens of data.instructions, or None
    recipe: TrainingRecipe  # --model-config's training section, or --init's

    @property
    def state_path(self) -> Path:
        return self.work / STATE_FILE

    @property
    def spill_dir(self) -> Path:
        return self.work / f"frames-{self.process.rank}"


def prepare(args: argparse.Namespace, joint_map: JointNameMap) -> TrainingRun:
    """The process, the work directory, the models and the data."""
    process = start_process(args.device)
    if args.out.exists() and not args.overwrite:
        raise SystemExit(f"{args.out} exists; pass --overwrite to replace it")
    work = args.out.with_name(args.out.name + ".train")
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed + process.rank)
    generator = torch.Generator().manual_seed(args.seed + process.rank)

    common = node_params(CommonParams, args.params, "/**")
    # With --init, the model and its recipe are the checkpoint's (--model-config is not read).
    recipe_source = args.model_config
    try:
        if args.init:
            recipe_source = args.init
            recipe = TrainingRecipe.from_model_config({"training": read_manifest(args.init).metadata.get("recipe")})
        else:
            recipe = TrainingRecipe.from_model_config(yaml.safe_load(args.model_config.read_text()))
    except ValueError as error:
        raise SystemExit(f"{recipe_source}: {error}") from None
    encoder, action = initial_models(
        args.model_config,
        args.init,
        common.joint_names,
        args.seed,
        use_motion=not args.no_motion,
        use_spatial=not args.no_spatial,
    )
    encoder.to(process.device), action.to(process.device)
    check_stage1(encoder, args.stage1_steps)
    data = load_training_data(
        roots=args.data,
        params_path=args.params,
        common=common,
        encoder_config=encoder.config,
        horizon=action.config.horizon,
        joint_map=joint_map,
        camera=args.camera,
        spill_dir=work / f"frames-{process.rank}",
        successful_only=args.successful_only,
        frame_stride=args.frame_stride,
        sample_every=args.sample_every,
        progress=process.progress,
        quiet=process.quiet,
    )
    if action.config.normalization == "rdt":
        data = rdt_units(data, action.config, common.joint_names)
    instructions = instruction_tokens(action, data.instructions, common.instruction_topic, process.quiet)
    if not process.quiet:
        print(
            f"{len(data.episodes)} episodes, {len(data.samples.clips)} samples; "
            f"device {process.device}, {process.world} process(es)"
        )
    return TrainingRun(process, work, generator, encoder, action, data, instructions, recipe)


def sample_instructions(run: TrainingRun) -> list[str]:
    """Each training sample's task instruction ("" where its episode has none)."""
    return [run.data.instructions[episode] for episode in run.data.samples.episode_index]


def resume_and_train_stage1(args: argparse.Namespace, run: TrainingRun) -> dict | None:
    """The saved state, if any, and stage 1 where it is still to do; the
    state stage 2 resumes from (None: from its first step)."""
    resumed = load_state(run.state_path)
    pending = stage1_pending(resumed, args.stage1_steps)
    # Before the weights are restored: a stage 1 state holds the adapters.
    adapters = attach_adapters(run.encoder, run.recipe) if pending else None
    if resumed:
        restore_weights(resumed, run.encoder, run.action, run.state_path)
        if not run.process.quiet:
            print(f"resuming from {run.state_path}: stage {resumed['stage']}, step {resumed['step']}")
    if pending:
        # What stage 1 never runs waits on the host (System 1's head: 4.65 GiB at RDT-1B's size).
        idle = [run.action] + ([run.encoder.image_encoder] if run.encoder.image_encoder is not None else [])
        for module in idle:
            module.to("cpu")
        train_stage1(
            run.encoder,
            run.action,
            run.data.samples.clips,
            run.process,
            steps=args.stage1_steps,
            batch_size=args.batch_size,
            save_every=args.save_every,
            state_path=run.state_path,
            resumed=resumed,
            generator=run.generator,
            recipe=run.recipe,
            adapters=adapters,
            instructions=sample_instructions(run),
        )
        if adapters is not None:
            kept = merge_adapters(run.encoder)
            if not run.process.quiet:
                print(f"stage 1's adapters merged: the weights hold {kept:.0%} of their update")
        for module in idle:
            module.to(run.process.device)
        if not run.process.quiet:
            # Stage 1's weights as they are, whatever step the last save was
            # at: a rerun's feature cache is then computed by these.
            save_state(run.state_path, 2, 0, run.encoder, run.action, None)
        resumed = None
    return resumed


def stage2_features(args: argparse.Namespace, run: TrainingRun, augmentation) -> object:
    """System 2's features for stage 2: scaled per batch for a backbone
    trained end to end, else the feature cache (filled once, resumable)."""
    # Frozen from here on (SigLIP, and a video model): run, and saved, in the recipe's precision.
    run.encoder.freeze_in(run.recipe.dtype)
    if run.encoder.backbone.trained_end_to_end:
        return scale_features(run.encoder, run.data.samples, run.process.progress, augmentation, args.seed)
    key_options = cache_options(
        stage1_steps=args.stage1_steps,
        init=args.init,
        frame_stride=args.frame_stride,
        sample_every=args.sample_every,
        augmentation=augmentation,
        seed=args.seed,
        successful_only=args.successful_only,
        recipe=run.recipe,
    )
    return cached_features(
        run.encoder,
        run.data.samples,
        run.data.sources,
        args.cache_dir or run.work,
        key_options,
        run.process,
        augmentation,
        args.seed,
        sample_instructions(run),
        run.recipe.dtype,
    )


def train(args: argparse.Namespace, joint_map: JointNameMap) -> None:
    """Data, stage 1, the feature cache, stage 2, the checkpoint: resumable
    from `<out>.train/`; under torchrun rank 0 alone writes.

    Args:
        args: the parsed command line.
        joint_map: --strip-joint-suffix and --joint-map.
    """
    run = prepare(args, joint_map)
    resumed = resume_and_train_stage1(args, run)
    augmentation = camera_augmentation(args.camera_augmentation)
    features = stage2_features(args, run, augmentation)
    options = Stage2Options(
        args.steps,
        args.batch_size,
        args.lr,
        args.lr_schedule,
        args.state_noise,
        args.max_staleness,
        args.sample_every,
        args.save_every,
        args.seed,
    )
    final_loss, seconds = train_stage2(
        run.encoder,
        run.action,
        run.data.samples,
        run.data.stats,
        features,
        run.instructions,
        run.process,
        options,
        end_to_end=run.encoder.backbone.trained_end_to_end,
        augmentation=augmentation,
        state_path=run.state_path,
        resumed=resumed,
        generator=run.generator,
        recipe=run.recipe,
    )
    if not run.process.quiet:
        data = run.data
        metadata = training_metadata(
            args,
            data.sources,
            len(data.samples.states),
            data.instructions,
            data.camera_pose,
            data.cameras,
            augmentation,
            final_loss,
            seconds,
            run.process.device,
        )
        metadata["recipe"] = dataclasses.asdict(run.recipe)
        model_id = save_checkpoint(
            args.out, run.encoder, run.action, data.stats, name=args.name, metadata=metadata, overwrite=args.overwrite
        )
        print(f"wrote {args.out} ({model_id})")
    shutil.rmtree(run.spill_dir, ignore_errors=True)
    finish(run.process.world)


if __name__ == "__main__":
    raise SystemExit(main())
