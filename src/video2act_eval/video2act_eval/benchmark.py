"""The manipulation benchmark: every method trained on the same recorded
demonstrations of every task with the same training command, then run
closed loop on the same evaluation seeds; the paper's results table
(methods against tasks, with its ablations) at small scale.

    python -m video2act_eval.benchmark --out runs/benchmark --tasks track
    python -m video2act_eval.benchmark --quick --out /tmp/benchmark    # one task in minutes: what CI runs

For each task the scripted expert records `--demos` episodes as rosbag2
(seeds from 1000, split over `--jobs` processes; evaluation uses seeds
from 0); each trained method is trained once per `--train-seeds` seed
(`--train-jobs` side by side); each checkpoint is evaluated on
`--episodes` episodes in each `--splits` scene (the paper's generalisation
splits: original, lighting, object, background; trained on the original
only), rows spread over `--jobs` processes and each row's episodes over
`--shards` of them, System 1 at a fixed `--system1-latency-ms` so figures
do not depend on the load. `--report-only` writes the table from the rows
already saved (rows gathered from several machines).
Recorded data, finished checkpoints and evaluated rows (out/rows/, keyed
by the checkpoint's model id and the evaluation settings) are reused: a
stopped run resumes, and a later run with another task adds its column.

The video model starts from random weights unless --pretrained-backbone
names a local diffusers directory (e.g. svd=/models/stable-video-diffusion):
every method that reads a video model then loads it instead (the configs
used are written to out/configs/); the ResNet baseline is trained from
scratch either way.

Writes to --out: results.csv (one row per task, method and training seed),
episodes.csv, table.md (success per method and task, mean +- standard
deviation over training seeds), results.png, and compute.json (wall
seconds each training and evaluation took).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from video2act_core.checkpoint import MANIFEST, read_manifest
from video2act_core.params import PerceptionParams, PolicyParams, SimArmParams, node_params
from video2act_eval.evaluate import core_share, evaluate_in_processes, node_update_ratio, summarise
from video2act_eval.tables import write_block
from video2act_sim.arm import SCENES
from video2act_sim.episode import EpisodeResult
from video2act_sim.expert import FIRST_SEED

REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Task:
    backend: str
    task: str
    instruction: str


TASKS = {
    "reach": Task("kinematic", "reach", "reach the red square"),
    # The block slides along an arc: where it goes next is in the clip, not
    # in the newest frame.
    "track": Task("kinematic", "track", "follow the moving red square"),
    "mujoco_reach": Task("mujoco_so101", "reach", "reach the block"),
    "mujoco_track": Task("mujoco_so101", "track", "follow the moving block"),
    "push": Task("mujoco_so101", "push", "push the block onto the green disc"),
    "pick_place": Task("mujoco_so101", "pick_place", "put the block on the green disc"),
    # Two stages: grasp, then place on a block that moves if it is knocked.
    "stack": Task("mujoco_so101", "stack", "stack the purple block on the teal block"),
}


@dataclass(frozen=True)
class Method:
    model_config: str  # under config/
    train_flags: tuple[str, ...] = ()
    synchronous: bool = False  # System 2 and System 1 back to back, as one loop
    checkpoint_of: str = ""  # evaluates this method's checkpoints instead of training its own


METHODS = {
    "video2act": Method("model_tiny.yaml"),
    # The same model with the paper's signed per-frame stream tokens (issue: paper form vs energies).
    "video2act_paper": Method("model_tiny_paper.yaml"),
    "no_spatial": Method("model_tiny.yaml", ("--no-spatial",)),
    "no_motion": Method("model_tiny.yaml", ("--no-motion",)),
    "synchronous": Method("model_tiny.yaml", synchronous=True, checkpoint_of="video2act"),
    # The video model's features without the Sobel and band-pass filters.
    "vpp": Method("model_tiny_vpp.yaml"),
    # A small ResNet trained from scratch with the same head, no video model.
    "dp": Method("model_tiny_dp.yaml"),
}


@dataclass(frozen=True)
class Budget:
    demos: int
    steps: int
    episodes: int
    batch_size: int
    sample_every: int


FULL = Budget(demos=100, steps=3000, episodes=50, batch_size=64, sample_every=3)
QUICK = Budget(demos=4, steps=20, episodes=2, batch_size=16, sample_every=3)


def threads_env(processes: int) -> dict[str, str]:
    """The environment for one of `processes` side by side: each with its
    share of the cores (torch takes them all otherwise: on 16 cores five
    trainings ran a load of 30-36 and read their bags ten times slower);
    a thread count the user set is kept."""
    return {"OMP_NUM_THREADS": str(core_share(processes)), **os.environ}


def record(name: str, task: Task, demos: int, params_file: Path, out: Path, jobs: int) -> Path:
    """The task's demonstrations, recorded once by `jobs` expert processes
    (seeds split between them) into a partial directory first, so an
    interrupted recording is not mistaken for a finished one."""
    data = out / "data" / name
    if data.is_dir():
        return data
    partial = data.with_name(name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shares = [part for part in np.array_split(np.arange(FIRST_SEED, FIRST_SEED + demos), jobs) if len(part)]
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "video2act_sim.expert",
                "--out",
                str(partial),
                "--first-seed",
                str(part[0]),
                "--episodes",
                str(len(part)),
                "--params",
                str(params_file),
                "--backend",
                task.backend,
                "--task",
                task.task,
                "--instruction",
                task.instruction,
            ],
            env=threads_env(len(shares)),
        )
        for part in shares
    ]
    if any(worker.wait() != 0 for worker in workers):
        raise SystemExit(f"recording the {name} demonstrations failed (see above); {partial} is left as it was")
    partial.rename(data)
    return data


def model_config(method: Method, pretrained: tuple[str, str] | None, out: Path) -> Path:
    """The method's model config; with a pretrained backbone (type, local
    path) its video model swapped for it, written under out/configs/."""
    path = REPO / "config" / method.model_config
    config = yaml.safe_load(path.read_text())
    if pretrained is None or config["system2"]["backbone"]["type"] == "resnet":
        return path
    written = out / "configs" / f"{pretrained[0]}_{method.model_config}"
    written.parent.mkdir(parents=True, exist_ok=True)
    written.write_text(yaml.safe_dump(model_config_with_backbone(config, pretrained), sort_keys=False))
    return written


def model_config_with_backbone(config: dict, pretrained: tuple[str, str]) -> dict:
    """A model config whose video model is the local pretrained one (type, path)."""
    kind, directory = pretrained
    return {**config, "system2": {**config["system2"], "backbone": {"type": kind, "pretrained_path": directory}}}


def cache_fillers(
    trainings: list[tuple[str, int]], trained: Sequence[tuple[str, int]] = ()
) -> dict[tuple[str, int], tuple[str, int]]:
    """(method, seed) -> the training that fills its feature cache: one
    already `trained` of its model config and seed, else the first of them
    (the seed is in the cache's key, so two seeds of one config do not
    share one)."""
    first: dict[tuple[str, int], tuple[str, int]] = {}
    for key in trained:
        first.setdefault((METHODS[key[0]].model_config, key[1]), key)
    return {key: first.setdefault((METHODS[key[0]].model_config, key[1]), key) for key in trainings}


def train_all(
    task_name: str,
    trainings: list[tuple[str, int]],
    data: Path,
    budget: Budget,
    params_file: Path,
    out: Path,
    pretrained: tuple[str, str] | None,
    parallel: int,
) -> dict[tuple[str, int], tuple]:
    """(method, seed) -> (checkpoint, wall seconds or None when it was there
    already). Up to `parallel` trainings side by side; the first training of
    a (model config, seed) fills that feature cache before the others that
    read it start."""

    def checkpoint_dir(method_name: str, seed: int) -> Path:
        return out / "checkpoints" / task_name / method_name / f"seed{seed}"

    commands, finished = {}, {}
    for method_name, seed in trainings:
        method = METHODS[method_name]
        checkpoint = checkpoint_dir(method_name, seed)
        if (checkpoint / MANIFEST).is_file():
            finished[method_name, seed] = checkpoint, None
            continue
        options = {
            "--data": data,
            "--out": checkpoint,
            "--params": params_file,
            "--model-config": model_config(method, pretrained, out),
            "--name": f"{task_name}_{method_name}",
            "--steps": budget.steps,
            "--batch-size": budget.batch_size,
            "--sample-every": budget.sample_every,
            "--seed": seed,
            "--cache-dir": out / "cache" / task_name,
        }
        command = [sys.executable, "-m", "video2act_core.train"]
        command += [str(item) for pair in options.items() for item in pair] + ["--overwrite", *method.train_flags]
        commands[method_name, seed] = checkpoint, command
    # A checkpoint from an earlier run (say video2act's, before its ablations
    # were asked for with --methods) has filled its config's cache already.
    trained = [
        (name, seed)
        for name in METHODS
        for seed in {seed for _, seed in trainings}
        if (checkpoint_dir(name, seed) / MANIFEST).is_file()
    ]
    filler = cache_fillers(list(commands), trained)
    waiting, running = list(commands), {}
    while waiting or running:
        # Every slot takes the next training whose feature cache is filled.
        for key in [key for key in waiting if filler[key] in (key, *finished, *trained)]:
            if len(running) >= max(1, parallel):
                break
            waiting.remove(key)
            running[key] = subprocess.Popen(commands[key][1], env=threads_env(parallel)), time.monotonic()
        for key, (process, started) in list(running.items()):
            if process.poll() is None:
                continue
            if process.returncode != 0:
                raise SystemExit(f"training {task_name}/{key[0]} seed {key[1]} failed (see above)")
            finished[key] = commands[key][0], time.monotonic() - started
            del running[key]
        time.sleep(0.2)
    return finished


def merge_shards(evaluated, pending: list[tuple]):
    """Rows evaluated in parts (consecutive calls with the same pending
    entry) joined: (row, episodes, pending entry) as each row completes."""
    parts: list[tuple] = []
    for index, (result, entry) in enumerate(zip(evaluated, pending)):
        parts.append(result)
        if index + 1 < len(pending) and pending[index + 1] == entry:
            continue
        first = parts[0][0]
        episodes = [episode for _, row_episodes, _ in parts for episode in row_episodes]
        results = [
            EpisodeResult(**{name: episode[name] for name in EpisodeResult.__dataclass_fields__})
            for episode in episodes
        ]
        system2_s = [t for _, _, (s2, _) in parts for t in s2]
        system1_s = [t for _, _, (_, s1) in parts for t in s1]
        row = summarise(
            first.variant,
            first.update_ratio,
            first.mode == "sync",
            first.strategy,
            first.delay_ms / 1e3,
            results,
            system2_s,
            system1_s,
        )
        parts = []
        yield row, episodes, entry


def column_label(task: str, split: str) -> str:
    return task if split == "original" else f"{task} ({split})"


def column_rows(results: list[dict], task: str, split: str) -> list[dict]:
    return [row for row in results if row["task"] == task and row["split"] == split]


def summary_table(
    results: list[dict], columns: list[tuple[str, str]], methods: list[str], field: str = "success_rate"
) -> str:
    """`field` per method (rows) and (task, split) (columns): mean +- std over training seeds."""

    def cell(rows: list[dict]) -> str:
        values = [row[field] for row in rows]
        if not values:
            return "-"
        spread = f" ± {np.std(values):.3f}" if len(values) > 1 else ""
        return f"{np.mean(values):.3f}{spread}"

    labels = [column_label(*column) for column in columns]
    lines = ["| method | " + " | ".join(labels) + " | mean |", "|" + " --- |" * (len(columns) + 2)]
    for method in methods:
        mine = [row for row in results if row["method"] == method]
        cells = [cell(column_rows(mine, *column)) for column in columns]
        # The mean over columns of each column's mean (no spread: columns are not seeds).
        means = [
            np.mean([row[field] for row in column_rows(mine, *column)])
            for column in columns
            if column_rows(mine, *column)
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {np.mean(means):.3f} |")
    return "\n".join(lines)


def budget_lines(results: list[dict], columns: list[tuple[str, str]]) -> str:
    """What each column's rows were trained and evaluated on, from the rows
    themselves: columns gathered from several machines may differ."""
    lines = []
    for column in columns:
        rows = column_rows(results, *column)
        if not rows:
            continue
        budgets = sorted(
            {(row.get("demos", "?"), row.get("train_steps", "?"), row["episodes"]) for row in rows}, key=str
        )
        seeds = sorted({row["train_seed"] for row in rows})
        described = "; ".join(
            f"{demos} demonstrations, {steps} training steps, {episodes} evaluation episodes"
            for demos, steps, episodes in budgets
        )
        lines.append(f"- {column_label(*column)}: {described} per method; training seeds {seeds}.")
    return "\n".join(lines)


def plot(results: list[dict], columns: list[tuple[str, str]], methods: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(max(6, 1.6 * len(columns) * len(methods) / 3), 3.8))
    width = 0.8 / len(methods)
    for index, method in enumerate(methods):
        means, spreads = [], []
        for column in columns:
            rates = [row["success_rate"] for row in column_rows(results, *column) if row["method"] == method]
            means.append(np.mean(rates) if rates else 0.0)
            spreads.append(np.std(rates) if len(rates) > 1 else 0.0)
        axis.bar(np.arange(len(columns)) + index * width, means, width, yerr=spreads, label=method)
    axis.set_xticks(
        np.arange(len(columns)) + 0.4 - width / 2, [column_label(*column) for column in columns], fontsize=8
    )
    axis.set_ylabel("success rate")
    axis.set_ylim(0, 1)
    axis.legend(fontsize=8, ncol=3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def build_parser() -> argparse.ArgumentParser:
    """The command line; the budgets default to FULL, --quick takes QUICK."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmark"))
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument(
        "--quick", action="store_true", help=f"one task (reach) at a tiny budget ({QUICK}): the pipeline, not figures"
    )
    parser.add_argument("--demos", type=int, help=f"demonstrations per task (default {FULL.demos})")
    parser.add_argument("--steps", type=int, help=f"training steps per checkpoint (default {FULL.steps})")
    parser.add_argument("--episodes", type=int, help=f"evaluation episodes per row (default {FULL.episodes})")
    parser.add_argument(
        "--splits",
        nargs="+",
        choices=SCENES,
        default=["original"],
        help="scenes to evaluate every checkpoint in (all trained on the original)",
    )
    parser.add_argument(
        "--train-seeds",
        type=int,
        nargs="+",
        default=[0],
        help="a checkpoint per seed; the table gives the spread over them",
    )
    parser.add_argument("--system1-latency-ms", type=float, default=15.0)
    parser.add_argument("--jobs", type=int, default=2, help="processes side by side: recording and evaluation")
    parser.add_argument("--train-jobs", type=int, default=1, help="trainings side by side (a GPU takes several)")
    parser.add_argument(
        "--shards", type=int, default=1, help="split each row's episodes over this many processes (for many cores)"
    )
    parser.add_argument(
        "--system2-device",
        help="evaluation's System 2 device (default: the params file's, as the perception node reads it)",
    )
    parser.add_argument(
        "--system1-device",
        help="evaluation's System 1 device (default: the params file's); on a "
        "GPU shared by many evaluation processes, cpu keeps the small head off the contended GPU",
    )
    parser.add_argument(
        "--pretrained-backbone",
        metavar="TYPE=PATH",
        help="a local pretrained video model (svd or wan) for every method that reads one",
    )
    parser.add_argument("--params", type=Path, default=REPO / "config" / "video2act.yaml")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="only the table and plots from the rows already in --out/rows (e.g. gathered from runs on other machines)",
    )
    parser.add_argument(
        "--docs",
        metavar="FILE[#BLOCK]",
        help="also write the tables into this Markdown file's <!-- results:benchmark --> block "
        "(docs/benchmark.md), or its block BLOCK",
    )
    return parser


