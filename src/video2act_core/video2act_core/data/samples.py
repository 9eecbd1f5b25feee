"""Time-aligned training samples from recorded episodes.

At every commanded step t_k of an episode a sample holds the camera clip
ending at the newest frame captured at or before t_k (the first frame
repeated at the episode start), the newest joint state at or before t_k,
and the next `horizon` commanded targets (the last one repeated at the
episode end): exactly what the nodes see and produce at run time.

Memory stays bounded by one episode: frames are resized to the model's
input as they are decoded, can be spilled to memory-mapped files on disk
episode by episode, and a clip is T frame indices, not T frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from video2act_core.data.episode import Episode, EpisodeError, EpisodeTopics
from video2act_core.data.frames import ViewSpec, clip_frame_indices, view_frame_indices
from video2act_core.data.joint_names import JointNameMap
from video2act_core.data.lerobot import is_lerobot_dataset, read_lerobot_dataset
from video2act_core.data.rosbag import read_episode
from video2act_core.normalization import NormalizationStats


class Clips(Sequence):
    """Camera clips as indices into their episodes' frames: clip i is
    frames[episode[i]][frame_indices[i]], a (T, H, W, 3) uint8 array made
    when it is read."""

    def __init__(self, frames: list[np.ndarray], episode: np.ndarray, frame_indices: np.ndarray):
        self.frames, self.episode, self.frame_indices = frames, episode, frame_indices

    def __len__(self) -> int:
        return len(self.episode)

    def __getitem__(self, i) -> np.ndarray:
        return self.frames[self.episode[i]][self.frame_indices[i]]

    def subset(self, kept: np.ndarray) -> Clips:
        return Clips(self.frames, self.episode[kept], self.frame_indices[kept])


class Views(Sequence):
    """Every camera's frames for the image tokens, as indices: item i is a
    (V, K, H, W, 3) uint8 array, camera v's frames
    cameras[episode[i]][v][frame_indices[i, v]] (the video camera first)."""

    def __init__(self, cameras: list[list[np.ndarray]], episode: np.ndarray, frame_indices: np.ndarray):
        self.cameras, self.episode, self.frame_indices = cameras, episode, frame_indices

    def __len__(self) -> int:
        return len(self.episode)

    def __getitem__(self, i) -> np.ndarray:
        cameras = self.cameras[self.episode[i]]
        return np.stack([camera[indices] for camera, indices in zip(cameras, self.frame_indices[i])])

    def subset(self, kept: np.ndarray) -> Views:
        return Views(self.cameras, self.episode[kept], self.frame_indices[kept])


@dataclass
class Samples:
    clips: Clips
    states: np.ndarray  # (N, J)
    actions: np.ndarray  # (N, horizon, J)
    episode_index: np.ndarray  # (N,) which episode each sample came from
    views: Views | None = None  # the cameras' frames for the image tokens, when the model has them


def find_episode_bags(roots: list[Path]) -> list[Path]:
    """Every rosbag2 directory (one with metadata.yaml) under the roots."""
    bags = []
    for root in roots:
        if (root / "metadata.yaml").is_file():
            bags.append(root)
        else:
            bags.extend(sorted(p.parent for p in root.rglob("metadata.yaml")))
    if not bags:
        raise EpisodeError(f"no rosbag2 directories (with metadata.yaml) under {[str(r) for r in roots]}")
    return bags


def load_episodes(
    roots: list[Path],
    topics: EpisodeTopics,
    joint_names: list[str],
    frame_size: tuple[int, int] | None = None,
    camera_frames: tuple[str, str] | None = None,
    joint_name_map: JointNameMap | None = None,
    camera: str | None = None,
    spill_dir: Path | None = None,
    progress=None,
) -> tuple[list[Episode], list[str]]:
    """Episodes from rosbag2 directories (one episode each) and LeRobot
    datasets (many each) under the roots, and a name for each source;
    `camera_frames` (base, camera) as for `read_episode`, `joint_name_map`
    renames recorded joints, `camera` picks a LeRobot dataset's camera.
    With `spill_dir` each episode's frames go to a .npy file there and are
    memory-mapped back; `progress` wraps the sources (e.g. tqdm)."""

    def spilled(episode: Episode) -> Episode:
        if spill_dir is None:
            return episode
        for camera, recording in enumerate([episode, *episode.extra_cameras]):
            path = spill_dir / f"frames_{len(episodes):06d}_{camera}.npy"
            np.save(path, recording.images)
            recording.images = np.load(path, mmap_mode="r")
        return episode

    if spill_dir is not None:
        spill_dir.mkdir(parents=True, exist_ok=True)
    datasets = [root for root in roots if is_lerobot_dataset(root)]
    bags = find_episode_bags([root for root in roots if root not in datasets]) if len(datasets) < len(roots) else []
    episodes, sources = [], []
    for source in (progress or iter)(datasets + bags):
        if source in datasets:
            found = read_lerobot_dataset(source, joint_names, camera, frame_size, joint_name_map)
            sources += [f"{source}#{i}" for i in range(len(found))]
            for episode in found:
                episodes.append(spilled(episode))
        else:
            episode = read_episode(
                source, topics, joint_names, camera_frames, joint_name_map=joint_name_map, frame_size=frame_size
            )
            episodes.append(spilled(episode))
            sources.append(str(source))
    return episodes, sources


def episode_cameras(episode: Episode, views: ViewSpec) -> list[tuple[np.ndarray, np.ndarray]]:
    """(stamps, images) of the cameras that give the image tokens."""
    cameras = [(episode.image_stamps_ns, episode.images)]
    cameras += [(recording.stamps_ns, recording.images) for recording in episode.extra_cameras]
    if len(cameras) < views.cameras:
        raise EpisodeError(
            f"the model reads {views.cameras} cameras for its image tokens, the episode has "
            f"{len(cameras)}: name the others in extra_camera_topics"
        )
    return cameras[: views.cameras]


def episode_samples(
    episode: Episode, num_frames: int, horizon: int, frame_stride: int = 1, views: ViewSpec | None = None
) -> Samples:
    cameras = episode_cameras(episode, views) if views else []
    frame_indices, view_indices, states, actions = [], [], [], []
    for k, stamp in enumerate(episode.command_stamps_ns):
        newest = int(np.searchsorted(episode.image_stamps_ns, stamp, side="right")) - 1
        state = int(np.searchsorted(episode.state_stamps_ns, stamp, side="right")) - 1
        if newest < 0 or state < 0:
            continue  # commanded before the first frame or joint state: nothing to condition on
        # Every camera's frames at the video camera's newest, as the live node picks them.
        picked = [
            view_frame_indices(stamps, episode.image_stamps_ns[newest], views.history, views.spacing_ns)
            for stamps, _ in cameras
        ]
        if any(indices is None for indices in picked):
            continue  # a camera without a frame yet: the live node waits too
        future = np.minimum(np.arange(k, k + horizon), len(episode.commands) - 1)
        frame_indices.append(clip_frame_indices(newest, num_frames, frame_stride))
        view_indices.append(np.stack(picked) if views else np.zeros((0, 0), np.int64))
        states.append(episode.states[state])
        actions.append(episode.commands[future])
    if not frame_indices:
        raise EpisodeError("episode has no command with a frame of every camera and a joint state before it")
    episode_index = np.zeros(len(frame_indices), np.int64)
    view_clips = Views([[images for _, images in cameras]], episode_index, np.stack(view_indices)) if views else None
    return Samples(
        Clips([episode.images], episode_index, np.stack(frame_indices)),
        np.stack(states),
        np.stack(actions),
        episode_index,
        view_clips,
    )


def load_samples(
    episodes: list[Episode],
    joint_names: list[str],
    num_frames: int,
    horizon: int,
    frame_stride: int = 1,
    views: ViewSpec | None = None,
) -> tuple[Samples, NormalizationStats]:
    parts = []
    for index, episode in enumerate(episodes):
        samples = episode_samples(episode, num_frames, horizon, frame_stride, views)
        samples.episode_index[:] = index
        parts.append(samples)
    episode_index = np.concatenate([p.episode_index for p in parts])
    clips = Clips(
        [episode.images for episode in episodes], episode_index, np.concatenate([p.clips.frame_indices for p in parts])
    )
    view_clips = (
        Views(
            [part.views.cameras[0] for part in parts],
            episode_index,
            np.concatenate([part.views.frame_indices for part in parts]),
        )
        if views
        else None
    )
    merged = Samples(
        clips,
        np.concatenate([p.states for p in parts]),
        np.concatenate([p.actions for p in parts]),
        episode_index,
        view_clips,
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
    return Samples(
        samples.clips.subset(kept),
        samples.states[kept],
        samples.actions[kept],
        samples.episode_index[kept],
        samples.views.subset(kept) if samples.views else None,
    )
