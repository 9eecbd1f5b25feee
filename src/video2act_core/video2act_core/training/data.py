"""What training learns from: recorded episodes (rosbag2 directories and
LeRobot datasets) turned into samples, their task instructions, the camera
pose they agree on, and how camera augmentation is applied to a clip.

Frames are read at the model's input size and spilled to memory-mapped
files episode by episode, so memory does not grow with the recordings'
length or resolution; samples are frame indices into them.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from video2act_core.camera_pose import CameraPose, demonstrations_camera_pose
from video2act_core.data.augmentation import CameraAugmentation
from video2act_core.data.episode import Episode, EpisodeTopics
from video2act_core.data.frames import ViewSpec
from video2act_core.data.joint_names import JointNameMap
from video2act_core.data.samples import Samples, keep_every, load_episodes, load_samples
from video2act_core.models.conditions import Instruction, encoded_instruction
from video2act_core.normalization import NormalizationStats
from video2act_core.params import CommonParams, PerceptionParams, SimArmParams, node_params
from video2act_core.processing import views_to_tensor


@dataclass
class TrainingData:
    """The demonstrations as training reads them."""

    episodes: list[Episode]
    sources: list[str]  # a name per episode: its bag, or `<dataset>#<index>`
    samples: Samples  # every --sample-every'th commanded step
    stats: NormalizationStats  # of every step, not only the kept ones
    instructions: list[str]  # per episode, stripped ("" where none was recorded)
    camera_pose: CameraPose | None  # the one pose all episodes record, else None
    cameras: list[str]  # the image-token cameras' topics, in order ([] without image tokens)


def camera_topics(common: CommonParams, view_cameras: int, params_path: Path) -> list[str]:
    """The camera topics to read: the video camera, then the others whose
    frames give image tokens.

    Args:
        common: the params file's common parameters.
        view_cameras: how many cameras the model makes image tokens from.
        params_path: the params file, named in the error.

    Returns:
        [image_topic, *the first view_cameras - 1 extra_camera_topics].

    Raises:
        SystemExit: the params file names too few extra cameras.
    """
    if view_cameras > 1 + len(common.extra_camera_topics):
        raise SystemExit(
            f"the model makes image tokens from {view_cameras} cameras: name {view_cameras - 1} in "
            f"extra_camera_topics (in {params_path}), it names {common.extra_camera_topics}"
        )
    return [common.image_topic, *common.extra_camera_topics][: max(view_cameras, 1)]


def load_training_data(
    *,
    roots: list[Path],
    params_path: Path,
    common: CommonParams,
    encoder_config,
    horizon: int,
    joint_map: JointNameMap,
    camera: str | None,
    spill_dir: Path,
    successful_only: bool,
    frame_stride: int,
    sample_every: int,
    progress: Callable,
    quiet: bool,
) -> TrainingData:
    """Reads the episodes under `roots` and makes the training samples.

    Args:
        roots: bag directories, folders of them, or LeRobot dataset roots (--data).
        params_path: the ROS 2 params file (topics, success topic, camera pose tolerances).
        common: its common parameters (topics, joints, frames).
        encoder_config: System 2's config (input size, frames, image-token cameras).
        horizon: System 1's action chunk length.
        joint_map: renames recorded joints to ours.
        camera: the LeRobot camera key to read (None: the first).
        spill_dir: where frames are spilled; emptied first (one per rank).
        successful_only: leave out episodes that never record success.
        frame_stride: frames between a clip's frames.
        sample_every: keep every Nth commanded step of each episode.
        progress: wraps the sources in a progress bar.
        quiet: print nothing (ranks other than 0).

    Returns:
        The episodes, samples, statistics, instructions and camera pose.

    Raises:
        SystemExit: too few cameras named, or no successful episode with --successful-only.
    """
    sim = node_params(SimArmParams, params_path, "video2act_sim_arm")
    views = encoder_config.view_cameras
    cameras = camera_topics(common, views, params_path)
    topics = EpisodeTopics(
        common.image_topic,
        common.joint_states_topic,
        common.trajectory_topic,
        sim.success_topic,
        common.instruction_topic,
        tuple(cameras[1:]),
    )
    # Frames at the model's input size, spilled to disk episode by episode:
    # memory does not grow with the recordings' length or resolution.
    shutil.rmtree(spill_dir, ignore_errors=True)
    episodes, sources = load_episodes(
        roots,
        topics,
        common.joint_names,
        (encoder_config.image_height, encoder_config.image_width),
        (common.base_frame, common.camera_frame),
        joint_map,
        camera,
        spill_dir,
        lambda sources: progress(sources, desc="reading episodes", unit="source"),
    )
    if successful_only:
        episodes, sources = successful_episodes(episodes, sources, topics.success, quiet)
    camera_pose = agreed_camera_pose(episodes, params_path, quiet)
    samples, stats = load_samples(
        episodes, common.joint_names, encoder_config.num_frames, horizon, frame_stride, ViewSpec.of(encoder_config)
    )
    samples = keep_every(samples, sample_every)  # statistics stay those of every step
    instructions = [episode.instruction.strip() for episode in episodes]
    return TrainingData(episodes, sources, samples, stats, instructions, camera_pose, cameras if views else [])


def successful_episodes(
    episodes: list[Episode], sources: list[str], success_topic: str, quiet: bool
) -> tuple[list[Episode], list[str]]:
    """The episodes that record success (--successful-only), with their
    sources: a scripted expert's failures teach the head to fail.

    Args:
        episodes, sources: every episode read, and its name.
        success_topic: the bags' success topic, named in the error.
        quiet: print nothing (ranks other than 0).

    Returns:
        (episodes, sources) of the successful episodes, in their order.

    Raises:
        SystemExit: none records success.
    """
    kept = [index for index, episode in enumerate(episodes) if episode.success]
    if not kept:
        raise SystemExit(
            f"--successful-only: none of the {len(episodes)} episodes records success "
            f"(on {success_topic} or in a LeRobot dataset's next.success)"
        )
    if not quiet:
        print(f"--successful-only: training on {len(kept)} of {len(episodes)} episodes")
    return [episodes[index] for index in kept], [sources[index] for index in kept]


def agreed_camera_pose(episodes: list[Episode], params_path: Path, quiet: bool) -> CameraPose | None:
    """The camera pose every episode records, within perception's
    tolerances: the checkpoint records it and perception compares it with
    the robot's tf at start-up. Warns (on rank 0) when there is none.

    Args:
        episodes: the episodes trained on.
        params_path: the params file with perception's tolerances.
        quiet: print nothing (ranks other than 0).

    Returns:
        The pose, or None when some episode records none or the camera moved.
    """
    perception = node_params(PerceptionParams, params_path, "video2act_perception")
    camera_pose, no_camera_pose = demonstrations_camera_pose(
        [episode.camera_pose for episode in episodes],
        perception.camera_pose_tolerance_m,
        np.radians(perception.camera_pose_tolerance_deg),
    )
    if no_camera_pose and not quiet:
        print(f"warning: the checkpoint will record no camera pose: {no_camera_pose}")
    return camera_pose


def instruction_tokens(action, instructions: list[str], instruction_topic: str, quiet: bool) -> Instruction | None:
    """Every episode's instruction, tokenized once by System 1's text
    encoder; each batch then picks its samples' rows.

    Args:
        action: System 1's action head.
        instructions: per episode ("" for none: it trains on the empty one).
        instruction_topic: the bags' instruction topic, named in the warning.
        quiet: print nothing (ranks other than 0).

    Returns:
        The tokens, one row per episode (with a frozen encoder's words,
        encoded once per distinct instruction), or None for a head without
        language.
    """
    if not action.config.language:
        return None
    unnamed = sum(not text for text in instructions)
    if unnamed and not quiet:
        print(
            f"warning: {unnamed} of {len(instructions)} episodes have no task instruction "
            f"(on {instruction_topic} or in the dataset's tasks); they train on the empty one"
        )
    distinct = sorted(set(instructions))
    text_encoder = action.model.text_encoder
    ids, mask = text_encoder.tokenize(distinct)
    device = next(action.model.parameters()).device
    once = encoded_instruction(text_encoder, ids.to(device), mask.to(device))
    if once.words is not None:
        text_encoder.to("cpu")  # frozen, its words kept: it waits on the host from here
    rows = torch.tensor([distinct.index(text) for text in instructions])
    words = None if once.words is None else once.words[rows].cpu()
    return Instruction(ids[rows], mask[rows], words)


def rdt_units(data: TrainingData, config, joint_names: list[str]) -> TrainingData:
    """The data normalised in RDT's units (`DiTConfig.normalization: rdt`):
    joints as recorded, the joints at RDT's gripper slots min-max to [0, 1]."""
    from video2act_core.models.rdt import GRIPPER_SLOTS

    grippers = [index in GRIPPER_SLOTS for index in config.unified_indices]
    samples = data.samples
    return replace(data, stats=NormalizationStats.in_rdt_units(joint_names, grippers, samples.states, samples.actions))


