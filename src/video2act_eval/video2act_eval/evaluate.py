"""Closed-loop evaluation on the simulated arm and the ablation table.

    python -m video2act_eval.evaluate --checkpoint checkpoints/sim_demo --episodes 20
    python -m video2act_eval.evaluate --checkpoint checkpoints/sim_demo \\
        --variant no_motion=runs/ablations/no_motion --variant no_spatial=runs/ablations/no_spatial \\
        --ratios 1 4 8 --out runs/eval
    python -m video2act_eval.evaluate --strategies replace temporal_ensemble rtc \\
        --delays-ms 0 100 200 400 --out runs/execution

Runs seeded episodes in sim time through the same PolicySupervisor (planner
and safety envelope) as the policy node, on the simulated arm with its
hardware limits. Chunks are stamped with the time they were planned at and
reach the arm after their measured compute time, so the synchronous
baseline (System 2 and System 1 back to back, the next cycle only when both
are done) pays for System 2 in arm time, while the asynchronous rows pay
only for System 1 and use latents up to `ratio - 1` ticks stale. System 1
ticks at the policy's rate_hz and System 2 updates every `ratio` ticks
(default: as the nodes' rates give it). Besides
success it reports, per episode (episodes.csv) and per row (results.csv,
results.png), the time without a chunk, the steps the arm's hardware limits
held it back, the commands its controller refused, and how smoothly chunks
join. --strategies and --delays-ms compare execution strategies under an
extra System 1 delay (a slower head or computer: System 1 skips the ticks
it is busy for), with execution.png plotting success and seam jumps.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from video2act_core.checkpoint import load_policy
from video2act_core.control import (
    STRATEGIES,
    JointLimits,
    JointStateSample,
    LatentsSample,
    Mode,
    PolicySupervisor,
    build_supervisor,
)
from video2act_core.data.frames import CameraInputs, ViewSpec
from video2act_core.devices import limit_cpu_threads
from video2act_core.params import SIM_SCENES, SIM_TASKS, PerceptionParams, PolicyParams, SimArmParams, node_params
from video2act_core.visualize import OverlayVideo, overlay
from video2act_eval.tables import write_block
from video2act_sim.arm import SimArm
from video2act_sim.episode import Command, EpisodeResult, run_episode


class Video2ActController:
    """System 2 every `update_ratio` ticks, System 1 every tick it is free:
    a System 1 that takes longer than a tick (its inference plus
    `extra_delay_s`, as a slower model or computer would) skips ticks."""

    def __init__(
        self,
        policy,
        supervisor: PolicySupervisor,
        update_ratio: int,
        synchronous: bool,
        overlay_video: OverlayVideo | None = None,
        extra_delay_s: float = 0.0,
        system1_latency_s: float | None = None,
        instruction: str = "",
    ):
        self.policy, self.supervisor = policy, supervisor
        self.instruction = instruction  # for a video model conditioned on it
        self.update_ratio, self.synchronous = update_ratio, synchronous
        self.overlay_video = overlay_video
        self.extra_delay_s = extra_delay_s
        # A fixed System 1 compute time in place of the measured one: figures
        # that do not depend on what else loads the machine.
        self.system1_latency_s = system1_latency_s
        self.system2_s: list[float] = []
        self.system1_s: list[float] = []

    def reset(self, arm: SimArm) -> None:
        self.latents: LatentsSample | None = None
        self.tick = 0
        self.busy_until_s = 0.0
        self.supervisor.reset()

    def act(self, time_s: float, joint_positions: np.ndarray, cameras: CameraInputs) -> Command | None:
        if time_s < self.busy_until_s:
            return None  # the synchronous loop is still computing its last chunk
        clip, views, _ = cameras.read()
        system2 = 0.0
        if clip is not None and (self.latents is None or self.tick % self.update_ratio == 0):
            started = time.perf_counter()
            tokens = self.policy.system2.encode(clip.frames, [view.frames for view in views] or None, self.instruction)
            system2 = time.perf_counter() - started
            self.system2_s.append(system2)
            if self.overlay_video is not None:
                self.overlay_video.write(overlay(clip.frames[-1], tokens.boundary_map, tokens.motion_map))
            self.latents = LatentsSample(tokens, clip.stamps_ns[-1], self.tick, self.policy.system2.model_id)
        self.tick += 1
        # The chunk is sent once System 1 (and, synchronously, System 2) has run.
        delay = self.extra_delay_s + (system2 if self.synchronous else 0.0)
        compute = lambda plan: plan.inference_s if self.system1_latency_s is None else self.system1_latency_s
        step = self.supervisor.tick(
            self.latents,
            JointStateSample(joint_positions, time_s),
            now_s=time_s,
            publish_time=lambda plan: time_s + compute(plan) + delay,
        )
        if step.plan is not None and step.mode == Mode.ACTIVE:
            self.system1_s.append(step.plan.inference_s)
        if step.plan is not None:
            # The next cycle starts once this one's chunk is out (synchronously:
            # after System 2 and System 1 back to back).
            self.busy_until_s = time_s + delay + compute(step.plan)
        command = step.command
        if command is None:
            return None
        return Command(
            command.positions,
            command.issued_s - time_s,
            command.stamp_s,
            command.times_s,
            command.velocities,
            command.hold,
        )


@dataclass
class Row:
    variant: str
    mode: str
    update_ratio: int
    strategy: str  # how chunks are joined (execution_strategy)
    delay_ms: float  # extra System 1 delay injected
    episodes: int
    success_rate: float
    mean_steps: float
    mean_final_distance: float
    system2_p50_ms: float
    system1_p50_ms: float
    control_rate_hz: float
    chunk_rate_hz: float  # chunks that reached the arm per second of sim time (configured: rate_hz)
    mean_hold_s: float  # per episode: no chunk sent (holding or waiting for inputs)
    rejected_commands: int  # refused by the arm's controller (every point past)
    limited_steps: int  # physics steps the arm's hardware limits held it back
    peak_speed_ratio: float  # highest joint speed over its hardware limit
    seam_position_jump: float  # mean disagreement of a new chunk with the running one where it takes over (rad)
    seam_velocity_jump: float  # mean change of setpoint velocity where a command takes over (rad/s)
    setpoint_rms_jerk: float  # rad/s^3
    tracking_rms: float  # rad


def evaluate(
    checkpoint: Path,
    variant: str,
    ratio: int,
    synchronous: bool,
    seeds: list[int],
    sim: SimArmParams,
    params: PolicyParams,
    episodes: list[dict],
    overlay_video: OverlayVideo | None = None,
    extra_delay_s: float = 0.0,
    system1_latency_s: float | None = None,
    times: tuple[list, list] | None = None,
    system2_device: str | None = None,
) -> Row:
    """One row of the table; appends each episode's result to `episodes`
    and, with `times`, each System 2 and System 1 time measured to its two
    lists (to summarise rows evaluated in parts); draws what System 2 saw at
    each update into `overlay_video`. System 1 runs on `params.device`,
    System 2 on `system2_device` when given."""
    policy = load_policy(
        checkpoint, device=system2_device or params.device, seed=params.seed, system1_device=params.device
    )
    limits = JointLimits.from_lists(
        params.joint_names, params.joint_lower_limits, params.joint_upper_limits, params.max_joint_velocity
    )
    # Ages in sim time are bounded by the update ratio; the node's limits apply.
    supervisor = build_supervisor(policy.system1, params, limits, start_armed=True)
    task = params.instruction or sim.task_instruction  # as the sim node publishes it
    if policy.system1.needs_instruction:
        supervisor.planner.instruction = task
    controller = Video2ActController(
        policy, supervisor, ratio, synchronous, overlay_video, extra_delay_s, system1_latency_s, task
    )
    results = [
        run_episode(
            controller,
            seed,
            sim,
            params.action_period_s,
            policy.system2.config.num_frames,
            tick_period_s=1.0 / params.rate_hz,
            views=ViewSpec.of(policy.system2.config),
        )
        for seed in seeds
    ]
    mode = "sync" if synchronous else "async"
    for result in results:
        episodes.append(
            {
                "variant": variant,
                "mode": mode,
                "update_ratio": ratio,
                "strategy": params.execution_strategy,
                "delay_ms": extra_delay_s * 1e3,
                **result.__dict__,
            }
        )
    if times is not None:
        times[0].extend(controller.system2_s)
        times[1].extend(controller.system1_s)
    return summarise(
        variant,
        ratio,
        synchronous,
        params.execution_strategy,
        extra_delay_s,
        results,
        controller.system2_s,
        controller.system1_s,
    )


def summarise(
    variant: str,
    ratio: int,
    synchronous: bool,
    strategy: str,
    extra_delay_s: float,
    results: list[EpisodeResult],
    system2_s: list[float],
    system1_s: list[float],
) -> Row:
    """A row from its episodes and the System 2 / System 1 times measured in them."""
    mode = "sync" if synchronous else "async"
    s2 = float(np.median(system2_s)) if system2_s else float("nan")
    s1 = float(np.median(system1_s)) if system1_s else float("nan")
    # Chunks per second the loop sustains: System 1 alone when System 2 runs
    # beside it, both back to back in the synchronous baseline.
    rate = 1.0 / (s1 + s2) if synchronous else 1.0 / s1
    chunk_rate = sum(r.chunks for r in results) / sum(r.duration_s for r in results)
    return Row(
        variant,
        mode,
        ratio,
        strategy,
        extra_delay_s * 1e3,
        len(results),
        float(np.mean([r.success for r in results])),
        float(np.mean([r.steps for r in results])),
        float(np.mean([r.final_distance for r in results])),
        s2 * 1e3,
        s1 * 1e3,
        rate,
        chunk_rate,
        float(np.mean([r.hold_s for r in results])),
        sum(r.rejected_commands for r in results),
        sum(r.limited_steps for r in results),
        max(r.peak_speed_ratio for r in results),
        *(
            float(np.mean([getattr(r, name) for r in results]))
            for name in ("seam_position_jump", "seam_velocity_jump", "setpoint_rms_jerk", "tracking_rms")
        ),
    )


def node_update_ratio(params: PolicyParams, params_file: Path) -> int:
    """System 1 ticks per System 2 update as the nodes run: their rate_hz ratio."""
    perception = node_params(PerceptionParams, params_file, "video2act_perception")
    return max(1, round(params.rate_hz / perception.rate_hz))


def evaluate_row(call: tuple) -> tuple[Row, list[dict], tuple[list, list]]:
    """`evaluate` in a worker process: the row, its episodes and the System 2
    and System 1 times measured."""
    checkpoint, name, ratio, synchronous, seeds, sim, params, delay, system1_latency, system2_device = call
    episodes: list[dict] = []
    times: tuple[list, list] = ([], [])
    row = evaluate(
        checkpoint,
        name,
        ratio,
        synchronous,
        seeds,
        sim,
        params,
        episodes,
        None,
        delay,
        system1_latency,
        times,
        system2_device,
    )
    return row, episodes, times


def core_share(processes: int) -> int:
    """Cores for each of `processes` running side by side (at least one)."""
    return max(1, len(os.sched_getaffinity(0)) // max(1, processes))


def evaluate_in_processes(calls: list[tuple], jobs: int):
    """`evaluate_row` of every call, `jobs` rows side by side, each process
    with its share of the cores; yields its results in call order."""
    threads = core_share(jobs)
    with ProcessPoolExecutor(
        jobs, mp_context=multiprocessing.get_context("spawn"), initializer=torch.set_num_threads, initargs=(threads,)
    ) as pool:
        yield from pool.map(evaluate_row, calls)


def write_results(rows: list[Row], episodes: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "episodes.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(episodes[0]))
        writer.writeheader()
        writer.writerows(episodes)
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(Row.__dataclass_fields__))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.__dict__.items()})
    (out / "results.md").write_text(format_markdown(rows) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r.variant}\n{r.mode} 1:{r.update_ratio}\n{r.strategy} +{r.delay_ms:.0f} ms" for r in rows]
    figure, (left, right) = plt.subplots(1, 2, figsize=(max(8, 1.4 * len(rows)), 4))
    left.bar(labels, [r.success_rate for r in rows], color="tab:blue")
    left.set_ylabel("success rate")
    left.set_ylim(0, 1)
    right.bar(labels, [r.control_rate_hz for r in rows], color="tab:orange")
    right.set_ylabel("chunks / s (measured latency)")
    for axis in (left, right):
        axis.tick_params(axis="x", labelsize=7)
    figure.tight_layout()
    figure.savefig(out / "results.png", dpi=120)
    plt.close(figure)
    if len({r.delay_ms for r in rows}) > 1:
        plot_execution(rows, out / "execution.png", plt)


def plot_execution(rows: list[Row], path: Path, plt) -> None:
    """Success and seam smoothness against the injected System 1 delay, one line per strategy."""
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    panels = (
        ("success_rate", "success rate"),
        ("seam_position_jump", "seam position jump (rad)"),
        ("seam_velocity_jump", "seam velocity jump (rad/s)"),
    )
    for strategy in dict.fromkeys(r.strategy for r in rows):
        mine = sorted(
            (r for r in rows if r.strategy == strategy and r.mode == "async" and r.variant == "full"),
            key=lambda r: r.delay_ms,
        )
        for axis, (field_name, label) in zip(axes, panels):
            axis.plot([r.delay_ms for r in mine], [getattr(r, field_name) for r in mine], marker="o", label=strategy)
            axis.set_xlabel("extra System 1 delay (ms)")
            axis.set_ylabel(label)
    axes[0].set_ylim(0, 1)
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def format_table(rows: list[Row]) -> str:
    header = (
        f"{'variant':<12} {'mode':<5} {'ratio':>5} {'strategy':<17} {'+ms':>4} {'n':>3} {'success':>8} "
        f"{'steps':>6} {'dist':>6} {'S2 ms':>7} {'S1 ms':>6} {'Hz':>6} {'chunk/s':>7} {'hold s':>6} {'clip':>5} "
        f"{'rej':>4} {'seam p':>6} {'seam v':>6} {'jerk':>7} {'track':>6}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.variant:<12} {r.mode:<5} {'1:' + str(r.update_ratio):>5} {r.strategy:<17} {r.delay_ms:>4.0f} "
            f"{r.episodes:>3} {r.success_rate:>8.2f} {r.mean_steps:>6.1f} {r.mean_final_distance:>6.3f} "
            f"{r.system2_p50_ms:>7.1f} {r.system1_p50_ms:>6.1f} {r.control_rate_hz:>6.1f} "
            f"{r.chunk_rate_hz:>7.1f} {r.mean_hold_s:>6.2f} {r.limited_steps:>5} {r.rejected_commands:>4} "
            f"{r.seam_position_jump:>6.3f} {r.seam_velocity_jump:>6.3f} {r.setpoint_rms_jerk:>7.1f} "
            f"{r.tracking_rms:>6.3f}"
        )
    return "\n".join(lines)


def format_markdown(rows: list[Row]) -> str:
    """The table as a README takes it."""
    lines = [
        "| variant | mode | S2:S1 | strategy | extra delay ms | n | success | final distance | chunks/s | "
        "seam position jump rad | seam velocity jump rad/s | RMS jerk rad/s^3 | tracking rad |",
        "|" + " --- |" * 13,
    ]
    for r in rows:
        lines.append(
            f"| {r.variant} | {r.mode} | 1:{r.update_ratio} | {r.strategy} | {r.delay_ms:.0f} | {r.episodes} | "
            f"{r.success_rate:.2f} | {r.mean_final_distance:.3f} | {r.chunk_rate_hz:.1f} | "
            f"{r.seam_position_jump:.4f} | {r.seam_velocity_jump:.3f} | {r.setpoint_rms_jerk:.0f} | "
            f"{r.tracking_rms:.4f} |"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command line; the defaults are the repository's checkpoint and params file."""
    repo = Path(__file__).resolve().parents[3]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=repo / "checkpoints" / "sim_demo")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=CHECKPOINT",
        help="another checkpoint to evaluate at the first ratio (e.g. an ablation)",
    )
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument(
        "--docs",
        metavar="FILE#BLOCK",
        help="also write the table into block BLOCK of this Markdown file (<!-- results:BLOCK -->, e.g. "
        "docs/execution.md#strategies-under-delay)",
    )
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument(
        "--ratios",
        type=int,
        nargs="+",
        help="System 2 update every N System 1 ticks (default: the nodes' rate_hz ratio, 30 / 2 = 15)",
    )
    parser.add_argument("--rate-hz", type=float, help="System 1 ticks per second (default: the policy's rate_hz)")
    parser.add_argument("--sync", action="store_true", help="add the synchronous baseline row")
    parser.add_argument(
        "--strategies",
        nargs="+",
        choices=STRATEGIES,
        help="execution strategies to compare (default: the params file's execution_strategy)",
    )
    parser.add_argument(
        "--delays-ms",
        type=float,
        nargs="+",
        default=[0.0],
        help="extra System 1 delay to inject, each a row per strategy (e.g. 0 100 200 400)",
    )
    parser.add_argument("--params", type=Path, default=repo / "config" / "video2act.yaml")
    parser.add_argument("--out", type=Path, default=Path("runs/eval"))
    parser.add_argument(
        "--backend", choices=["kinematic", "mujoco_so101"], help="overrides the params file's simulator"
    )
    parser.add_argument("--task", choices=SIM_TASKS, help="overrides the params file's task")
    parser.add_argument("--instruction", help="the simulator's task instruction (overrides the params file's)")
    parser.add_argument(
        "--scene", choices=SIM_SCENES, help="what the simulated camera sees (overrides the params file's)"
    )
    parser.add_argument("--camera-noise", type=float, help="sensor noise on the simulated camera (grey levels)")
    parser.add_argument("--camera-flicker", type=float, help="brightness flicker of the simulated camera (1 +- this)")
    parser.add_argument(
        "--system1-latency-ms",
        type=float,
        help="take System 1 this long in sim time instead of its measured time (load-independent "
        "figures, e.g. with --jobs)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="rows evaluated side by side in this many processes (each gets its share of the cores)",
    )
    parser.add_argument(
        "--overlay-video",
        type=Path,
        help="write the first row's System 2 updates, maps drawn over the frame, to this video "
        "(e.g. runs/eval/overlay.mp4)",
    )
    return parser