def pretrained_backbone(args, parser: argparse.ArgumentParser) -> tuple[str, str] | None:
    """--pretrained-backbone as (type, absolute path), checked before anything runs."""
    if not args.pretrained_backbone:
        return None
    kind, _, directory = args.pretrained_backbone.partition("=")
    if kind not in ("svd", "wan") or not Path(directory).is_dir():
        parser.error(
            f"--pretrained-backbone takes svd=PATH or wan=PATH to a local directory, got '{args.pretrained_backbone}'"
        )
    return kind, str(Path(directory).resolve())


@dataclass
class Run:
    """One benchmark run's settings, resolved once from the command line and
    the params file, and compute.json's figures as they accumulate."""

    args: argparse.Namespace
    budget: Budget
    pretrained: tuple[str, str] | None
    policy: PolicyParams  # System 1's params in evaluation (its device as --system1-device says)
    ratio: int  # System 1 ticks per System 2 update, as the nodes run
    system2_device: str
    compute: dict[str, float]

    @property
    def compute_path(self) -> Path:
        return self.args.out / "compute.json"

    def save_compute(self) -> None:
        self.compute_path.write_text(json.dumps(self.compute, indent=1) + "\n")


def rows_file(run: Run, task_name: str, split: str, method_name: str, seed: int) -> Path:
    """Where a row is saved, with the key it was evaluated under (a stopped run resumes from it)."""
    return run.args.out / "rows" / task_name / split / method_name / f"seed{seed}.json"


