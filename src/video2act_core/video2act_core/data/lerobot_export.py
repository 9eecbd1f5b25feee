"""Recorded rosbag2 episodes (ours, or a robot's) written as a LeRobot
dataset, codebase v3.0 (what lerobot >= 0.4 writes and reads), so that the
field's tools read our recordings:

    python -m video2act_core.data.lerobot_export --bags data/demos --out data/demos_lerobot \\
        [--fps 10] [--params config/video2act.yaml] [--task "reach the red square"]

Each bag is one episode. Topics are the params file's (`/**`: image_topic,
extra_camera_topics, joint_states_topic, trajectory_topic,
instruction_topic; the sim arm's success_topic) unless named:
`--image-topic`, `--joint-states-topic`, `--command-topic`,
`--strip-joint-suffix` and `--joint-map` as replay and train take them.

Rows. An episode becomes rows on a fixed grid of `--fps` rows per second
(default: the first bag's camera rate as recorded, frames over the time
they span, rounded to a whole number, as LeRobot's fps is one), starting
at the first camera frame that has a joint state at or before it and a
command before its period ends, and ending at the last frame. Row r:

- its frame: the camera frame nearest to the grid time t0 + r/fps, so
  camera jitter neither drops nor repeats frames; each extra camera's
  likewise. Its capture stamp is the row's observation time tau_r.
- observation.state: the newest joint state at or before tau_r (the
  params file's joint_names, in that order).
- action: the first command issued at or after tau_r and before the next
  row's (other) frame (the command decided on this observation: training pairs a
  command with the newest frame at or before it, as the live nodes see
  them); when none was issued in that time, the command in force (the
  newest before tau_r), as a controller holds it. A command is the first
  point of a recorded JointTrajectory, as read_episode reads it.
- timestamp r/fps (LeRobot's convention; tau_r - tau_0 differs from it by
  the camera's jitter, at most half a period where no frame repeats);
  frame_index r; index, the row's place in the dataset; episode_index;
  task_index.
- next.success (only where a bag has messages on the success topic):
  whether success was recorded before the row's period ends, latched; the
  last row carries whether the bag ever records it, so our reader's episode
  success equals read_episode's.
- task: `--task`, else the instruction the bag records, else "".

Read back by our reader (video2act_core.data.lerobot) the rows give the
bag's states and commands at those times exactly (float32), its frames
through the codec's loss, at timestamps r/fps. To train our policy on the
export as on the bag, export at the command rate (`--fps` =
1/action_period_s): a row's next rows are then the next commands. An fps
more than 5% above a bag's camera rate is refused (rows would repeat
frames); a camera between whole rates (16.7 Hz, rounded to 17 fps)
repeats a frame now and then, and a camera's gap repeats the frame before
it: the command line says how many per episode. Below the camera's rate
rows skip frames (and the commands between them).

Cameras: observation.images.<name>, <name> from the topic
(`/cam/color/image_raw` -> cam_color; `--camera-names` overrides), the
image topic's first. Each camera is one AV1 video (libsvtav1, yuv420p,
g=2, crf 30, preset 12: lerobot 0.4.4's own encoder settings) when this
PyAV can encode AV1 (the av wheels can), else H.264 (libx264; `--codec`
picks one). lerobot 0.4.4 decodes both with either of its decoders
(torchcodec, its default, which needs the system's FFmpeg libraries, and
pyav): test/fixtures/lerobot_export/read_by_lerobot.json is what it read
from our AV1 export. Frames keep their recorded size; every episode of a
camera must share it.

Layout as lerobot 0.4.4 writes it: data/chunk-000/file-000.parquet (a row
group per episode), videos/<key>/chunk-000/file-000.mp4 (episodes
concatenated, each from `from_timestamp`), meta/info.json, meta/stats.json,
meta/tasks.parquet, meta/episodes/chunk-000/file-000.parquet (file
references, per-episode stats). A file that has grown past 100 MB (data)
or 200 MB (video, as far as the encoder has written it) is closed and the
next episode starts the next file.
Stats are computed as lerobot computes them (per-episode histograms of
5000 bins for the quantiles, images sampled and scaled to [0, 1], then
aggregated), except that image std is computed in floating point: lerobot
0.4.4 squares uint8 pixels, which overflows and gives std 0.

Memory is bounded by one episode, not by the number of episodes: its
decoded frames (every camera), two to three times over while read_episode
stacks them (a 10 s 640x480 30 Hz episode, 276 MB of frames: 0.94 GB peak
RSS, 0.23 GB of it the interpreter's own; 7 s on 2 cores). The
dataset is written to a temporary sibling of --out and renamed when
complete; an existing --out is refused. A bag without images, joint
states or commands, or with another frame size, is a one-line error
(exit status 1; `--debug` for the traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from video2act_core.data.episode import Episode, EpisodeError, EpisodeTopics
from video2act_core.data.images import COMPRESSED_SUFFIX
from video2act_core.data.joint_names import JointNameMap
from video2act_core.data.rosbag import read_episode

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE, DATA_FILES_SIZE_IN_MB, VIDEO_FILES_SIZE_IN_MB = 1000, 100, 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
STATE_KEY, ACTION_KEY, SUCCESS_KEY, IMAGE_PREFIX = "observation.state", "action", "next.success", "observation.images."
DEFAULT_FEATURES = {  # what lerobot adds to every dataset, in its order
    "timestamp": "float32",
    "frame_index": "int64",
    "episode_index": "int64",
    "index": "int64",
    "task_index": "int64",
}
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_BINS = 5000
CRF = 30
IMAGE_TOPIC_LEAVES = ("image_raw", "image", "image_rect", "image_rect_color", "image_color", "compressed")


# ---------------------------------------------------------------- rows


@dataclass
class Rows:
    """One episode on the fps grid (see the module docstring for the rules)."""

    times_ns: np.ndarray  # (N,) int64: tau_r, the capture stamp of the row's frame
    frame_indices: list[np.ndarray]  # per camera (the video camera first): (N,) index into its frames
    states: np.ndarray  # (N, J) float32
    actions: np.ndarray  # (N, J) float32
    success: np.ndarray | None  # (N,) bool, or None where the bag records no success

    def __len__(self) -> int:
        return len(self.times_ns)


def camera_rate_hz(stamps_ns: np.ndarray) -> float:
    """Frames per second as recorded: frames over the time they span."""
    if len(stamps_ns) < 2 or stamps_ns[-1] <= stamps_ns[0]:
        return 0.0
    return (len(stamps_ns) - 1) / ((stamps_ns[-1] - stamps_ns[0]) * 1e-9)


def _nearest(stamps_ns: np.ndarray, times_ns: np.ndarray) -> np.ndarray:
    """Index of the stamp nearest each time (the earlier one on a tie)."""
    if len(stamps_ns) == 1:
        return np.zeros(len(times_ns), np.int64)
    after = np.clip(np.searchsorted(stamps_ns, times_ns, side="left"), 1, len(stamps_ns) - 1)
    before = after - 1
    later = np.abs(stamps_ns[after] - times_ns) < np.abs(times_ns - stamps_ns[before])
    return np.where(later, after, before).astype(np.int64)


def resample(episode: Episode, fps: int, success: tuple[np.ndarray, np.ndarray] | None = None) -> Rows:
    """The episode's rows at `fps`; `success` is the bag's (stamps, values)
    on the success topic, None where it has none."""
    period_ns = 1e9 / fps
    frames_ns = episode.image_stamps_ns
    usable = (frames_ns >= episode.state_stamps_ns[0]) & (frames_ns + period_ns > episode.command_stamps_ns[0])
    if not usable.any():
        raise EpisodeError("no camera frame with a joint state at or before it and a command by the end of its period")
    first = int(np.argmax(usable))
    origin = int(frames_ns[first])  # times relative to it: float64 grid times stay exact to the nanosecond
    count = int(np.floor((frames_ns[-1] - origin) / period_ns + 0.5)) + 1
    grid = np.arange(count) * period_ns
    main = first + _nearest(frames_ns[first:] - origin, grid)
    indices = [main] + [_nearest(camera.stamps_ns - origin, grid) for camera in episode.extra_cameras]
    times = frames_ns[main]

    # Each row's period ends where the next row's (different) frame was taken.
    ends = np.empty(count, np.int64)
    ends[-1] = times[-1] + int(round(period_ns))
    for row in range(count - 2, -1, -1):
        ends[row] = times[row + 1] if times[row + 1] > times[row] else ends[row + 1]

    states = episode.states[np.searchsorted(episode.state_stamps_ns, times, side="right") - 1]
    commands_ns = episode.command_stamps_ns
    issued = np.searchsorted(commands_ns, times, side="left")  # the first command at or after tau_r
    in_period = (issued < len(commands_ns)) & (commands_ns[np.minimum(issued, len(commands_ns) - 1)] < ends)
    # Otherwise the command in force; before the first command (only the
    # first row can be), the first one.
    chosen = np.where(in_period, issued, np.maximum(issued - 1, 0))
    actions = episode.commands[chosen]

    flags = None
    if success is not None:
        stamps, values = success
        succeeded = stamps[np.asarray(values, bool)]
        first_success = succeeded.min() if len(succeeded) else np.inf
        flags = first_success < ends
        flags[-1] = bool(len(succeeded))
    return Rows(times, indices, states.astype(np.float32), actions.astype(np.float32), flags)


# ---------------------------------------------------------------- stats, as lerobot 0.4.4 computes them


def _quantile(histogram: np.ndarray, edges: np.ndarray, target: float) -> float:
    """lerobot's RunningQuantileStats._compute_single_quantile."""
    cumulative = np.cumsum(histogram)
    index = int(np.searchsorted(cumulative, target))
    if index == 0:
        return edges[0]
    if index >= len(cumulative):
        return edges[-1]
    before = cumulative[index - 1]
    in_bin = cumulative[index] - before
    if in_bin == 0:
        return edges[index]
    return edges[index] + (target - before) / in_bin * (edges[index + 1] - edges[index])


