"""LeRobot-format datasets on local disk, read into the same episodes as
rosbag2 recordings. Two layouts:

- v2.0/v2.1 (lerobot < 0.4): one parquet file per episode, one mp4 per
  camera and episode, episodes listed in meta/episodes.jsonl.
- v3.0 (lerobot >= 0.4): episodes concatenated into data/chunk-XXX/file-XXX
  parquet files and per-camera videos/<key>/chunk-XXX/file-XXX mp4 files,
  episodes listed in meta/episodes/chunk-XXX/file-XXX.parquet with the data
  and video file of each and where it starts in its video.

Cameras are videos or, in datasets written without videos, PNG images
embedded in the data parquet files.

Row i of an episode is the observation at its timestamp and the action
taken after it, so frame, state and command all carry that timestamp.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from video2act_core.data.episode import Episode, EpisodeError
from video2act_core.data.images import ImageDecodeError, decode_compressed, resize_frame
from video2act_core.data.joint_names import JointNameMap

SUPPORTED_VERSIONS = ("v2.0", "v2.1", "v3.0")
STATE_KEY, ACTION_KEY, SUCCESS_KEY = "observation.state", "action", "next.success"
CAMERA_DTYPES = ("video", "image")


@dataclass(frozen=True)
class _EpisodeFiles:
    index: int
    data_path: Path
    video_path: Path | None  # None for image cameras
    video_start_s: float  # where the episode starts in its video file


def is_lerobot_dataset(path: Path) -> bool:
    return (path / "meta" / "info.json").is_file()


def _read_info(root: Path) -> dict:
    try:
        info = json.loads((root / "meta" / "info.json").read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise EpisodeError(f"{root}: cannot read LeRobot metadata: {error}") from error
    version = info.get("codebase_version")
    if version not in SUPPORTED_VERSIONS:
        supported = ", ".join(SUPPORTED_VERSIONS)
        raise EpisodeError(f"{root}: LeRobot dataset version {version} is not supported (reads {supported})")
    return info


def _joint_order(feature: dict, joint_names: list[str], key: str, joint_name_map: JointNameMap) -> list[int]:
    names = feature.get("names")
    if isinstance(names, dict):  # {"motors": [...]} in some datasets
        names = next(iter(names.values()), None)
    if not isinstance(names, list):
        raise EpisodeError(f"'{key}' does not name its joints; cannot match them to {joint_names}")
    mapped = joint_name_map.names(names)
    missing = [n for n in joint_names if n not in mapped]
    if missing:
        raise EpisodeError(f"'{key}' lacks joints {missing} (its joints after name mapping: {mapped})")
    return [mapped.index(n) for n in joint_names]


def _episode_files_v2(root: Path, info: dict, camera: str, is_video: bool) -> list[_EpisodeFiles]:
    try:
        lines = (root / "meta" / "episodes.jsonl").read_text().splitlines()
        indices = [json.loads(line)["episode_index"] for line in lines if line]
    except (OSError, json.JSONDecodeError, KeyError) as error:
        raise EpisodeError(f"{root}: cannot read LeRobot metadata: {error}") from error
    files = []
    for index in indices:
        fields = {"episode_chunk": index // info.get("chunks_size", 1000), "episode_index": index, "video_key": camera}
        video = root / info["video_path"].format(**fields) if is_video else None
        files.append(_EpisodeFiles(index, root / info["data_path"].format(**fields), video, 0.0))
    return files


def _episode_files_v3(root: Path, info: dict, camera: str, is_video: bool) -> list[_EpisodeFiles]:
    import pyarrow.parquet as pq

    # The episode tables also hold per-episode statistics of every feature; read only the file references.
    columns = ["episode_index", "data/chunk_index", "data/file_index"]
    if is_video:
        columns += [f"videos/{camera}/chunk_index", f"videos/{camera}/file_index", f"videos/{camera}/from_timestamp"]
    paths = sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    if not paths:
        raise EpisodeError(f"{root}: cannot read LeRobot metadata: no meta/episodes/chunk-*/file-*.parquet")
    try:
        rows = [row for path in paths for row in pq.read_table(path, columns=columns).to_pylist()]
    except (OSError, ValueError) as error:  # pyarrow's errors derive from these
        raise EpisodeError(f"{root}: cannot read LeRobot metadata: {error}") from error
    files = []
    for row in sorted(rows, key=lambda row: row["episode_index"]):
        data = info["data_path"].format(chunk_index=row["data/chunk_index"], file_index=row["data/file_index"])
        video, start = None, 0.0
        if is_video:
            video = root / info["video_path"].format(
                video_key=camera,
                chunk_index=row[f"videos/{camera}/chunk_index"],
                file_index=row[f"videos/{camera}/file_index"],
            )
            start = row[f"videos/{camera}/from_timestamp"]
        files.append(_EpisodeFiles(row["episode_index"], root / data, video, start))
    return files


def _read_rows(files: _EpisodeFiles, columns: list[str], shared_file: bool) -> dict[str, list]:
    """The episode's rows, with `next.success` where the dataset has it; in
    a file `shared_file` with other episodes, only its own rows (lerobot
    writes a row group per episode, so the filter skips the others unread)."""
    import pyarrow.parquet as pq

    try:
        optional = [SUCCESS_KEY] if SUCCESS_KEY in pq.read_schema(files.data_path).names else []
        filters = [("episode_index", "==", files.index)] if shared_file else None
        table = pq.read_table(files.data_path, columns=columns + optional, filters=filters)
    except (OSError, ValueError) as error:  # pyarrow's errors derive from these
        raise EpisodeError(f"{files.data_path}: cannot read episode data: {error}") from error
    if table.num_rows == 0:
        raise EpisodeError(f"{files.data_path}: no rows of episode {files.index}")
    return table.to_pydict()


def _decode_video(
    files: _EpisodeFiles, row_times_s: np.ndarray, fps: float, frame_size: tuple[int, int] | None
) -> np.ndarray:
    """A frame for each row, the one nearest its time; decodes from the key
    frame before the episode's first row to its last, not the whole file."""
    import av

    tolerance = 0.5 / fps
    first, last = files.video_start_s + row_times_s[0], files.video_start_s + row_times_s[-1]
    times, frames = [], []
    try:
        with av.open(str(files.video_path)) as container:
            stream = container.streams.video[0]
            if first > tolerance:
                container.seek(int((first - tolerance) / stream.time_base), stream=stream)  # to the key frame before
            for frame in container.decode(stream):
                if frame.time < first - tolerance:
                    continue
                if frame.time > last + tolerance:
                    break
                if frame_size is not None:
                    frame = frame.reformat(width=frame_size[1], height=frame_size[0])
                times.append(frame.time - files.video_start_s)
                frames.append(frame.to_ndarray(format="rgb24"))
    except (av.error.FFmpegError, OSError) as error:
        raise EpisodeError(f"{files.video_path}: cannot decode video: {error}") from error
    if not frames:
        raise EpisodeError(f"{files.video_path}: no video frames for episode {files.index}")
    times = np.asarray(times)
    # Rounding the fractional position among the (increasing) frame times picks the nearer neighbour.
    nearest = np.rint(np.interp(row_times_s, times, np.arange(len(times)))).astype(int)
    # A video may end one frame early; that last row is dropped by the caller.
    late = np.abs(row_times_s - times[nearest]) > tolerance
    if late[:-1].any():
        raise EpisodeError(
            f"episode {files.index}: no video frame within {tolerance:.3f} s of row "
            f"{int(np.argmax(late))} ({len(frames)} frames for {len(row_times_s)} rows)"
        )
    return np.stack([frames[i] for i in nearest[: len(nearest) - int(late[-1])]])