def saved_rows(run: Run, task_name: str) -> dict[Path, dict]:
    """--report-only: the task's rows already saved, whatever their key."""
    done = {}
    for split, method_name, seed in itertools.product(run.args.splits, run.args.methods, run.args.train_seeds):
        path = rows_file(run, task_name, split, method_name, seed)
        if path.is_file():
            done[path] = json.loads(path.read_text())
    return done


def train_task(run: Run, task_name: str, trained: list[str]) -> dict[tuple[str, int], Path]:
    """The task's demonstrations recorded and every `trained` method trained
    once per training seed (both reused when there already); (method, seed)
    -> checkpoint. The training times go to compute.json."""
    args = run.args
    data = record(task_name, TASKS[task_name], run.budget.demos, args.params, args.out, max(1, args.jobs))
    checkpoints = {}
    trainings = [(method_name, seed) for method_name in trained for seed in args.train_seeds]
    for (method_name, seed), (checkpoint, seconds) in train_all(
        task_name, trainings, data, run.budget, args.params, args.out, run.pretrained, args.train_jobs
    ).items():
        checkpoints[method_name, seed] = checkpoint
        if seconds is not None:
            run.compute[f"train/{task_name}/{method_name}/seed{seed}"] = round(seconds, 1)
    run.save_compute()
    return checkpoints