def feature_stats(batch: np.ndarray) -> dict[str, np.ndarray]:
    """min, max, mean, std, count and quantiles of each column of (N, D)
    `batch`, in lerobot's RunningQuantileStats' arithmetic (one batch: its
    dtypes, its histogram quantiles), or its basic stats below 2 rows."""
    count = len(batch)
    if count < 2:
        mean = np.mean(batch, axis=0)
        stats = {
            "min": batch.min(0),
            "max": batch.max(0),
            "mean": mean,
            "std": np.std(batch, axis=0),
            "count": np.array([count]),
        }
        return {**stats, **{_quantile_key(q): mean.copy() for q in QUANTILES}}
    mean = np.mean(batch, axis=0)
    mean_of_squares = np.mean(batch**2, axis=0)
    low, high = batch.min(0), batch.max(0)
    numeric = batch.astype(np.uint8) if batch.dtype == bool else batch  # as np.histogram converts booleans
    quantiles = {_quantile_key(q): [] for q in QUANTILES}
    for column in range(batch.shape[1]):
        edges = np.linspace(low[column] - 1e-10, high[column] + 1e-10, QUANTILE_BINS + 1)
        histogram = np.histogram(numeric[:, column], bins=edges)[0].astype(np.float64)
        for q in QUANTILES:
            quantiles[_quantile_key(q)].append(_quantile(histogram, edges, q * count))
    return {
        "min": low,
        "max": high,
        "mean": mean,
        "std": np.sqrt(np.maximum(0, mean_of_squares - mean**2)),
        "count": np.array([count]),
        **{key: np.array(values) for key, values in quantiles.items()},
    }