def row_calls(args, parser: argparse.ArgumentParser) -> tuple[PolicyParams, list[tuple]]:
    """The policy's params and one `evaluate_row` call per row: every ratio,
    strategy and delay, then the synchronous baseline and the variants
    (--ratios defaults to the nodes' update ratio, written back to args)."""
    overrides = {
        name: value
        for name, value in (
            ("camera_noise_std", args.camera_noise),
            ("camera_flicker", args.camera_flicker),
            ("backend", args.backend),
            ("task", args.task),
            ("task_instruction", args.instruction),
            ("scene", args.scene),
        )
        if value is not None
    }
    sim = node_params(SimArmParams, args.params, "video2act_sim_arm", overrides or None)
    params = node_params(
        PolicyParams, args.params, "video2act_policy", {"rate_hz": args.rate_hz} if args.rate_hz else None
    )
    args.ratios = args.ratios or [node_update_ratio(params, args.params)]
    seeds = list(range(args.first_seed, args.first_seed + args.episodes))
    strategies = args.strategies or [params.execution_strategy]
    # (variant, checkpoint, ratio, synchronous, strategy, extra delay in s)
    runs = [
        ("full", args.checkpoint, ratio, False, strategy, delay / 1e3)
        for ratio in args.ratios
        for strategy in strategies
        for delay in args.delays_ms
    ]
    if args.sync:
        runs.append(("full", args.checkpoint, 1, True, strategies[0], 0.0))
    for item in args.variant:
        name, _, path = item.partition("=")
        runs.append((name, Path(path), args.ratios[0], False, strategies[0], 0.0))
    if args.jobs > 1 and args.overlay_video:
        parser.error("--overlay-video draws one row's updates: use it with --jobs 1")
    system1_latency = None if args.system1_latency_ms is None else args.system1_latency_ms / 1e3
    # Each system on its node's device, as the perception and policy nodes run them.
    system2_device = node_params(PerceptionParams, args.params, "video2act_perception").device
    calls = [
        (
            checkpoint,
            name,
            ratio,
            synchronous,
            seeds,
            sim,
            dataclasses.replace(params, execution_strategy=strategy),
            delay,
            system1_latency,
            system2_device,
        )
        for name, checkpoint, ratio, synchronous, strategy, delay in runs
    ]
    return params, calls


