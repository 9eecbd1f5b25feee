"""Offline evaluation by rosbag replay through the two nodes.

    python -m video2act_eval.replay --bag data/sim_demos/episode_001000 [--rate 1.0]

Starts the perception and policy nodes (separate processes, use_sim_time),
plays the bag's camera images (raw or compressed, as recorded) and joint
states with a /clock that follows the bag's timeline (`--rate` > 1 plays
faster), and compares the policy's action chunks with the commands recorded
in the bag; bags from a real robot work the same way (`--image-topic`,
`--joint-states-topic`, `--command-topic` name their topics).

System 2's first pass is its slowest, and on a slow machine it could
outlast a short bag: the player holds the clock once the bag has played
one System 2 period past its first camera frame, until the first latents
arrive (as an operator arms a robot only once perception publishes). From
then on the bag plays at `--rate`, System 2 running as deployed.

Safe next to a robot: the replay runs in a ROS domain of its own with
discovery limited to this machine (`--live-graph` to share the current
one), and the policy's commands go to video2act_replay/*, never to a
controller's topic. The bag is streamed, not loaded: memory stays bounded
whatever its length. Writes report.json (action errors, counts of modes and
hold reasons, latency percentiles, how smoothly the chunks join and the
System 1 rate achieved; also when nothing could be compared) and a latency
histogram.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from video2act_core.checkpoint import CheckpointError, read_manifest
from video2act_core.control.smoothness import SetpointLog
from video2act_core.data.episode import Episode, EpisodeError, EpisodeTopics
from video2act_core.data.images import COMPRESSED_SUFFIX, decode_image
from video2act_core.data.joint_names import JointNameMap
from video2act_core.data.rosbag import find_image_connection, read_episode
from video2act_core.metrics import percentiles_ms
from video2act_core.params import PerceptionParams, PolicyParams, SimArmParams, node_params
from video2act_core.trajectory import TrajectoryRejected
from video2act_core.visualize import OverlayVideo
from video2act_eval.launcher import PERCEPTION, POLICY, start_node, stop_nodes


def recorded_stream(bag: Path, topics: list[str]):
    """(receive time ns, topic, raw CDR bytes) of the bag's messages on
    `topics`, in time order, read as they are played: memory does not grow
    with the bag's length."""
    from rosbags.highlevel import AnyReader

    with AnyReader([bag]) as reader:
        connections = [c for c in reader.connections if c.topic in topics]
        missing = set(topics) - {c.topic for c in connections}
        if missing:
            raise EpisodeError(f"{bag} has no messages on {sorted(missing)}")
        for connection, stamp, raw in reader.messages(connections=connections):
            yield stamp, connection.topic, bytes(raw)


def bag_layout(bag: Path, topics: EpisodeTopics) -> tuple[list[tuple[str, str]], int, int]:
    """The cameras' topics and types in the bag (the video camera's, then
    `topics.extra_cameras`), and the bag's first and last receive times (ns)."""
    from rosbags.highlevel import AnyReader

    try:
        with AnyReader([bag]) as reader:
            cameras = [
                find_image_connection(reader.connections, topic, str(bag))
                for topic in (topics.image, *topics.extra_cameras)
            ]
            return [(camera.topic, camera.msgtype) for camera in cameras], reader.start_time, reader.end_time
    except EpisodeError:
        raise
    except Exception as error:  # rosbags raises several unrelated types for damaged bags
        raise EpisodeError(f"{bag}: cannot read bag: {error}") from error


DEBUG_IMAGE_TOPIC = "video2act_replay/debug_image"
ISOLATION_VARIABLES = ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")


def isolate_ros_graph(domain_id: int | None) -> int:
    """Keep the replay off any live robot's graph: a ROS domain of its own,
    discovery limited to this machine. The node processes inherit it."""
    domain = domain_id if domain_id is not None else 1 + os.getpid() % 100
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    return domain


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
        raise EpisodeError("no policy chunk overlaps the recorded commands")
    return {"chunks_compared": len(whole), "first_step_mae": float(np.mean(first)), "chunk_mae": float(np.mean(whole))}