def _quantile_key(q: float) -> str:
    return f"q{int(q * 100):02d}"


def sample_indices(length: int) -> np.ndarray:
    """Which frames lerobot's image stats look at (compute_stats.sample_indices)."""
    samples = length if length < 100 else max(100, min(int(length**0.75), 10_000))
    return np.round(np.linspace(0, length - 1, samples)).astype(int)


def image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel stats of (N, H, W, 3) uint8 frames, shaped (3, 1, 1) in
    [0, 1], over lerobot's sample of them, downsampled as it does (a side
    of 300 px or more to about 150)."""
    sampled = frames[sample_indices(len(frames))]
    height, width = sampled.shape[1:3]
    if max(height, width) >= 300:
        factor = int(width / 150) if width > height else int(height / 150)
        sampled = sampled[:, ::factor, ::factor]
    stats = feature_stats(sampled.reshape(-1, sampled.shape[-1]).astype(np.float64))
    return {
        key: value if key == "count" else (value / 255.0).reshape(-1, 1, 1)
        for key, value in {**stats, "count": np.array([len(sampled)])}.items()
    }


def aggregate_stats(episodes: list[dict[str, dict[str, np.ndarray]]]) -> dict[str, dict[str, np.ndarray]]:
    """lerobot's compute_stats.aggregate_stats: min of mins, max of maxes,
    count-weighted mean and quantiles, pooled variance."""
    aggregated = {}
    for key in episodes[0]:
        parts = [stats[key] for stats in episodes]
        means = np.stack([p["mean"] for p in parts])
        variances = np.stack([p["std"] ** 2 for p in parts])
        counts = np.stack([p["count"] for p in parts])
        total = counts.sum(axis=0)
        while counts.ndim < means.ndim:
            counts = np.expand_dims(counts, -1)
        mean = (means * counts).sum(axis=0) / total
        variance = ((variances + (means - mean) ** 2) * counts).sum(axis=0) / total
        aggregated[key] = {
            "min": np.min(np.stack([p["min"] for p in parts]), axis=0),
            "max": np.max(np.stack([p["max"] for p in parts]), axis=0),
            "mean": mean,
            "std": np.sqrt(variance),
            "count": total,
            **{
                _quantile_key(q): (np.stack([p[_quantile_key(q)] for p in parts]) * counts).sum(axis=0) / total
                for q in QUANTILES
            },
        }
    return aggregated


def _listed(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, list]]:
    return {key: {name: np.asarray(value).tolist() for name, value in values.items()} for key, values in stats.items()}


# ---------------------------------------------------------------- writing


def video_codec(preferred: str | None = None) -> str:
    """libsvtav1 (AV1, lerobot's default) where this PyAV encodes it, else libx264 (H.264)."""
    import av

    candidates = {"av1": ["libsvtav1"], "h264": ["libx264"], None: ["libsvtav1", "libx264"]}[preferred]
    for name in candidates:
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # PyAV raises UnknownCodecError, or others on some builds
            continue
    raise ValueError(f"this PyAV encodes none of {candidates}")


def _codec_options(codec: str, crf: int) -> dict[str, str]:
    """lerobot 0.4.4's encode_video_frames options (video_utils._get_codec_options)."""
    options = {"g": "2", "crf": str(crf)}
    if codec == "libsvtav1":
        options["preset"] = "12"
    return options


class _VideoFiles:
    """One camera's video files: episodes appended to one stream, a new file
    once the current one has grown past the limit."""

    def __init__(self, root: Path, key: str, fps: int, codec: str, crf: int, limit_mb: float):
        self.root, self.key, self.fps, self.codec, self.crf, self.limit_mb = root, key, fps, codec, crf, limit_mb
        self.chunk, self.file, self.frames_in_file = 0, -1, 0
        self.container = self.stream = self.shape = None

    def path(self, chunk: int | None = None, file: int | None = None) -> Path:
        return self.root / VIDEO_PATH.format(
            video_key=self.key,
            chunk_index=self.chunk if chunk is None else chunk,
            file_index=self.file if file is None else file,
        )

    def _open(self) -> None:
        import av

        self.chunk, self.file = _next_file(self.chunk, self.file)
        self.path().parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(self.path()), "w")
        self.stream = self.container.add_stream(self.codec, self.fps, options=_codec_options(self.codec, self.crf))
        self.stream.pix_fmt = "yuv420p"
        self.stream.height, self.stream.width = self.shape[:2]
        self.frames_in_file = 0

    def append(self, frames: np.ndarray) -> dict:
        import av

        if self.shape is None:
            self.shape = frames.shape[1:]
        elif frames.shape[1:] != self.shape:
            raise EpisodeError(
                f"{self.key}: frames of {frames.shape[2]}x{frames.shape[1]} after episodes of "
                f"{self.shape[1]}x{self.shape[0]}; a camera's frames must keep one size"
            )
        if self.container is None:
            self._open()
        first = self.frames_in_file
        for frame in frames:
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            picture.pts, picture.time_base = self.frames_in_file, Fraction(1, self.fps)
            self.container.mux(self.stream.encode(picture))
            self.frames_in_file += 1
        reference = {
            f"videos/{self.key}/chunk_index": self.chunk,
            f"videos/{self.key}/file_index": self.file,
            f"videos/{self.key}/from_timestamp": first / self.fps,
            f"videos/{self.key}/to_timestamp": self.frames_in_file / self.fps,
        }
        # The encoder holds some frames back: the file lags (or is not there yet).
        if self.path().is_file() and self.path().stat().st_size >= self.limit_mb * 1024**2:
            self.close()
        return reference

    def close(self) -> None:
        if self.container is not None:
            self.container.mux(self.stream.encode())  # flush the encoder
            self.container.close()
            self.container = self.stream = None


