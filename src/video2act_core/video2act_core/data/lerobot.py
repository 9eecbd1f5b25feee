"""LeRobot-format datasets on local disk (codebase v2.0/v2.1: one parquet
file per episode, one mp4 per camera and episode, meta/info.json and
meta/episodes.jsonl), read into the same episodes as rosbag2 recordings.

Row i of an episode is the observation at its timestamp and the action
taken after it, so frame, state and command all carry that timestamp.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from video2act_core.data.bags import BagError, Episode

SUPPORTED_VERSIONS = ("v2.0", "v2.1")
STATE_KEY, ACTION_KEY = "observation.state", "action"


def is_lerobot_dataset(path: Path) -> bool:
    return (path / "meta" / "info.json").is_file()


def _joint_order(feature: dict, joint_names: list[str], key: str) -> list[int]:
    names = feature.get("names")
    if isinstance(names, dict):  # {"motors": [...]} in some datasets
        names = next(iter(names.values()), None)
    if not isinstance(names, list):
        raise BagError(f"'{key}' does not name its joints; cannot match them to {joint_names}")
    missing = [n for n in joint_names if n not in names]
    if missing:
        raise BagError(f"'{key}' lacks joints {missing} (has {names})")
    return [names.index(n) for n in joint_names]


def _decode_video(path: Path, frame_size: tuple[int, int] | None) -> np.ndarray:
    import av

    frames = []
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                if frame_size is not None:
                    frame = frame.reformat(width=frame_size[1], height=frame_size[0])
                frames.append(frame.to_ndarray(format="rgb24"))
    except (av.error.FFmpegError, OSError) as error:
        raise BagError(f"{path}: cannot decode video: {error}") from error
    if not frames:
        raise BagError(f"{path}: video has no frames")
    return np.stack(frames)


def read_lerobot_dataset(
    root: str | Path, joint_names: list[str], camera: str | None = None, frame_size: tuple[int, int] | None = None
) -> list[Episode]:
    """Every episode of a dataset; `camera` picks a video key (default: the
    first), `frame_size` (H, W) resizes frames as they are decoded."""
    import pyarrow.parquet as pq

    root = Path(root)
    try:
        info = json.loads((root / "meta" / "info.json").read_text())
        episodes_meta = [json.loads(line) for line in (root / "meta" / "episodes.jsonl").read_text().splitlines() if line]
    except (OSError, json.JSONDecodeError) as error:
        raise BagError(f"{root}: cannot read LeRobot metadata: {error}") from error
    version = info.get("codebase_version")
    if version not in SUPPORTED_VERSIONS:
        raise BagError(f"{root}: LeRobot dataset version {version} is not supported (reads {SUPPORTED_VERSIONS})")
    features = info["features"]
    videos = [key for key, value in features.items() if value.get("dtype") == "video"]
    if not videos:
        raise BagError(f"{root}: no video features (image datasets stored as PNG are not supported)")
    camera = camera or videos[0]
    if camera not in videos:
        raise BagError(f"{root}: no camera '{camera}' (has {videos})")
    state_order = _joint_order(features[STATE_KEY], joint_names, STATE_KEY)
    action_order = _joint_order(features[ACTION_KEY], joint_names, ACTION_KEY)

    episodes = []
    for meta in episodes_meta:
        index = meta["episode_index"]
        fields = {"episode_chunk": index // info.get("chunks_size", 1000), "episode_index": index, "video_key": camera}
        data_path = root / info["data_path"].format(**fields)
        try:
            table = pq.read_table(data_path).to_pydict()
        except (OSError, ValueError) as error:  # pyarrow's errors derive from these
            raise BagError(f"{data_path}: cannot read episode data: {error}") from error
        stamps = np.round(np.asarray(table["timestamp"], np.float64) * 1e9).astype(np.int64)
        states = np.asarray(table[STATE_KEY], np.float64)[:, state_order]
        actions = np.asarray(table[ACTION_KEY], np.float64)[:, action_order]
        frames = _decode_video(root / info["video_path"].format(**fields), frame_size)
        if abs(len(frames) - len(stamps)) > 1:
            raise BagError(f"episode {index}: {len(frames)} video frames for {len(stamps)} rows")
        rows = min(len(frames), len(stamps))
        success = bool(table["next.success"][rows - 1]) if "next.success" in table else False
        episodes.append(Episode(stamps[:rows], frames[:rows], stamps[:rows], states[:rows], stamps[:rows],
                                actions[:rows], success))
    return episodes