def _decode_images(encoded: list[dict], frame_size: tuple[int, int] | None, where: Path) -> np.ndarray:
    """PNG bytes per row ({"bytes": ..., "path": ...}, as Hugging Face datasets
    store images), by the project's one decoder, resized as bag frames are."""
    frames = []
    try:
        for item in encoded:
            frame = decode_compressed("png", item["bytes"])
            frames.append(resize_frame(frame, frame_size) if frame_size is not None else frame)
    except (ImageDecodeError, TypeError) as error:
        raise EpisodeError(f"{where}: cannot decode image: {error}") from error
    return np.stack(frames)


def read_lerobot_dataset(
    root: str | Path,
    joint_names: list[str],
    camera: str | None = None,
    frame_size: tuple[int, int] | None = None,
    joint_name_map: JointNameMap | None = None,
) -> list[Episode]:
    """Every episode of a dataset; `camera` picks a camera key (default: the
    first), `frame_size` (H, W) resizes frames as they are decoded and
    `joint_name_map` renames the dataset's joints before they are matched
    to `joint_names`."""
    root = Path(root)
    info = _read_info(root)  # first: other versions keep their metadata elsewhere
    features = info["features"]
    cameras = [key for key, value in features.items() if value.get("dtype") in CAMERA_DTYPES]
    if not cameras:
        raise EpisodeError(f"{root}: no camera features (of dtype {' or '.join(CAMERA_DTYPES)})")
    camera = camera or cameras[0]
    if camera not in cameras:
        raise EpisodeError(f"{root}: no camera '{camera}' (has {cameras})")
    is_video = features[camera]["dtype"] == "video"
    joint_name_map = joint_name_map or JointNameMap()
    state_order = _joint_order(features[STATE_KEY], joint_names, STATE_KEY, joint_name_map)
    action_order = _joint_order(features[ACTION_KEY], joint_names, ACTION_KEY, joint_name_map)

    is_v3 = info["codebase_version"] == "v3.0"
    episode_files = (_episode_files_v3 if is_v3 else _episode_files_v2)(root, info, camera, is_video)
    tasks = _tasks(root, is_v3)
    columns = ["timestamp", STATE_KEY, ACTION_KEY] + ([] if is_video else [camera]) + (["task_index"] if tasks else [])
    episodes = []
    for files in episode_files:
        table = _read_rows(files, columns, shared_file=is_v3)
        times_s = np.asarray(table["timestamp"], np.float64)
        if is_video:
            frames = _decode_video(files, times_s, info["fps"], frame_size)
        else:
            frames = _decode_images(table[camera], frame_size, files.data_path)
        rows = len(frames)
        stamps = np.round(times_s[:rows] * 1e9).astype(np.int64)
        states = np.asarray(table[STATE_KEY], np.float64)[:rows, state_order]
        actions = np.asarray(table[ACTION_KEY], np.float64)[:rows, action_order]
        success = bool(table[SUCCESS_KEY][rows - 1]) if SUCCESS_KEY in table else False
        instruction = ""
        if tasks:
            indices = set(table["task_index"][:rows])
            if len(indices) > 1:
                raise EpisodeError(
                    f"{files.data_path}: an episode with several tasks {sorted(indices)}; "
                    "one task per episode is supported"
                )
            instruction = tasks.get(int(indices.pop()), "")
        episodes.append(Episode(stamps, frames, stamps, states, stamps, actions, success, instruction=instruction))
    return episodes


def _tasks(root: Path, is_v3: bool) -> dict[int, str]:
    """task_index -> task instruction: meta/tasks.jsonl (v2.x) or
    meta/tasks.parquet (v3.0, written by pandas with the task as its index)."""
    if not is_v3:
        path = root / "meta" / "tasks.jsonl"
        if not path.is_file():
            return {}
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return {int(row["task_index"]): str(row["task"]) for row in rows}
    path = root / "meta" / "tasks.parquet"
    if not path.is_file():
        return {}
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    names = table.column_names
    column = "task" if "task" in names else (table.schema.pandas_metadata or {}).get("index_columns", [None])[0]
    if column not in names:
        raise EpisodeError(f"{path}: no task column (has {names})")
    return {int(i): str(t) for i, t in zip(table.column("task_index").to_pylist(), table.column(column).to_pylist())}
