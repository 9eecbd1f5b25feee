"""Offline evaluation by rosbag replay through the two nodes.

    python -m video2act_sim.replay --bag data/sim_demos/episode_001000 [--rate 1.0]

Starts the perception and policy nodes (separate processes, use_sim_time),
plays the bag's camera images and joint states with a /clock that follows
the bag's timeline (`--rate` > 1 plays faster), and compares the policy's
action chunks with the commands recorded in the bag; bags from a real robot
work the same way. Prints action errors and latency percentiles and writes
a latency histogram.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from video2act_core.data.bags import BagError, EpisodeTopics, read_episode
from video2act_core.metrics import percentiles_ms
from video2act_core.params import PolicyParams, SimArmParams, node_params
from video2act_sim.launcher import PERCEPTION, POLICY, start_node, stop_nodes


def recorded_stream(bag: Path, topics: list[str]):
    """(receive time ns, topic, raw CDR bytes) of the bag's messages on `topics`, in time order."""
    from rosbags.highlevel import AnyReader

    with AnyReader([bag]) as reader:
        connections = [c for c in reader.connections if c.topic in topics]
        missing = set(topics) - {c.topic for c in connections}
        if missing:
            raise BagError(f"{bag} has no messages on {sorted(missing)}")
        for connection, stamp, raw in reader.messages(connections=connections):
            yield stamp, connection.topic, bytes(raw)


def action_errors(chunks: list[tuple[int, np.ndarray]], command_stamps_ns: np.ndarray, commands: np.ndarray) -> dict:
    """Mean absolute error of each chunk against the commands recorded from
    its stamp on, over the overlapping horizon; and of the first step alone."""
    first, whole = [], []
    for stamp, positions in chunks:
        start = int(np.searchsorted(command_stamps_ns, stamp, side="left"))
        steps = min(len(positions), len(commands) - start)
        if steps <= 0:
            continue
        difference = np.abs(positions[:steps] - commands[start : start + steps])
        first.append(difference[0].mean())
        whole.append(difference.mean())
    if not whole:
        raise BagError("no policy chunk overlaps the recorded commands")
    return {"chunks_compared": len(whole), "first_step_mae": float(np.mean(first)), "chunk_mae": float(np.mean(whole))}


def nodes_ready(node, policy: PolicyParams) -> bool:
    """Perception listens to the camera, and the policy to joint states (after latents)."""
    return all(node.count_subscribers(topic) > 0 for topic in (policy.image_topic, policy.joint_states_topic))


def main(argv: list[str] | None = None) -> int:
    import rclpy
    from rclpy.serialization import deserialize_message
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image, JointState
    from video2act_msgs.msg import ActionChunk, SpatioMotionLatents

    from video2act_core.messages import stamp_to_ns
    from video2act_core.ros import latents_qos

    repo = Path(__file__).resolve().parents[3]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bag", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, default=repo / "checkpoints" / "sim_demo")
    parser.add_argument("--params", type=Path, default=repo / "config" / "video2act.yaml")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed (sim time per wall time)")
    parser.add_argument("--warmup", type=float, default=120.0, help="max seconds to wait for the nodes to start")
    parser.add_argument("--out", type=Path, default=Path("runs/replay"))
    args = parser.parse_args(argv)

    policy = node_params(PolicyParams, args.params, "video2act_policy")
    sim = node_params(SimArmParams, args.params, "video2act_sim_arm")
    topics = EpisodeTopics(policy.image_topic, policy.joint_states_topic, policy.trajectory_topic, sim.success_topic)
    recorded = read_episode(args.bag, topics, policy.joint_names)  # fails early on a corrupt bag
    stream = list(recorded_stream(args.bag, [topics.image, topics.joint_states]))

    args.out.mkdir(parents=True, exist_ok=True)
    # The replayed policy drives no arm: it is armed so that it plans.
    overrides = {"checkpoint_path": str(args.checkpoint.resolve()), "use_sim_time": True, "start_armed": True}
    logs = [open(args.out / f"{exe.name}.log", "w") for exe in (PERCEPTION, POLICY)]
    processes = [start_node(exe, args.params, overrides, log) for exe, log in zip((PERCEPTION, POLICY), logs)]
    rclpy.init()
    node = rclpy.create_node("video2act_replay")
    clock = node.create_publisher(Clock, "/clock", 10)
    publishers = {topics.image: (node.create_publisher(Image, topics.image, 10), Image),
                  topics.joint_states: (node.create_publisher(JointState, topics.joint_states, 10), JointState)}
    chunks, chunk_latency, latents_latency, modes = [], [], [], []

    def on_chunk(msg):
        modes.append(msg.mode)
        if msg.mode == ActionChunk.MODE_ACTIVE:
            positions = np.asarray(msg.positions).reshape(msg.horizon, len(msg.joint_names))
            # Points due while the model ran were not sent: the first one sent
            # lines up with the command recorded a period before it is due.
            first_due_ns = stamp_to_ns(msg.header.stamp) + round((msg.times_from_start[0] - msg.control_period) * 1e9)
            chunks.append((first_due_ns, positions))
            chunk_latency.append(msg.inference_latency)

    node.create_subscription(ActionChunk, policy.action_chunk_topic, on_chunk, 10)
    node.create_subscription(SpatioMotionLatents, policy.latents_topic, lambda m: latents_latency.append(m.latency), latents_qos())
    try:
        # Hold the clock at the bag's start until both nodes are up: each node
        # loads its model before it subscribes, so a subscription means ready.
        first_ns = stream[0][0]
        deadline = time.monotonic() + args.warmup
        while not nodes_ready(node, policy):
            if time.monotonic() > deadline:
                raise BagError(f"the nodes did not subscribe within {args.warmup} s; see the logs in {args.out}")
            clock.publish(Clock(clock=rclpy.time.Time(nanoseconds=first_ns).to_msg()))
            rclpy.spin_once(node, timeout_sec=0.1)
        time.sleep(0.5)  # let the nodes' side of discovery match our publishers too
        started = time.monotonic()
        for stamp, topic, raw in stream:
            while (wait := (stamp - first_ns) * 1e-9 / args.rate - (time.monotonic() - started)) > 0:
                rclpy.spin_once(node, timeout_sec=min(wait, 0.01))
            clock.publish(Clock(clock=rclpy.time.Time(nanoseconds=stamp).to_msg()))
            publisher, msg_type = publishers[topic]
            publisher.publish(deserialize_message(raw, msg_type))
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        stop_nodes(processes)
        node.destroy_node()
        rclpy.try_shutdown()
        for log in logs:
            log.close()

    report = {"bag": str(args.bag), "rate": args.rate, "chunks": len(modes),
              "active_chunks": len(chunks), **action_errors(chunks, recorded.command_stamps_ns, recorded.commands)}
    for name, values in (("system1", chunk_latency), ("latents", latents_latency)):
        report[f"{name}_latency_p50_ms"], report[f"{name}_latency_p99_ms"] = percentiles_ms(np.asarray(values))
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.hist(np.asarray(chunk_latency) * 1e3, bins=30, alpha=0.7, label="System 1 per chunk")
    axis.hist(np.asarray(latents_latency) * 1e3, bins=30, alpha=0.7, label="System 2 frame-to-latents")
    axis.set_xlabel("latency (ms)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(args.out / "latency.png", dpi=120)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