def evaluate_rows(calls: list[tuple], args, params: PolicyParams) -> tuple[list[Row], list[dict]]:
    """Every row and its episodes: with --jobs, rows side by side in worker
    processes; else one after the other here, the first drawing
    --overlay-video. Each row's line is printed as it completes."""
    rows, episodes = [], []
    if args.jobs > 1:
        for row, row_episodes, _ in evaluate_in_processes(calls, args.jobs):
            rows.append(row)
            episodes.extend(row_episodes)
            print(format_table(rows[-1:]).splitlines()[-1], flush=True)
        return rows, episodes
    limit_cpu_threads(params.torch_threads)  # as the policy node runs System 1
    video = OverlayVideo(args.overlay_video, params.rate_hz / args.ratios[0]) if args.overlay_video else None
    try:
        for index, (
            checkpoint,
            name,
            ratio,
            synchronous,
            seeds,
            sim,
            row_params,
            delay,
            latency,
            s2_device,
        ) in enumerate(calls):
            rows.append(
                evaluate(
                    checkpoint,
                    name,
                    ratio,
                    synchronous,
                    seeds,
                    sim,
                    row_params,
                    episodes,
                    video if index == 0 else None,
                    delay,
                    latency,
                    system2_device=s2_device,
                )
            )
            print(format_table(rows[-1:]).splitlines()[-1], flush=True)
    finally:
        if video is not None:
            video.close()
    return rows, episodes