def nodes_ready(node, camera_topic: str, joint_states_topic: str) -> bool:
    """Perception listens to the camera, and the policy to joint states (after latents)."""
    return all(node.count_subscribers(topic) > 0 for topic in (camera_topic, joint_states_topic))


def wait_for_first_latents(node, processes, latents_received: list, args) -> float:
    """Spin, the clock held, until perception's first latents arrive; the
    wall seconds it took. A node that exits or a wait beyond `--warmup` is
    an error naming the logs."""
    import rclpy

    started = time.monotonic()
    while not latents_received:
        if time.monotonic() - started > args.warmup:
            raise EpisodeError(
                f"no latents from perception within {args.warmup} s of its first frame; see the logs in {args.out}"
            )
        if any(process.poll() is not None for process in processes):
            raise EpisodeError(f"a node exited while System 2 warmed up; see the logs in {args.out}")
        rclpy.spin_once(node, timeout_sec=0.05)
    return time.monotonic() - started


def peak_rss_of(pid: int) -> float:
    """A live process's peak resident memory (MB), from /proc (Linux); NaN elsewhere."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    kilobytes = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), None)
    return float("nan") if kilobytes is None else kilobytes / 1024


def count_modes(modes: list[int], reasons: list[str]) -> dict:
    from video2act_msgs.msg import ActionChunk

    names = {
        getattr(ActionChunk, name): name[len("MODE_") :].lower()
        for name in dir(ActionChunk)
        if name.startswith("MODE_")
    }
    return {
        "modes": dict(Counter(names.get(m, str(m)) for m in modes)),
        "reasons": dict(Counter(r for r in reasons if r).most_common(10)),
    }


def build_parser() -> argparse.ArgumentParser:
    """The command line; the defaults are the repository's checkpoint and params file."""
    repo = Path(__file__).resolve().parents[3]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bag", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, default=repo / "checkpoints" / "sim_demo")
    parser.add_argument("--params", type=Path, default=repo / "config" / "video2act.yaml")
    parser.add_argument(
        "--image-topic",
        help="camera topic in the bag (default: the params file's); raw or "
        "compressed, also found on <topic>/compressed",
    )
    parser.add_argument("--joint-states-topic", help="sensor_msgs/JointState topic in the bag")
    parser.add_argument("--command-topic", help="the recorded trajectory_msgs/JointTrajectory commands")
    parser.add_argument("--strip-joint-suffix", default="", help="cut this off recorded joint names (e.g. .pos)")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed (sim time per wall time)")
    parser.add_argument(
        "--warmup",
        type=float,
        default=120.0,
        help="max seconds to wait for the nodes to start, and then for System 2's first latents",
    )
    parser.add_argument("--domain-id", type=int, help="ROS domain of the replay (default: one from the process id)")
    parser.add_argument(
        "--live-graph",
        action="store_true",
        help="replay in the current ROS domain, visible to other nodes (the policy's commands "
        "still go to video2act_replay/*, never to a controller)",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/replay"))
    parser.add_argument(
        "--overlay-video",
        action="store_true",
        help="write what System 2 saw (boundaries green, motion red, over the frame) to "
        "<out>/overlay.mp4, from perception's debug image",
    )
    parser.add_argument("--debug", action="store_true", help="tracebacks instead of one-line errors")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    environment = {name: os.environ.get(name) for name in ISOLATION_VARIABLES}
    try:
        return replay(args)
    except (EpisodeError, CheckpointError, OSError, ValueError) as error:
        if args.debug:
            raise
        print(f"replay: error: {error}", file=sys.stderr)
        return 1
    finally:  # a caller in the same process (a test, a script) keeps its graph
        for name, value in environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class BagPlan:
    """What the replay plays and compares against, read from the params file,
    the checkpoint and the bag before any node starts."""

    policy: PolicyParams
    topics: EpisodeTopics
    cameras: list[tuple[str, str]]  # (topic, message type) in the bag: the video camera's, then the extra ones
    first_ns: int  # the bag's first and last receive times
    last_ns: int
    joint_map: JointNameMap
    recorded: Episode  # the commands only, no image decoded

    @property
    def camera_topic(self) -> str:
        return self.cameras[0][0]

    @property
    def camera_type(self) -> str:
        return self.cameras[0][1]

    @property
    def extra(self) -> list[tuple[str, str]]:
        return self.cameras[1:]

    @property
    def compressed(self) -> bool:
        return self.camera_type.endswith("CompressedImage")

    @property
    def image_topic(self) -> str:
        """The camera topic perception is configured with (without /compressed)."""
        return self.camera_topic.removesuffix(COMPRESSED_SUFFIX) if self.compressed else self.camera_topic

    @property
    def listen_topic(self) -> str:
        """Where perception subscribes: <image_topic>/compressed for compressed images."""
        return self.image_topic + COMPRESSED_SUFFIX if self.compressed else self.image_topic


def plan_replay(args) -> BagPlan:
    """Topics, cameras and recorded commands, checked before any process
    starts: a missing checkpoint, cameras of mixed types or unusable joint
    names fail here, in one line."""
    policy = node_params(PolicyParams, args.params, "video2act_policy")
    sim = node_params(SimArmParams, args.params, "video2act_sim_arm")
    # A missing or corrupt checkpoint fails here, in one line.
    view_cameras = read_manifest(args.checkpoint).vdm.view_cameras
    # The extra cameras the checkpoint's image tokens read, as the params name them.
    extra_cameras = policy.extra_camera_topics[: max(view_cameras - 1, 0)]
    topics = EpisodeTopics(
        args.image_topic or policy.image_topic,
        args.joint_states_topic or policy.joint_states_topic,
        args.command_topic or policy.trajectory_topic,
        sim.success_topic,
        policy.instruction_topic,
        tuple(extra_cameras),
    )
    cameras, first_ns, last_ns = bag_layout(args.bag, topics)
    camera_type, extra = cameras[0][1], cameras[1:]
    if any(msgtype != camera_type for _, msgtype in extra):
        raise EpisodeError(
            f"{args.bag}: the cameras {[topic for topic, _ in cameras]} are recorded with different "
            "image types; perception takes them all through one image_transport"
        )
    # The commands only (no image is decoded): fails early on unusable
    # joint names or commands, and names them.
    joint_map = JointNameMap(strip_suffix=args.strip_joint_suffix)
    recorded = read_episode(args.bag, topics, policy.joint_names, images=False, joint_name_map=joint_map)
    return BagPlan(policy, topics, cameras, first_ns, last_ns, joint_map, recorded)


def start_replay_nodes(args, plan: BagPlan) -> tuple[dict, list]:
    """The perception and policy processes (use_sim_time), each logging to
    <out>/<node>.log; (logs, processes)."""
    # The replayed policy is armed so that it plans; its commands go to a
    # replay topic of their own, so even on a live graph no controller gets
    # them. Reliable images: large frames over best effort are mostly lost.
    extra_topics = [topic.removesuffix(COMPRESSED_SUFFIX) if plan.compressed else topic for topic, _ in plan.extra]
    common = {
        "checkpoint_path": str(args.checkpoint.resolve()),
        "use_sim_time": True,
        "image_topic": plan.image_topic,
        "extra_camera_topics": extra_topics,
        "joint_states_topic": plan.topics.joint_states,
    }
    overrides = {
        PERCEPTION: {
            **common,
            "image_qos": "reliable",
            "image_transport": "compressed" if plan.compressed else "raw",
            "debug_image_topic": DEBUG_IMAGE_TOPIC if args.overlay_video else "",
        },
        POLICY: {
            **common,
            "start_armed": True,
            "trajectory_topic": "video2act_replay/arm_commands",
            "gripper_command_topic": "video2act_replay/gripper_commands",
            "robot_description_topic": "",
        },
    }
    logs = {exe: open(args.out / f"{exe.name}.log", "w") for exe in (PERCEPTION, POLICY)}
    processes = [start_node(exe, args.params, overrides[exe], logs[exe]) for exe in (PERCEPTION, POLICY)]
    return logs, processes


class BagPlayer:
    """The replay's own node: publishes the bag's cameras, joint states,
    instruction and /clock, and keeps what the nodes send back (chunks,
    their latencies, modes and reasons, latents latencies, the setpoints a
    controller would have followed, the overlay video)."""

    def __init__(self, args, plan: BagPlan):
        import rclpy

        self.node = rclpy.create_node("video2act_replay")
        self.publishers = self.create_publishers(plan)
        self.chunks, self.chunk_latency, self.latents_latency, self.modes, self.reasons = [], [], [], [], []
        # The policy's commands as a controller would have followed them (they
        # drive nothing here, so no tracking error): how smoothly chunks join.
        self.setpoints = SetpointLog(plan.policy.action_period_s / 10)
        self.video = None
        self.create_subscriptions(args, plan.policy)

    def create_publishers(self, plan: BagPlan) -> dict:
        """/clock (kept as self.clock), one publisher per played topic, and the latched instruction."""
        from rclpy.qos import QoSProfile, QoSReliabilityPolicy
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import CompressedImage, Image, JointState
        from std_msgs.msg import String

        from video2act_core.ros import latched_qos

        node = self.node
        self.clock = node.create_publisher(Clock, "/clock", 10)
        reliable = QoSProfile(depth=30, reliability=QoSReliabilityPolicy.RELIABLE)
        image_type = CompressedImage if plan.compressed else Image
        publishers = {
            plan.camera_topic: node.create_publisher(image_type, plan.listen_topic, reliable),
            **{topic: node.create_publisher(image_type, topic, reliable) for topic, _ in plan.extra},
            plan.topics.joint_states: node.create_publisher(JointState, plan.topics.joint_states, 50),
        }
        if plan.recorded.instruction:
            # Latched, as on a robot: the policy gets it whenever it subscribes.
            latched = latched_qos()
            node.create_publisher(String, plan.policy.instruction_topic, latched).publish(
                String(data=plan.recorded.instruction)
            )
        return publishers

    def create_subscriptions(self, args, policy: PolicyParams) -> None:
        """The policy's chunks, perception's latents and, for --overlay-video, its debug image."""
        from rclpy.qos import QoSProfile, QoSReliabilityPolicy
        from sensor_msgs.msg import Image

        from video2act_core.ros import latents_qos
        from video2act_msgs.msg import ActionChunk, SpatioMotionLatents

        node = self.node
        node.create_subscription(ActionChunk, policy.action_chunk_topic, self.on_chunk, 100)
        if args.overlay_video:
            video = self.video = OverlayVideo(
                args.out / "overlay.mp4", fps=node_params(PerceptionParams, args.params, "video2act_perception").rate_hz
            )
            reliable_debug = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
            node.create_subscription(
                Image,
                DEBUG_IMAGE_TOPIC,
                lambda msg: video.write(decode_image(msg.encoding, msg.height, msg.width, msg.step, msg.data)),
                reliable_debug,
            )
        node.create_subscription(
            SpatioMotionLatents, policy.latents_topic, lambda m: self.latents_latency.append(m.latency), latents_qos()
        )

    def on_chunk(self, msg) -> None:
        from video2act_core.messages import command_from_chunk, stamp_to_ns
        from video2act_msgs.msg import ActionChunk

        self.modes.append(msg.mode)
        self.reasons.append(msg.reason)
        command = command_from_chunk(msg)
        if command is not None:
            issued_s, trajectory, origin = command
            with contextlib.suppress(TrajectoryRejected):
                self.setpoints.command(
                    issued_s, trajectory, hold=msg.mode != ActionChunk.MODE_ACTIVE, initial_positions=origin
                )
        if msg.mode == ActionChunk.MODE_ACTIVE:
            positions = np.asarray(msg.positions).reshape(msg.horizon, len(msg.joint_names))
            # Points due while the model ran were not sent: the first one sent
            # lines up with the command recorded a period before it is due.
            first_due_ns = stamp_to_ns(msg.header.stamp) + round((msg.times_from_start[0] - msg.control_period) * 1e9)
            self.chunks.append((first_due_ns, positions))
            self.chunk_latency.append(msg.inference_latency)

    def publish_clock(self, stamp_ns: int) -> None:
        from rclpy.time import Time
        from rosgraph_msgs.msg import Clock

        self.clock.publish(Clock(clock=Time(nanoseconds=stamp_ns).to_msg()))

    def close(self) -> None:
        if self.video is not None:
            self.video.close()
        self.node.destroy_node()


def wait_for_nodes(player: BagPlayer, processes: list, args, plan: BagPlan) -> None:
    """Hold the clock at the bag's start until both nodes are up: each node
    loads its model before it subscribes, so a subscription means ready."""
    import rclpy

    deadline = time.monotonic() + args.warmup
    while not nodes_ready(player.node, plan.listen_topic, plan.topics.joint_states):
        if time.monotonic() > deadline:
            raise EpisodeError(f"the nodes did not subscribe within {args.warmup} s; see the logs in {args.out}")
        if any(process.poll() is not None for process in processes):
            raise EpisodeError(f"a node exited while starting; see the logs in {args.out}")
        player.publish_clock(plan.first_ns)
        rclpy.spin_once(player.node, timeout_sec=0.1)
    time.sleep(0.5)  # let the nodes' side of discovery match our publishers too


def play(player: BagPlayer, processes: list, args, plan: BagPlan) -> tuple[int, float, float]:
    """Stream the bag at --rate under a /clock that follows its timeline,
    held once for System 2's first latents (see the module's docstring);
    (messages played, wall seconds held, wall seconds the playback took)."""
    import rclpy
    from rclpy.duration import Duration
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import JointState

    node, publishers, topics = player.node, player.publishers, plan.topics
    played, warmup_s = 0, 0.0
    started = time.monotonic()
    system2_period_ns = round(1e9 / node_params(PerceptionParams, args.params, "video2act_perception").rate_hz)
    first_frame_ns = None  # the bag time of the first camera frame perception has acknowledged
    for stamp, topic, raw in recorded_stream(args.bag, [*(topic for topic, _ in plan.cameras), topics.joint_states]):
        while (wait := (stamp - plan.first_ns) * 1e-9 / args.rate - (time.monotonic() - started)) > 0:
            rclpy.spin_once(node, timeout_sec=min(wait, 0.01))
        player.publish_clock(stamp)
        if first_frame_ns is not None and not player.latents_latency and stamp >= first_frame_ns + system2_period_ns:
            # System 2 has ticked at least once with a frame in its buffer: hold until it has published.
            held_s = wait_for_first_latents(node, processes, player.latents_latency, args)
            warmup_s += held_s
            started += held_s  # the bag goes on from where it was held
        if topic == topics.joint_states and args.strip_joint_suffix:
            # The nodes know the configured names only: rename as the recording is read.
            message = deserialize_message(raw, JointState)
            message.name = plan.joint_map.names(list(message.name))
            publishers[topic].publish(message)
        else:
            publishers[topic].publish(raw)  # as recorded: serialized, never decoded here
        if first_frame_ns is None and topic == plan.camera_topic:
            # Acknowledged before any later /clock: the frame is in perception's buffer before its
            # timer can tick past this stamp (the clock's callback precedes the timer's).
            acked = time.monotonic()
            publishers[topic].wait_for_all_acked(Duration(seconds=args.warmup))
            started += time.monotonic() - acked  # no burst of overdue messages after the wait
            first_frame_ns = stamp
        played += 1
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    return played, warmup_s, time.monotonic() - started


def replay(args) -> int:
    """Plan from the bag, start the nodes, play the bag through them, then
    write and print the report; the nodes are stopped whatever happens."""
    plan = plan_replay(args)
    domain = None if args.live_graph else isolate_ros_graph(args.domain_id)

    import rclpy

    args.out.mkdir(parents=True, exist_ok=True)
    logs, processes = start_replay_nodes(args, plan)
    rclpy.init()
    player = None
    try:
        player = BagPlayer(args, plan)
        wait_for_nodes(player, processes, args, plan)
        played, warmup_s, wall_s = play(player, processes, args, plan)
        peak_rss_mb = {
            "replay": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            **{exe.name: peak_rss_of(process.pid) for exe, process in zip((PERCEPTION, POLICY), processes)},
        }
    finally:
        stop_nodes(processes)
        if player is not None:
            player.close()
        rclpy.try_shutdown()
        for log in logs.values():
            log.close()

    report = replay_report(args, plan, player, domain, played, warmup_s, wall_s, peak_rss_mb)
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    write_latency_plot(args.out / "latency.png", player.chunk_latency, player.latents_latency)
    print(json.dumps(report, indent=2))
    if "error" in report:
        raise EpisodeError(f"{report['error']}; report in {args.out / 'report.json'}")
    return 0


def replay_report(
    args,
    plan: BagPlan,
    player: BagPlayer,
    domain: int | None,
    played: int,
    warmup_s: float,
    wall_s: float,
    peak_rss_mb: dict[str, float],
) -> dict:
    """report.json: what was played, counts, memory, rates, smoothness,
    latency percentiles and the action errors (or why there are none)."""
    policy, first_ns, last_ns = plan.policy, plan.first_ns, plan.last_ns
    report = {
        "bag": str(args.bag),
        "rate": args.rate,
        "bag_seconds": round((last_ns - first_ns) * 1e-9, 2),
        "wall_seconds": round(wall_s, 2),
        "system2_warmup_wall_s": round(warmup_s, 2),
        "ros_domain_id": domain,
        "camera_topic": plan.camera_topic,
        "extra_camera_topics": [topic for topic, _ in plan.extra],
        "camera_type": plan.camera_type,
        "messages_played": played,
        "chunks": len(player.modes),
        "active_chunks": len(player.chunks),
        **count_modes(player.modes, player.reasons),
        "peak_rss_mb": {name: round(value) for name, value in peak_rss_mb.items()},
        "execution_strategy": policy.execution_strategy,
        "system1_chunks_per_s": round(len(player.chunks) / max((last_ns - first_ns) * 1e-9, 1e-9), 2),
        "system1_configured_rate_hz": policy.rate_hz,
        **{
            key: value
            for key, value in player.setpoints.summary().as_dict().items()
            if key not in ("tracking_rms", "commands")
        },
    }
    for name, values in (("system1", player.chunk_latency), ("latents", player.latents_latency)):
        report[f"{name}_latency_p50_ms"], report[f"{name}_latency_p99_ms"] = percentiles_ms(np.asarray(values))
    try:
        report.update(action_errors(player.chunks, plan.recorded.command_stamps_ns, plan.recorded.commands))
    except EpisodeError as error:
        report["error"] = str(error)
    return report


def write_latency_plot(path: Path, chunk_latency: list[float], latents_latency: list[float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.hist(np.asarray(chunk_latency) * 1e3, bins=30, alpha=0.7, label="System 1 per chunk")
    axis.hist(np.asarray(latents_latency) * 1e3, bins=30, alpha=0.7, label="System 2 frame-to-latents")
    axis.set_xlabel("latency (ms)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    raise SystemExit(main())