def _next_file(chunk: int, file: int) -> tuple[int, int]:
    """lerobot's update_chunk_file_indices (file -1: the first file)."""
    return (chunk + 1, 0) if file == CHUNKS_SIZE - 1 else (chunk, file + 1)


def video_info(path: Path) -> dict:
    """A video feature's `info`, as lerobot's get_video_info reads it from the first file."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        info = {
            "video.height": stream.height,
            "video.width": stream.width,
            "video.codec": stream.codec.canonical_name,
            "video.pix_fmt": stream.pix_fmt,
            "video.is_depth_map": False,
            "video.fps": int(stream.base_rate),
            "video.channels": 3,
            "has_audio": bool(container.streams.audio),
        }
    return info


def _hf_feature(dtype: str, length: int | None = None) -> dict:
    value = {"dtype": dtype, "_type": "Value"}
    return value if length is None else {"feature": value, "length": length, "_type": "List"}


def write_tasks(path: Path, tasks: list[str]) -> None:
    """meta/tasks.parquet as lerobot writes it with pandas: task_index, and the
    task as the frame's index (pandas metadata says so; pandas is not needed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    index = "__index_level_0__"
    pandas_metadata = {
        "index_columns": [index],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": {"encoding": "UTF-8"},
            }
        ],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {"name": None, "field_name": index, "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
        ],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
    }
    schema = pa.schema(
        [("task_index", pa.int64()), (index, pa.large_string())],
        metadata={b"pandas": json.dumps(pandas_metadata).encode()},
    )
    pq.write_table(
        pa.table([pa.array(range(len(tasks)), pa.int64()), pa.array(tasks, pa.large_string())], schema=schema), path
    )