def plan_evaluations(
    run: Run,
    task_name: str,
    checkpoints: dict[tuple[str, int], Path],
    calls: list[tuple],
    pending: list[tuple],
    done: dict[Path, dict],
) -> None:
    """Each (split, method, seed) row of the task: into `done` when saved
    with the same key (model id and evaluation settings), else its
    `evaluate_row` calls (one per shard) onto `calls` and `pending`."""
    args, budget, task = run.args, run.budget, TASKS[task_name]
    for split, method_name, seed in itertools.product(args.splits, args.methods, args.train_seeds):
        method = METHODS[method_name]
        checkpoint = checkpoints[method.checkpoint_of or method_name, seed]
        path = rows_file(run, task_name, split, method_name, seed)
        key = {
            "model_id": read_manifest(checkpoint, verify=False).model_id,
            "episodes": budget.episodes,
            "system1_latency_ms": args.system1_latency_ms,
            "ratio": run.ratio,
            "scene": split,
        }
        saved = json.loads(path.read_text()) if path.is_file() else {}
        if saved.get("key") == key:
            done[path] = saved
            continue
        sim = node_params(
            SimArmParams,
            args.params,
            "video2act_sim_arm",
            {"backend": task.backend, "task": task.task, "task_instruction": task.instruction, "scene": split},
        )
        for seeds in np.array_split(np.arange(budget.episodes), min(max(1, args.shards), budget.episodes)):
            calls.append(
                (
                    checkpoint,
                    method_name,
                    1 if method.synchronous else run.ratio,
                    method.synchronous,
                    seeds.tolist(),
                    sim,
                    run.policy,
                    0.0,
                    args.system1_latency_ms / 1e3,
                    run.system2_device,
                )
            )
            pending.append((path, key, task_name, split, seed))