def print_summary(rows: list[Row], args, params: PolicyParams) -> None:
    """The table, what its short column names mean, and the files written."""
    print(format_table(rows))
    print(
        "hold s: mean time per episode without a chunk; clip: physics steps the arm's hardware limits held it "
        "back; rej: commands its controller refused; seam p: mean disagreement of a new chunk with the running "
        "one where it takes over (rad); seam v: mean setpoint velocity jump there (rad/s); jerk: RMS setpoint jerk "
        "(rad/s^3); track: RMS tracking error (rad); chunk/s: chunks that reached the arm per second (configured "
        f"{params.rate_hz:g})"
    )
    print(
        f"wrote {args.out / 'results.csv'} (.md), {args.out / 'episodes.csv'} and {args.out / 'results.png'}"
        + (f" and {args.out / 'execution.png'}" if len(args.delays_ms) > 1 else "")
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    params, calls = row_calls(args, parser)
    rows, episodes = evaluate_rows(calls, args, params)
    write_results(rows, episodes, args.out)
    if args.docs:
        path, _, block = args.docs.partition("#")
        command = ["python", "-m", "video2act_eval.evaluate", *(argv if argv is not None else sys.argv[1:])]
        write_block(Path(path), block or "evaluation", format_markdown(rows), command)
    print_summary(rows, args, params)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
