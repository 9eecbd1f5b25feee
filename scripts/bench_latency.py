"""Video2Act speed figures: System 2 latency per update, System 1 latency per
chunk (p50/p99), and the chunk rate of the asynchronous dual system against
a synchronous baseline (System 2 then System 1 every step) in the same run.

    python scripts/bench_latency.py                 # CPU demo config
    python scripts/bench_latency.py --model-config config/model_tiny_wan.yaml   # another tiny backbone
    python scripts/bench_latency.py --realistic     # SVD-sized UNet/VAE, random weights (needs a GPU)
    python scripts/bench_latency.py --realistic --rdt-head   # and System 1 at RDT-1B's size
"""

from __future__ import annotations

import argparse
import resource
import threading
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from video2act_core.devices import resolve_device, resolve_dtype
from video2act_core.metrics import describe_ms
from video2act_core.models.factory import build_models
from video2act_core.normalization import NormalizationStats
from video2act_core.systems import System1, System2

REPO = Path(__file__).resolve().parents[1]
JOINTS = ["j1", "j2", "j3", "j4", "j5", "j6"]

# Stable Video Diffusion img2vid sizes: the diffusers defaults of the UNet
# are SVD's; its VAE has four blocks of 128-512 channels. The spatial frame
# at SVD's 576x1024, the motion clip of 14 frames at 288x512.
REALISTIC = {
    "system2": {
        "backbone": {
            "type": "svd",
            "unet": {"num_frames": 14},
            "vae": {
                "in_channels": 3,
                "out_channels": 3,
                "latent_channels": 4,
                "layers_per_block": 2,
                "down_block_types": ["DownEncoderBlock2D"] * 4,
                "block_out_channels": [128, 256, 512, 512],
            },
            "feature_blocks": ["up_blocks.1", "up_blocks.2"],
        },
        "num_frames": 14,
        "motion_fps": 7.0,
        "motion_band_hz": [1.0, 3.5],
        "image_height": 576,
        "image_width": 1024,
        "motion_height": 288,
        "motion_width": 512,
        "spatial_grid": 16,
        "motion_grid": 16,
        "token_dim": 768,
        "former_hidden": 1536,
    },
    "system1": {"horizon": 16, "hidden_dim": 768, "num_layers": 12, "num_heads": 12, "num_inference_steps": 8},
}
# The paper's System 1 size: RDT-1B's DiT (hidden 2048, 28 blocks, 32 heads),
# 64-step chunks, 5 sampling steps (../shared/PAPER.md).
RDT_1B_HEAD = {
    "horizon": 64,
    "hidden_dim": 2048,
    "num_layers": 28,
    "num_heads": 32,
    "num_train_timesteps": 1000,
    "num_inference_steps": 5,
}


def timed(fn, repeats: int, sync) -> np.ndarray:
    fn()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return np.asarray(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model-config",
        type=Path,
        default=REPO / "config" / "model_tiny.yaml",
        help="the model to time (random weights)",
    )
    parser.add_argument("--realistic", action="store_true", help="SVD-sized models (random weights)")
    parser.add_argument("--rdt-head", action="store_true", help="System 1 at RDT-1B's size (with --realistic)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="bfloat16", help="on CUDA; the CPU always uses float32")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--window", type=float, default=10.0, help="seconds for each of the async/sync runs")
    args = parser.parse_args()

    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    config = REALISTIC if args.realistic else yaml.safe_load(args.model_config.read_text())
    if args.rdt_head:
        config = {**config, "system1": RDT_1B_HEAD}
    encoder, action = build_models(config, JOINTS)
    system2 = System2(encoder.to(device).freeze_in(dtype), "bench")
    system1 = System1(action.to(device, dtype), NormalizationStats.identity(JOINTS), "bench")
    cfg = encoder.config
    frames = (np.random.default_rng(0).random((cfg.num_frames, cfg.image_height, cfg.image_width, 3)) * 255).astype(
        np.uint8
    )
    state = np.zeros(len(JOINTS))
    latents = system2.encode(frames)

    print(
        f"device={device} dtype={dtype} torch_threads={torch.get_num_threads()} "
        f"config={'realistic SVD' if args.realistic else args.model_config.name}"
    )
    print(
        f"System 2: spatial frame {cfg.image_height}x{cfg.image_width}, motion clip {cfg.num_frames} frames "
        f"{cfg.motion_height}x{cfg.motion_width}, {cfg.backbone['type']} backbone "
        f"{sum(p.numel() for p in encoder.backbone.parameters()) / 1e6:.1f} M params, "
        f"{latents.spatial.shape[0]}+{latents.motion.shape[0]} tokens"
        + (f" + {latents.views.shape[0]} image tokens" if latents.views is not None else "")
        + f" x {latents.spatial.shape[1]}"
    )
    print(
        f"System 1: DiT {sum(p.numel() for p in action.parameters()) / 1e6:.1f} M params, "
        f"horizon {action.config.horizon}, {action.config.num_inference_steps} {action.config.sampler} steps"
    )
    s2 = timed(lambda: system2.encode(frames), args.repeats, sync)
    s1 = timed(lambda: system1.act(latents, state), args.repeats * 5, sync)
    print(describe_ms("System 2 per update", s2))
    print(describe_ms("System 1 per chunk", s1))
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    else:
        print(f"peak process memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB")

    # Synchronous baseline: every chunk waits for a fresh System 2 update.
    chunks, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.window:
        system1.act(system2.encode(frames), state)
        sync()
        chunks += 1
    sync_rate = chunks / (time.perf_counter() - start)

    # Asynchronous: System 2 refreshes the latents in a thread; System 1
    # keeps sampling from the newest ones.
    newest = {"latents": latents, "updates": 0}
    stop = threading.Event()

    def system2_loop() -> None:
        while not stop.is_set():
            newest["latents"] = system2.encode(frames)
            newest["updates"] += 1

    worker = threading.Thread(target=system2_loop, daemon=True)
    worker.start()
    chunks, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.window:
        system1.act(newest["latents"], state)
        sync()
        chunks += 1
    elapsed = time.perf_counter() - start
    stop.set()
    worker.join()
    async_rate = chunks / elapsed
    print(f"synchronous baseline: {sync_rate:.2f} chunks/s")
    print(
        f"asynchronous: {async_rate:.2f} chunks/s with System 2 at {newest['updates'] / elapsed:.2f} updates/s "
        f"(ratio {async_rate / sync_rate:.1f}x)"
    )


if __name__ == "__main__":
    main()