class LeRobotWriter:
    """Writes episodes into a new LeRobot v3.0 dataset at `root` (created
    here; it must not exist). `cameras` are the observation.images.* names,
    the video camera first; `has_success` adds next.success."""

    def __init__(
        self,
        root: str | Path,
        fps: int,
        joint_names: list[str],
        cameras: list[str],
        has_success: bool,
        robot_type: str | None = None,
        codec: str | None = None,
        crf: int = CRF,
        data_files_size_in_mb: float = DATA_FILES_SIZE_IN_MB,
        video_files_size_in_mb: float = VIDEO_FILES_SIZE_IN_MB,
    ):
        import pyarrow as pa

        if int(fps) != fps or fps < 1:
            raise ValueError(f"LeRobot datasets have a whole number of frames per second, got {fps}")
        self.root = Path(root)
        self.root.mkdir(parents=True)
        self.fps, self.joint_names = int(fps), list(joint_names)
        self.has_success, self.robot_type = has_success, robot_type
        self.keys = [IMAGE_PREFIX + camera for camera in cameras]
        self.codec = video_codec() if codec is None else codec
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its configuration to stderr otherwise
        self.videos = [
            _VideoFiles(self.root, key, self.fps, self.codec, crf, video_files_size_in_mb) for key in self.keys
        ]
        self.data_limit_mb, self.video_limit_mb = data_files_size_in_mb, video_files_size_in_mb
        vector = pa.list_(pa.float32(), len(self.joint_names))
        fields = [(STATE_KEY, vector), (ACTION_KEY, vector)] + ([(SUCCESS_KEY, pa.bool_())] if has_success else [])
        fields += [
            (name, pa.float32() if dtype == "float32" else pa.int64()) for name, dtype in DEFAULT_FEATURES.items()
        ]
        hf_features = {
            STATE_KEY: _hf_feature("float32", len(self.joint_names)),
            ACTION_KEY: _hf_feature("float32", len(self.joint_names)),
            **({SUCCESS_KEY: _hf_feature("bool")} if has_success else {}),
            **{name: _hf_feature(dtype) for name, dtype in DEFAULT_FEATURES.items()},
        }
        # What Hugging Face datasets stores with the table (lerobot writes through it).
        self.schema = pa.schema(
            fields, metadata={b"huggingface": json.dumps({"info": {"features": hf_features}}).encode()}
        )
        self.data_writer, self.data_chunk, self.data_file, self.data_mb = None, 0, -1, 0.0
        self.episodes: list[dict] = []
        self.episode_stats: list[dict] = []
        self.tasks: list[str] = []
        self.total_frames = 0

    def add_episode(
        self,
        frames: list[np.ndarray],
        states: np.ndarray,
        actions: np.ndarray,
        task: str,
        success: np.ndarray | None = None,
    ) -> int:
        """One episode: per camera (N, H, W, 3) uint8 frames, (N, J) states
        and actions, the task, per-row next.success. Its episode_index."""
        rows, index = len(states), len(self.episodes)
        if len(frames) != len(self.keys) or any(len(f) != rows for f in frames) or len(actions) != rows:
            raise ValueError(f"episode {index}: {len(self.keys)} cameras and {rows} rows expected")
        if (success is not None) != self.has_success:
            raise ValueError(f"episode {index}: next.success {'missing' if self.has_success else 'unexpected'}")
        if task not in self.tasks:
            self.tasks.append(task)
        columns = {
            STATE_KEY: np.asarray(states, np.float32),
            ACTION_KEY: np.asarray(actions, np.float32),
            **({SUCCESS_KEY: np.asarray(success, bool)} if self.has_success else {}),
            "timestamp": np.arange(rows) / self.fps,  # float64 in the stats, float32 in the table (as lerobot)
            "frame_index": np.arange(rows, dtype=np.int64),
            "episode_index": np.full(rows, index, np.int64),
            "index": np.arange(self.total_frames, self.total_frames + rows, dtype=np.int64),
            "task_index": np.full(rows, self.tasks.index(task), np.int64),
        }
        reference = self._write_rows(columns, rows)
        for video, camera_frames in zip(self.videos, frames):
            reference.update(video.append(camera_frames))
        stats = self._episode_stats(columns, frames, rows)
        self.episode_stats.append(stats)
        flat = {
            f"stats/{key}/{name}": np.asarray(value).tolist()
            for key, values in stats.items()
            for name, value in values.items()
        }
        self.episodes.append(
            {
                "episode_index": index,
                "tasks": [task],
                "length": rows,
                **reference,
                **flat,
                "meta/episodes/chunk_index": 0,
                "meta/episodes/file_index": 0,
            }
        )
        self.total_frames += rows
        return index

    def _write_rows(self, columns: dict[str, np.ndarray], rows: int) -> dict:
        """The episode's rows into the current data file (a row group per
        episode, as lerobot writes them; a new file past the size limit);
        where they went, as the episode table records it."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        joints = len(self.joint_names)
        table = pa.table(
            [
                pa.FixedSizeListArray.from_arrays(pa.array(columns[name].reshape(-1)), joints)
                if name in (STATE_KEY, ACTION_KEY)
                else pa.array(columns[name]).cast(field.type)
                for name, field in zip(self.schema.names, self.schema)
            ],
            schema=self.schema,
        )
        if self.data_writer is None:
            self.data_chunk, self.data_file = _next_file(self.data_chunk, self.data_file)
            path = self.root / DATA_PATH.format(chunk_index=self.data_chunk, file_index=self.data_file)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.data_writer = pq.ParquetWriter(path, self.schema, compression="snappy", use_dictionary=True)
            self.data_mb = 0.0
        self.data_writer.write_table(table)
        reference = {
            "data/chunk_index": self.data_chunk,
            "data/file_index": self.data_file,
            "dataset_from_index": self.total_frames,
            "dataset_to_index": self.total_frames + rows,
        }
        self.data_mb += table.nbytes / 1024**2  # uncompressed, as lerobot measures its files
        if self.data_mb >= self.data_limit_mb:
            self.data_writer.close()
            self.data_writer = None
        return reference

    def _episode_stats(self, columns: dict[str, np.ndarray], frames: list[np.ndarray], rows: int) -> dict:
        """Per-feature statistics of one episode, in lerobot's key order."""
        stats = {}
        for name, values in columns.items():
            stats[name] = feature_stats(values.reshape(rows, -1))
            if name == STATE_KEY:
                stats.update({key: image_stats(camera_frames) for key, camera_frames in zip(self.keys, frames)})
        order = [STATE_KEY, ACTION_KEY, *self.keys, *([SUCCESS_KEY] if self.has_success else []), *DEFAULT_FEATURES]
        return {key: stats[key] for key in order}

    def close(self) -> dict:
        """Finishes the files and writes meta/; the info.json written."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.data_writer is not None:
            self.data_writer.close()
            self.data_writer = None
        for video in self.videos:
            video.close()
        if not self.episodes:
            raise ValueError("no episodes to write")
        meta = self.root / "meta"
        (meta / "episodes" / "chunk-000").mkdir(parents=True, exist_ok=True)
        episodes = pa.Table.from_pylist(self.episodes)
        with pq.ParquetWriter(
            self.root / EPISODES_PATH, episodes.schema, compression="snappy", use_dictionary=True
        ) as writer:
            writer.write_table(episodes)
        write_tasks(meta / "tasks.parquet", self.tasks)
        vector = {"dtype": "float32", "shape": [len(self.joint_names)], "names": self.joint_names}
        features = {STATE_KEY: dict(vector), ACTION_KEY: dict(vector)}
        for key, video in zip(self.keys, self.videos):
            features[key] = {
                "dtype": "video",
                "shape": list(video.shape),
                "names": ["height", "width", "channels"],
                "info": video_info(video.path(0, 0)),
            }
        if self.has_success:
            features[SUCCESS_KEY] = {"dtype": "bool", "shape": [1], "names": None}
        features.update(
            {name: {"dtype": dtype, "shape": [1], "names": None} for name, dtype in DEFAULT_FEATURES.items()}
        )
        info = {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": self.robot_type,
            "total_episodes": len(self.episodes),
            "total_frames": self.total_frames,
            "total_tasks": len(self.tasks),
            "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": self.data_limit_mb,
            "video_files_size_in_mb": self.video_limit_mb,
            "fps": self.fps,
            "splits": {"train": f"0:{len(self.episodes)}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH,
            "features": features,
        }
        _write_json(meta / "info.json", info)
        _write_json(meta / "stats.json", _listed(aggregate_stats(self.episode_stats)))
        return info


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=4, ensure_ascii=False))  # as lerobot's write_json


# ---------------------------------------------------------------- bags to a dataset


def camera_name(topic: str) -> str:
    """observation.images.<name> for a camera topic: its namespaces, less
    image_transport's leaf names (`/cam/color/image_raw` -> cam_color)."""
    parts = [part for part in topic.removesuffix(COMPRESSED_SUFFIX).split("/") if part]
    while len(parts) > 1 and parts[-1] in IMAGE_TOPIC_LEAVES:
        parts.pop()
    name = "_".join(parts)
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in name) or "camera"


