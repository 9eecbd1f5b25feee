"""Time-aligned training samples from recorded episodes.

At every commanded step t_k of an episode a sample holds the camera clip
ending at the newest frame captured at or before t_k (the first frame
repeated at the episode start), the newest joint state at or before t_k,
and the next `horizon` commanded targets (the last one repeated at the
episode end): exactly what the nodes see and produce at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from video2act_core.data.bags import BagError, Episode, EpisodeTopics, read_episode
from video2act_core.data.frames import clip_frame_indices
from video2act_core.data.joint_names import JointNameMap
from video2act_core.data.lerobot import is_lerobot_dataset, read_lerobot_dataset
from video2act_core.normalization import NormalizationStats


@dataclass
class Samples:
    clips: list[np.ndarray]  # each (T, H, W, 3) uint8
    states: np.ndarray  # (N, J)
    actions: np.ndarray  # (N, horizon, J)
    episode_index: np.ndarray  # (N,) which episode each sample came from


def find_episode_bags(roots: list[Path]) -> list[Path]:
    """Every rosbag2 directory (one with metadata.yaml) under the roots."""
    bags = []
    for root in roots:
        if (root / "metadata.yaml").is_file():
            bags.append(root)
        else:
            bags.extend(sorted(p.parent for p in root.rglob("metadata.yaml")))
    if not bags:
        raise BagError(f"no rosbag2 directories (with metadata.yaml) under {[str(r) for r in roots]}")
    return bags


def load_episodes(
    roots: list[Path], topics: EpisodeTopics, joint_names: list[str], frame_size: tuple[int, int] | None = None,
    camera_frames: tuple[str, str] | None = None, joint_name_map: JointNameMap | None = None,
    camera: str | None = None,
) -> tuple[list[Episode], list[str]]:
    """Episodes from rosbag2 directories (one episode each) and LeRobot
    datasets (many each) under the roots, and a name for each source;
    `camera_frames` (base, camera) as for `read_episode`, `joint_name_map`
    renames recorded joints, `camera` picks a LeRobot dataset's camera."""
    episodes, sources = [], []
    for root in roots:
        if is_lerobot_dataset(root):
            found = read_lerobot_dataset(root, joint_names, camera, frame_size, joint_name_map)
            episodes += found
            sources += [f"{root}#{i}" for i in range(len(found))]
        else:
            for bag in find_episode_bags([root]):
                episodes.append(read_episode(bag, topics, joint_names, camera_frames, joint_name_map=joint_name_map))
                sources.append(str(bag))
    return episodes, sources


def episode_samples(episode: Episode, num_frames: int, horizon: int, frame_stride: int = 1) -> Samples:
    clips, states, actions = [], [], []
    for k, stamp in enumerate(episode.command_stamps_ns):
        newest = int(np.searchsorted(episode.image_stamps_ns, stamp, side="right")) - 1
        state = int(np.searchsorted(episode.state_stamps_ns, stamp, side="right")) - 1
        if newest < 0 or state < 0:
            continue  # commanded before the first frame or joint state: nothing to condition on
        frame_indices = clip_frame_indices(newest, num_frames, frame_stride)
        future = np.minimum(np.arange(k, k + horizon), len(episode.commands) - 1)
        clips.append(episode.images[frame_indices])
        states.append(episode.states[state])
        actions.append(episode.commands[future])
    if not clips:
        raise BagError("episode has no command with a frame and a joint state before it")
    return Samples(clips, np.stack(states), np.stack(actions), np.zeros(len(clips), np.int64))


def load_samples(
    episodes: list[Episode], joint_names: list[str], num_frames: int, horizon: int, frame_stride: int = 1
) -> tuple[Samples, NormalizationStats]:
    parts = []
    for index, episode in enumerate(episodes):
        samples = episode_samples(episode, num_frames, horizon, frame_stride)
        samples.episode_index[:] = index
        parts.append(samples)
    merged = Samples(
        [clip for part in parts for clip in part.clips],
        np.concatenate([p.states for p in parts]),
        np.concatenate([p.actions for p in parts]),
        np.concatenate([p.episode_index for p in parts]),
    )
    return merged, NormalizationStats.from_data(joint_names, merged.states, merged.actions)


def first_sample_of_episode(episode_index: np.ndarray) -> np.ndarray:
    """For each sample, the index of its episode's first sample (samples of
    an episode are consecutive, one per commanded step)."""
    starts = np.flatnonzero(np.r_[True, episode_index[1:] != episode_index[:-1]])
    return starts[np.searchsorted(starts, np.arange(len(episode_index)), side="right") - 1]


def keep_every(samples: Samples, every: int) -> Samples:
    """Every `every`-th step of each episode, from its first."""
    if every < 1:
        raise ValueError(f"keep every N-th step needs N >= 1, got {every}")
    step_in_episode = np.arange(len(samples.episode_index)) - first_sample_of_episode(samples.episode_index)
    kept = np.flatnonzero(step_in_episode % every == 0)
    return Samples([samples.clips[i] for i in kept], samples.states[kept], samples.actions[kept],
                   samples.episode_index[kept])
