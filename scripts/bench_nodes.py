"""System 2 and System 1 timed as the nodes run them: each in its own
process, loaded by the nodes' loaders with the params file's device, dtype
and torch threads, System 2 from uint8 camera frames at the camera's size
(resizing, image tokens of every camera and the instruction included) to
the numpy latents a message carries, System 1 from those latents to a chunk
at its rate_hz. Each alone first, then both at once, sharing the device as
the two nodes share it; p50/p99 and the ratio together / alone.

    python scripts/bench_nodes.py                            # the params file's checkpoint (sim_demo)
    python scripts/bench_nodes.py --checkpoint PATH --device cuda
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def camera_frames(count: int, height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, height, width, 3), dtype=np.uint8)


def system2_process(args, params, camera_size, ready, go, done, results) -> None:
    from video2act_core.checkpoint import load_system2
    from video2act_core.devices import limit_cpu_threads

    limit_cpu_threads(params.torch_threads)
    system2 = load_system2(args.checkpoint, args.device or params.device, params.dtype)
    config = system2.config
    clip = camera_frames(config.num_frames, *camera_size, seed=0)
    views = [camera_frames(config.view_history, *camera_size, seed=1 + camera) for camera in range(config.view_cameras)]
    instruction = args.instruction if system2.needs_instruction else ""
    encode = lambda: system2.encode(clip, views or None, instruction)
    results.put(("latents", encode()))  # also the warm-up
    ready.put("System 2")
    for phase in ("System 2 alone", "together"):
        go[phase].wait()
        times = []
        for _ in range(args.updates):
            start = time.perf_counter()
            encode()
            times.append(time.perf_counter() - start)
        results.put(("System 2 " + phase.removeprefix("System 2 "), times))
    done.set()


def system1_process(args, params, latents_queue, ready, go, done, results) -> None:
    from video2act_core.checkpoint import load_system1
    from video2act_core.devices import limit_cpu_threads

    limit_cpu_threads(params.torch_threads)
    system1 = load_system1(args.checkpoint, args.device or params.device, params.dtype)
    latents = latents_queue.get()
    state = np.zeros(len(system1.joint_names))
    instruction = args.instruction if system1.needs_instruction else ""
    act = lambda: system1.act(latents, state, params.num_inference_steps, instruction=instruction)
    act()  # warm-up
    ready.put("System 1")
    period = 1.0 / params.rate_hz
    for phase, more in (
        ("System 1 alone", lambda done_chunks: done_chunks < args.chunks),
        ("together", lambda _: not done.is_set()),
    ):
        go[phase].wait()
        times, next_tick = [], time.perf_counter()
        while more(len(times)):
            start = time.perf_counter()
            act()
            times.append(time.perf_counter() - start)
            # At rate_hz, as the node's timer ticks; back to back when slower.
            next_tick = max(next_tick + period, time.perf_counter())
            time.sleep(max(0.0, next_tick - time.perf_counter()))
        results.put(("System 1 " + phase.removeprefix("System 1 "), times))


def main() -> None:
    from video2act_core.metrics import describe_ms
    from video2act_core.params import PerceptionParams, PolicyParams, SimArmParams, node_params

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=REPO / "config" / "video2act.yaml")
    parser.add_argument("--checkpoint", help="default: the params file's checkpoint_path")
    parser.add_argument("--device", help="both nodes' device (default: the params file's)")
    parser.add_argument("--camera-size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"), help="default: the sim arm's")
    parser.add_argument("--instruction", default="follow the block", help="for models that read one")
    parser.add_argument("--updates", type=int, default=12, help="System 2 updates per phase")
    parser.add_argument("--chunks", type=int, default=60, help="System 1 chunks alone")
    args = parser.parse_args()

    perception = node_params(PerceptionParams, args.params, "video2act_perception")
    policy = node_params(PolicyParams, args.params, "video2act_policy")
    sim = node_params(SimArmParams, args.params, "video2act_sim_arm")
    args.checkpoint = args.checkpoint or str(REPO / perception.checkpoint_path)
    camera_size = tuple(args.camera_size or (sim.image_height, sim.image_width))

    # Processes of their own, as the nodes are (spawn: no torch state shared).
    context = mp.get_context("spawn")
    ready, results, latents_queue = context.Queue(), context.Queue(), context.Queue()
    go = {phase: context.Event() for phase in ("System 2 alone", "System 1 alone", "together")}
    done = context.Event()
    workers = [
        context.Process(target=system2_process, args=(args, perception, camera_size, ready, go, done, results)),
        context.Process(target=system1_process, args=(args, policy, latents_queue, ready, go, done, results)),
    ]
    for worker in workers:
        worker.start()
    _, latents = results.get()
    latents_queue.put(latents)
    ready.get(), ready.get()  # both loaded and warm: nothing else runs from here
    figures = {}
    for phase, names in (
        ("System 2 alone", ["System 2 alone"]),
        ("System 1 alone", ["System 1 alone"]),
        ("together", ["System 2 together", "System 1 together"]),
    ):
        go[phase].set()
        for _ in names:
            name, times = results.get()
            figures[name] = np.asarray(times)
    for worker in workers:
        worker.join()

    print(
        f"checkpoint {args.checkpoint}, device {args.device or perception.device}, dtype {perception.dtype}, "
        f"camera {camera_size[0]}x{camera_size[1]}, torch threads {perception.torch_threads} / {policy.torch_threads}"
    )
    for name in ("System 2 alone", "System 2 together", "System 1 alone", "System 1 together"):
        print(describe_ms(name, figures[name]))
    for system in ("System 2", "System 1"):
        alone, together = (np.median(figures[f"{system} {phase}"]) for phase in ("alone", "together"))
        print(f"{system} together / alone, p50: {together / alone:.2f}x")


if __name__ == "__main__":
    main()