def read_success(bag: Path, topic: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(receive stamps, values) of the std_msgs/Bool messages on `topic`;
    None where the bag has none."""
    from rosbags.highlevel import AnyReader

    try:
        with AnyReader([Path(bag)]) as reader:
            connections = [c for c in reader.connections if c.topic == topic]
            stamps, values = [], []
            for connection, stamp, raw in reader.messages(connections=connections):
                stamps.append(stamp)
                values.append(bool(reader.deserialize(raw, connection.msgtype).data))
    except Exception as error:  # rosbags raises several unrelated types for damaged bags
        raise EpisodeError(f"{bag}: cannot read bag: {error}") from error
    if not stamps:
        return None
    order = np.argsort(stamps, kind="stable")
    return np.asarray(stamps, np.int64)[order], np.asarray(values, bool)[order]


def records_success(bag: Path, topic: str) -> bool:
    """Whether the bag has messages on the success topic (from its metadata)."""
    from rosbags.highlevel import AnyReader

    try:
        with AnyReader([Path(bag)]) as reader:
            return any(c.topic == topic and c.msgcount > 0 for c in reader.connections)
    except Exception as error:  # rosbags raises several unrelated types for damaged bags
        raise EpisodeError(f"{bag}: cannot read bag: {error}") from error


def export_rate(bag: Path, episode: Episode, fps: int | None) -> int:
    """The rows' rate: `fps`, or the first bag's camera rate rounded; one
    more than 5% above a bag's camera rate is refused (rows would repeat frames)."""
    rate = camera_rate_hz(episode.image_stamps_ns)
    if fps is None:
        if rate <= 0:
            raise EpisodeError(f"{bag}: one camera frame gives no rate to export at; pass --fps")
        fps = max(1, int(round(rate)))
    if 0 < rate < 0.95 * fps:
        raise EpisodeError(
            f"{bag}: the camera runs at {rate:.2f} Hz, below {fps} fps: rows would repeat "
            f"frames; export at --fps {max(1, int(rate))} or less"
        )
    return fps


def export_bags(
    bags: list[Path],
    out: Path,
    topics: EpisodeTopics,
    joint_names: list[str],
    fps: int | None = None,
    joint_name_map: JointNameMap | None = None,
    task: str | None = None,
    camera_names: list[str] | None = None,
    robot_type: str | None = None,
    codec: str | None = None,
    crf: int = CRF,
    progress=print,
    **limits,
) -> dict:
    """Writes `bags` (one episode each, in this order) as a LeRobot v3.0
    dataset at `out`, which must not exist; its info.json."""
    out = Path(out)
    if out.exists():
        raise EpisodeError(f"{out} exists; refusing to overwrite it")
    if not bags:
        raise EpisodeError("no bags to export")
    topics_of_cameras = [topics.image, *topics.extra_cameras]
    names = camera_names or [camera_name(topic) for topic in topics_of_cameras]
    if len(names) != len(topics_of_cameras) or len(set(names)) != len(names):
        raise EpisodeError(f"camera names {names} for the cameras {topics_of_cameras}: one distinct name each")
    has_success = any(records_success(bag, topics.success) for bag in bags)
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    writer = None
    try:
        for number, bag in enumerate(bags):
            episode = read_episode(bag, topics, joint_names, joint_name_map=joint_name_map)
            fps = export_rate(bag, episode, fps)
            success = read_success(bag, topics.success) if has_success else None
            try:
                rows = resample(episode, fps, success)
            except EpisodeError as error:
                raise EpisodeError(f"{bag}: {error}") from error
            if has_success and rows.success is None:  # a bag without success messages: never succeeded
                rows.success = np.zeros(len(rows), bool)
            if writer is None:
                writer = LeRobotWriter(
                    scratch / "dataset", fps, joint_names, names, has_success, robot_type, codec, crf, **limits
                )
            recordings = [episode.images, *(camera.images for camera in episode.extra_cameras)]
            # Every frame once, in order (the usual case): the recording itself, not a copy.
            frames = [
                recording if np.array_equal(indices, np.arange(len(recording))) else recording[indices]
                for recording, indices in zip(recordings, rows.frame_indices)
            ]
            writer.add_episode(
                frames, rows.states, rows.actions, episode.instruction if task is None else task, rows.success
            )
            repeated = int(np.sum(np.diff(rows.frame_indices[0]) == 0))
            progress(
                f"episode {number}: {bag}: {len(rows)} rows"
                + (
                    f" ({repeated} repeating the frame before: the camera left a gap or runs a little below {fps} fps)"
                    if repeated
                    else ""
                )
            )
        info = writer.close()
        (scratch / "dataset").rename(out)
    finally:
        if writer is not None:  # after a failure: let go of the files, the error raised is the first one
            for closing in [video.close for video in writer.videos] + [getattr(writer.data_writer, "close", None)]:
                if closing is not None:
                    with contextlib.suppress(Exception):
                        closing()
        shutil.rmtree(scratch, ignore_errors=True)
    return info


def build_parser() -> argparse.ArgumentParser:
    """The command line; the topics default to the params file's."""
    repo = Path(__file__).resolve().parents[4]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--bags",
        type=Path,
        nargs="+",
        required=True,
        help="bag directories, or directories holding them (one episode per bag)",
    )
    parser.add_argument("--out", type=Path, required=True, help="dataset directory to create (must not exist)")
    parser.add_argument("--fps", type=int, help="rows per second (default: the first bag's camera rate, rounded)")
    parser.add_argument("--params", type=Path, default=repo / "config" / "video2act.yaml")
    parser.add_argument(
        "--image-topic",
        help="camera topic in the bag (default: the params file's); raw or "
        "compressed, also found on <topic>/compressed",
    )
    parser.add_argument(
        "--extra-camera-topics", nargs="*", help="more cameras (default: the params file's; the option alone: none)"
    )
    parser.add_argument(
        "--camera-names",
        nargs="+",
        help="observation.images.<name> of each camera, in order "
        "(default: from the topics, /cam/color/image_raw -> cam_color)",
    )
    parser.add_argument("--joint-states-topic", help="sensor_msgs/JointState topic in the bag")
    parser.add_argument("--command-topic", help="the recorded trajectory_msgs/JointTrajectory commands")
    parser.add_argument("--success-topic", help="std_msgs/Bool task success (default: the sim arm's)")
    parser.add_argument("--instruction-topic", help="std_msgs/String task instruction (default: the params file's)")
    parser.add_argument("--strip-joint-suffix", default="", help="cut this off recorded joint names (e.g. .pos)")
    parser.add_argument("--joint-map", nargs="+", default=[], metavar="RECORDED=OURS", help="rename single joints")
    parser.add_argument("--task", help="every episode's task (default: the instruction each bag records, else '')")
    parser.add_argument("--robot-type", help="info.json's robot_type (default: none)")
    parser.add_argument("--codec", choices=["av1", "h264"], help="video codec (default: av1 where PyAV encodes it)")
    parser.add_argument("--crf", type=int, default=CRF, help="video quality, lower is better (lerobot's default 30)")
    parser.add_argument("--debug", action="store_true", help="tracebacks instead of one-line errors")
    return parser


