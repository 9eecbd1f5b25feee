"""The main job without a robot: the simulated arm closed-loop with the
perception and policy nodes, each its own process over DDS, for a while;
then a report of rates, latencies and task success.

    video2act-demo [--params config/video2act.yaml] [--duration 30]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import yaml

from video2act_core.bringup import sim_nodes
from video2act_core.params import SIM_SCENES, SIM_TASKS, CommonParams, PolicyParams, SimArmParams, node_params
from video2act_eval.launcher import start_spec, stop_nodes


def default_params_file() -> Path:
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory("video2act")) / "config" / "video2act.yaml"


def ensure_checkpoint(requested: Path, joint_names: list[str]) -> Path:
    """The configured checkpoint, or an untrained one when none is there."""
    if requested.exists():
        return requested
    from video2act_core.checkpoint import init_checkpoint

    model_config = yaml.safe_load((default_params_file().parent / "model_tiny.yaml").read_text())
    fallback = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "video2act" / "untrained_tiny"
    if not fallback.exists():
        init_checkpoint(fallback, model_config, joint_names)
    print(f"WARNING: no checkpoint at {requested}; running an UNTRAINED model from {fallback}", file=sys.stderr)
    return fallback


class Monitor:
    """Subscribes to every stream of the loop and keeps rate/latency stats."""

    def __init__(self, params: PolicyParams, sim: SimArmParams):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticStatus
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image, JointState
        from std_msgs.msg import Bool, Empty
        from trajectory_msgs.msg import JointTrajectory

        from video2act_core.control.smoothness import SetpointLog
        from video2act_core.metrics import StreamStats
        from video2act_core.ros import latents_qos
        from video2act_msgs.msg import ActionChunk, SpatioMotionLatents

        self.params = params
        self.node = rclpy.create_node("video2act_demo_monitor")
        # The setpoint the arm's controller follows, rebuilt from the commands
        # the policy reports sending, one log per episode.
        self.new_setpoint_log = lambda: SetpointLog(1.0 / sim.joint_state_rate_hz)
        self.setpoints = self.new_setpoint_log()
        self.episode_smoothness = []
        # system1_ticks: every tick the policy reports, holds included; action_chunk: the active ones.
        self.streams = {
            name: StreamStats(name)
            for name in ("camera", "joint_states", "latents", "system1_ticks", "action_chunk", "trajectory")
        }
        self.outcomes: list[bool] = []
        self.modes: dict[int, int] = {}
        self.hold_reasons: Counter[str] = Counter()  # why System 1 did not act, numbers left out
        self.episode_reports: list[dict[str, str]] = []
        subscribe = self.node.create_subscription
        subscribe(Image, params.image_topic, lambda m: self.streams["camera"].record(), qos_profile_sensor_data)
        subscribe(JointState, params.joint_states_topic, self.on_joint_state, 10)
        subscribe(Empty, params.reset_topic, self.on_reset, 10)
        subscribe(SpatioMotionLatents, params.latents_topic, self.on_latents, latents_qos())
        subscribe(ActionChunk, params.action_chunk_topic, self.on_chunk, 10)
        subscribe(JointTrajectory, params.trajectory_topic, lambda m: self.streams["trajectory"].record(), 10)
        subscribe(Bool, sim.success_topic, self.on_success, 10)
        subscribe(
            DiagnosticStatus,
            "video2act/episode_report",
            lambda m: self.episode_reports.append({kv.key: kv.value for kv in m.values}),
            10,
        )

    def on_joint_state(self, msg) -> None:
        from video2act_core.data.joint_names import JointStateError, reorder_joint_state
        from video2act_core.messages import stamp_to_seconds

        self.streams["joint_states"].record()
        try:
            positions = reorder_joint_state(list(msg.name), list(msg.position), self.params.joint_names)
        except JointStateError:
            return  # the policy reports it; the figures skip it
        self.setpoints.state(stamp_to_seconds(msg.header.stamp), positions)

    def on_reset(self, msg) -> None:
        # A reset moves the arm by hand: not a seam, and not a tracking error.
        self.episode_smoothness.append(self.setpoints.summary())
        self.setpoints = self.new_setpoint_log()

    def on_latents(self, msg) -> None:
        self.streams["latents"].record(latency=msg.latency)

    def on_chunk(self, msg) -> None:
        from video2act_core.messages import command_from_chunk
        from video2act_core.trajectory import TrajectoryRejected

        self.modes[msg.mode] = self.modes.get(msg.mode, 0) + 1
        self.streams["system1_ticks"].record()
        if msg.mode == msg.MODE_ACTIVE:
            self.streams["action_chunk"].record(inference=msg.inference_latency, latents_age=msg.latents_age)
        else:
            self.hold_reasons[re.sub(r"-?\d[\d.e+-]*", "N", msg.reason.split(";")[0])[:90]] += 1
        command = command_from_chunk(msg)
        if command is not None:
            issued_s, trajectory, origin = command
            try:
                self.setpoints.command(issued_s, trajectory, hold=msg.mode != msg.MODE_ACTIVE, initial_positions=origin)
            except TrajectoryRejected:
                pass  # the simulated arm counts the commands its controller refuses

    def smoothness_line(self) -> str:
        episodes = [s for s in self.episode_smoothness + [self.setpoints.summary()] if s.commands]
        if not episodes:
            return "chunk seams: no chunks"
        mean = lambda name: float(np.nanmean([getattr(s, name) for s in episodes]))
        rate = self.streams["system1_ticks"].rate_hz()
        return (
            f"chunk seams ({self.params.execution_strategy}): position jump {mean('seam_position_jump'):.4f} rad, "
            f"velocity jump {mean('seam_velocity_jump'):.3f} rad/s, setpoint RMS jerk "
            f"{mean('setpoint_rms_jerk'):.1f} rad/s^3, tracking RMS {mean('tracking_rms'):.4f} rad\n"
            f"System 1 rate: {rate:.1f} ticks/s of {self.params.rate_hz:g} configured"
        )

    def on_success(self, msg) -> None:
        self.outcomes.append(bool(msg.data))

    def report(self) -> str:
        names = {0: "active", 1: "hold", 2: "rejected", 3: "disarmed"}
        modes = ", ".join(f"{names.get(k, k)}={v}" for k, v in sorted(self.modes.items())) or "none"
        lines = [stream.summary() for stream in self.streams.values()]
        lines.append(f"policy chunks by mode: {modes}")
        held = sum(self.hold_reasons.values())
        for reason, count in self.hold_reasons.most_common(4):
            lines.append(f"  not active {count / held:4.0%}: {reason}")
        lines.append(self.smoothness_line())
        if self.outcomes:
            lines.append(
                f"episodes: {len(self.outcomes)}, succeeded {sum(self.outcomes)} "
                f"(success rate {sum(self.outcomes) / len(self.outcomes):.2f})"
            )
        else:
            lines.append("episodes: none finished yet (run longer: --duration)")
        if self.episode_reports:
            total = {
                key: sum(int(r[key]) for r in self.episode_reports)
                for key in ("commands", "refused_from_last_episode", "refused_all_points_past", "limited_steps")
            }
            peak = max(float(r["peak_speed_ratio"]) for r in self.episode_reports)
            longest = max(float(r["duration_s"]) for r in self.episode_reports)
            lines.append(
                f"simulated arm: {len(self.episode_reports)} episodes of up to {longest:.2f} s, "
                f"{total['commands']} commands executed, "
                f"{total['refused_from_last_episode']} refused as planned before a reset, "
                f"{total['refused_all_points_past']} refused as late, {total['limited_steps']} steps held back "
                f"by its hardware limits, peak joint speed {peak:.2f}x its limit"
            )
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=None, help="ROS 2 params file (default: the installed one)")
    parser.add_argument(
        "--duration", type=float, default=30.0, help="seconds to run the loop, from its first command to the arm"
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=300.0,
        help="seconds to wait for the loop to close (models loading, the first latents) before giving up",
    )
    parser.add_argument("--checkpoint", type=Path, default=None, help="overrides checkpoint_path")
    parser.add_argument("--logs", type=Path, default=Path("runs/demo"), help="directory for the nodes' logs")
    parser.add_argument("--sim-time", action="store_true", help="the simulator publishes /clock; the nodes follow it")
    parser.add_argument(
        "--backend", choices=["kinematic", "mujoco_so101"], help="overrides the params file's simulator"
    )
    parser.add_argument("--task", choices=SIM_TASKS, help="overrides the params file's task")
    parser.add_argument("--scene", choices=SIM_SCENES, help="overrides the params file's scene")
    args = parser.parse_args(argv)

    import rclpy

    from video2act_core.ros import resolve_resource

    params_file = args.params or default_params_file()
    common = node_params(CommonParams, params_file, "/**")
    policy = node_params(PolicyParams, params_file, "video2act_policy")
    sim = node_params(SimArmParams, params_file, "video2act_sim_arm")
    checkpoint = ensure_checkpoint(args.checkpoint or resolve_resource(common.checkpoint_path), common.joint_names)

    args.logs.mkdir(parents=True, exist_ok=True)
    # What `ros2 launch video2act sim.launch.py` starts, with the same arguments.
    specs = sim_nodes(
        {
            "params_file": str(params_file),
            "checkpoint": str(checkpoint.resolve()),
            "use_sim_time": str(args.sim_time).lower(),
            "backend": args.backend or "",
            "task": args.task or "",
            "scene": args.scene or "",
        },
        share=Path(params_file).resolve().parents[1],
    )
    logs = {spec.executable: open(args.logs / f"{spec.executable.name}.log", "w") for spec in specs}
    processes = [start_spec(spec, logs[spec.executable]) for spec in specs]
    rclpy.init()
    monitor = Monitor(policy, sim)
    print(f"video2act demo: sim arm + perception + policy for {args.duration:.0f} s (logs in {args.logs}/)")
    launched = time.monotonic()
    closed_at = None  # the loop's first command: start-up time on a loaded machine is not the demo's
    try:
        while closed_at is None or time.monotonic() - closed_at < args.duration:
            rclpy.spin_once(monitor.node, timeout_sec=0.1)
            if closed_at is None and monitor.streams["trajectory"].count:
                closed_at = time.monotonic()
            if any(p.poll() is not None for p in processes):
                break
            if closed_at is None and time.monotonic() - launched > args.startup_timeout:
                break
    except KeyboardInterrupt:
        pass
    finally:
        codes = stop_nodes(processes)
        monitor.node.destroy_node()
        rclpy.try_shutdown()
        for log in logs.values():
            log.close()
    print(monitor.report())
    failed = [exe.name for exe, code in zip(logs, codes) if code != 0]
    if failed:
        print(f"nodes exited with errors: {failed}; see {args.logs}/", file=sys.stderr)
        return 1
    if closed_at is None:
        print(f"the loop did not close: no command reached the arm; see {args.logs}/", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
