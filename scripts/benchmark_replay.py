"""Replay at scale: writes a long camera bag (30 Hz 640x480 by default, as a
robot records it) and replays it at --rate 1 through both nodes, printing
the peak resident memory of each process and the wall time against the
bag's length. Memory must not grow with the bag: compare --minutes 1 and 10.

    python scripts/benchmark_replay.py --minutes 10            # raw rgb8 frames
    python scripts/benchmark_replay.py --minutes 10 --format jpeg

The bag goes to --work (default: a temporary directory, removed afterwards;
a raw 10-minute bag is ~17 GB).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from video2act_core.data.episode import EpisodeTopics
from video2act_core.data.rosbag import EpisodeRecorder
from video2act_core.params import PolicyParams, SimArmParams, node_params
from video2act_eval.replay import main as replay

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "config" / "video2act.yaml"


def write_long_bag(path: Path, minutes: float, fps: float, height: int, width: int, image_format: str) -> None:
    """A square sweeping over a textured background, joint states at 50 Hz
    and 10 Hz commands that follow them, on the params file's topics."""
    sim = node_params(SimArmParams, PARAMS, "video2act_sim_arm")
    policy = node_params(PolicyParams, PARAMS, "video2act_policy")
    topics = EpisodeTopics(sim.image_topic, sim.joint_states_topic, sim.trajectory_topic, sim.success_topic)
    rng = np.random.default_rng(0)
    background = rng.integers(40, 90, (height, width, 3), dtype=np.uint8)
    joints = len(sim.joint_names)
    start_ns, tick_ns = 1_000_000_000, 1_000_000  # a 1 ms timeline for the three rates
    camera_every, state_every = round(1000 / fps), 20
    command_every = round(policy.action_period_s * 1000)
    with EpisodeRecorder(path, topics, sim.joint_names, image_format=image_format) as recorder:
        for tick in range(int(minutes * 60_000)):
            ns = start_ns + tick * tick_ns
            t = tick / 1000
            positions = 0.5 * np.sin(0.3 * t + np.arange(joints))
            if tick % state_every == 0:
                recorder.clock(ns)
                recorder.joint_state(ns, positions, np.zeros(joints))
            if tick % command_every == 0:
                recorder.command(ns, positions[None], policy.action_period_s)
            if tick % camera_every == 0:
                frame = background.copy()
                x = int((0.5 + 0.4 * np.sin(t)) * (width - 60))
                frame[height // 2 - 30 : height // 2 + 30, x : x + 60] = (220, 40, 40)
                recorder.image(ns, frame)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--format", choices=["raw", "jpeg", "png"], default="raw")
    parser.add_argument("--rate", type=float, default=1.0)
    parser.add_argument("--work", type=Path, help="where the bag and the replay's output go (kept)")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="video2act_replay_bench_"))
    bag = work / "bag"
    try:
        started = time.monotonic()
        write_long_bag(bag, args.minutes, args.fps, args.height, args.width, args.format)
        size_gb = sum(f.stat().st_size for f in bag.iterdir()) / 1e9
        print(
            f"wrote {bag}: {args.minutes} min, {args.width}x{args.height} {args.format} at {args.fps} Hz, "
            f"{size_gb:.2f} GB in {time.monotonic() - started:.0f} s"
        )
        status = replay(["--bag", str(bag), "--rate", str(args.rate), "--out", str(work / "replay")])
        report = json.loads((work / "replay" / "report.json").read_text())
        print(
            f"\nreplay exit {status}: bag {report['bag_seconds']} s played in {report['wall_seconds']} s "
            f"(x{report['wall_seconds'] / report['bag_seconds']:.3f} of real time at --rate {args.rate}), "
            f"{report['messages_played']} messages"
        )
        print("peak RSS (MB): " + ", ".join(f"{name} {mb}" for name, mb in report["peak_rss_mb"].items()))
        return status
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