def export_from_arguments(args: argparse.Namespace) -> dict:
    """The export the command line asks for; info.json's content."""
    from video2act_core.data.samples import find_episode_bags
    from video2act_core.params import CommonParams, SimArmParams, node_params

    common = node_params(CommonParams, args.params, "/**")
    sim = node_params(SimArmParams, args.params, "video2act_sim_arm")
    extra = common.extra_camera_topics if args.extra_camera_topics is None else args.extra_camera_topics
    topics = EpisodeTopics(
        args.image_topic or common.image_topic,
        args.joint_states_topic or common.joint_states_topic,
        args.command_topic or common.trajectory_topic,
        args.success_topic or sim.success_topic,
        args.instruction_topic or common.instruction_topic,
        tuple(extra),
    )
    joint_map = JointNameMap(args.strip_joint_suffix, dict(pair.split("=") for pair in args.joint_map))
    return export_bags(
        find_episode_bags(args.bags),
        args.out,
        topics,
        common.joint_names,
        args.fps,
        joint_map,
        args.task,
        args.camera_names,
        args.robot_type,
        None if args.codec is None else video_codec(args.codec),
        args.crf,
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    malformed = [pair for pair in args.joint_map if pair.count("=") != 1]
    if malformed:
        parser.error(f"--joint-map takes RECORDED=OURS pairs, got {malformed}")
    if args.fps is not None and args.fps < 1:
        parser.error(f"--fps must be at least 1, got {args.fps}")
    try:
        info = export_from_arguments(args)
    except (EpisodeError, OSError, ValueError) as error:
        if args.debug:
            raise
        message = " ".join(str(error).split())  # one line, whatever the library said (a YAML parser's is several)
        print(f"lerobot_export: error: {message}", file=sys.stderr)
        return 1
    cameras = [key for key, feature in info["features"].items() if feature["dtype"] == "video"]
    codec = info["features"][cameras[0]]["info"]["video.codec"]
    print(
        f"wrote {info['total_episodes']} episodes, {info['total_frames']} rows at {info['fps']} fps to {args.out} "
        f"(LeRobot {CODEBASE_VERSION}; cameras {cameras} as {codec} video)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