def evaluate_pending(
    run: Run, tasks: list[str], calls: list[tuple], pending: list[tuple], done: dict[Path, dict]
) -> None:
    """Evaluate the planned calls, `--jobs` side by side, shards joined into
    rows; each row saved under out/rows/ as it completes (a stopped run
    resumes from them), printed, and put into `done`."""
    args, budget = run.args, run.budget
    started = time.monotonic()
    evaluated = evaluate_in_processes(calls, max(1, args.jobs)) if calls else []
    for row, row_episodes, (path, key, task_name, split, seed) in merge_shards(evaluated, pending):
        labels = {
            "task": task_name,
            "split": split,
            "method": row.variant,
            "train_seed": seed,
            "demos": budget.demos,
            "train_steps": budget.steps,
        }
        done[path] = saved = {
            "key": key,
            "row": {
                **labels,
                **{
                    k: (round(v, 4) if isinstance(v, float) else v)
                    for k, v in dataclasses.asdict(row).items()
                    if k != "variant"
                },
            },
            "episodes": [{**labels, **episode} for episode in row_episodes],
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(saved) + "\n")
        print(
            f"{column_label(task_name, split):<26} {row.variant:<12} seed {seed}: success {row.success_rate:.2f} "
            f"({row.episodes} episodes), final distance {row.mean_final_distance:.3f}",
            flush=True,
        )
    if calls:
        run.compute[f"evaluation/{'+'.join(tasks)}"] = round(time.monotonic() - started, 1)
        run.save_compute()