def camera_augmentation(probability: float) -> CameraAugmentation | None:
    """The augmentation for --camera-augmentation P.

    Args:
        probability: share of clips augmented.

    Returns:
        The augmentation, or None for P <= 0 (none).
    """
    return CameraAugmentation(probability) if probability > 0 else None


def augmented(frames: np.ndarray, augmentation: CameraAugmentation | None, rng: np.random.Generator) -> np.ndarray:
    """`frames` with a real camera's noise, gain, flicker and shake (drawn
    from `rng`), or as they are without augmentation.

    Args:
        frames: (K, H, W, 3) uint8.
        augmentation: the augmentation, or None.
        rng: draws its parameters.

    Returns:
        The (augmented) frames.
    """
    return augmentation(frames, rng) if augmentation else frames


def camera_frames(views: np.ndarray, augmentation: CameraAugmentation | None, rng: np.random.Generator) -> torch.Tensor:
    """One sample's image-token camera frames, each camera augmented on its
    own, as real cameras differ.

    Args:
        views: (V, K, H, W, 3) uint8.
        augmentation: the augmentation, or None.
        rng: draws its parameters.

    Returns:
        (V, K, 3, H, W) floats.
    """
    return views_to_tensor([augmented(camera, augmentation, rng) for camera in views])[0]