def write_report(done: dict[Path, dict], columns: list[tuple[str, str]], methods: list[str], out: Path) -> str:
    """results.csv, episodes.csv, table.md and results.png from every row
    (this run's and the saved ones); the success table printed. Returns table.md's text."""
    results = [saved["row"] for saved in done.values()]
    episodes = [episode for saved in done.values() for episode in saved["episodes"]]
    for name, rows in (("results.csv", results), ("episodes.csv", episodes)):
        with open(out / name, "w", newline="") as handle:
            # Every field of every row: rows saved by an older release may lack some.
            writer = csv.DictWriter(handle, fieldnames=list(dict.fromkeys(key for row in rows for key in row)))
            writer.writeheader()
            writer.writerows(rows)
    table = summary_table(results, columns, methods)
    distances = summary_table(results, columns, methods, "mean_final_distance")
    report = (
        f"Success rate:\n\n{table}\n\nFinal distance to the goal (success below the task's radius):\n\n"
        f"{distances}\n\n{budget_lines(results, columns)}\n"
    )
    (out / "table.md").write_text(report)
    plot(results, columns, methods, out / "results.png")
    print(table)
    print(f"wrote {out / 'results.csv'}, episodes.csv, table.md, results.png and compute.json")
    return report


def resolve_run(args, parser: argparse.ArgumentParser) -> Run:
    """The budget (--quick or FULL, with --demos/--steps/--episodes over it),
    the pretrained backbone, the evaluation's params and devices, and the
    compute.json figures of earlier runs into --out (created here)."""
    pretrained = pretrained_backbone(args, parser)
    base = QUICK if args.quick else FULL
    budget = dataclasses.replace(
        base,
        **{
            name: value
            for name, value in (("demos", args.demos), ("steps", args.steps), ("episodes", args.episodes))
            if value is not None
        },
    )
    args.out.mkdir(parents=True, exist_ok=True)
    compute_path = args.out / "compute.json"
    compute = json.loads(compute_path.read_text()) if compute_path.is_file() else {}
    policy = node_params(PolicyParams, args.params, "video2act_policy")
    ratio = node_update_ratio(policy, args.params)
    system2_device = args.system2_device or node_params(PerceptionParams, args.params, "video2act_perception").device
    if args.system1_device:
        policy = dataclasses.replace(policy, device=args.system1_device)
    return Run(args, budget, pretrained, policy, ratio, system2_device, compute)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = resolve_run(args, parser)
    tasks = ["reach"] if args.quick else args.tasks
    columns = [(task, split) for task in tasks for split in args.splits]
    # A method evaluated on another's checkpoints needs that one trained.
    trained = list(dict.fromkeys(METHODS[m].checkpoint_of or m for m in args.methods))
    calls, pending, done = [], [], {}
    for task_name in tasks:
        if args.report_only:
            done.update(saved_rows(run, task_name))
            continue
        checkpoints = train_task(run, task_name, trained)
        plan_evaluations(run, task_name, checkpoints, calls, pending, done)
    evaluate_pending(run, tasks, calls, pending, done)
    report = write_report(done, columns, args.methods, args.out)
    if args.docs:
        path, _, block = args.docs.partition("#")
        command = ["python", "-m", "video2act_eval.benchmark", *(argv or sys.argv[1:])]
        write_block(Path(path), block or "benchmark", report, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
