"""Time and memory of System 2's Wan2.2-TI2V-5B backbone on one GPU, for the
paper's two streams (../shared/PAPER.md): spatial = one 480x832 frame,
motion = 61 frames at 224x224. Per stream: VAE encode ms and transformer
features ms (hidden states after 20 of 30 blocks), each the median of 5
runs after 2 warm-ups, and the peak of torch.cuda.max_memory_allocated.

The full-size transformer and VAE are built from their configs with random
weights, directly on the GPU in bf16 (no checkpoint needed: time and memory
do not depend on the weights), through the project's `WanBackbone`, so what
is measured is the code System 2 runs. Needs only torch: diffusers can come
from a folder of unpacked wheels (`--site`), and the backbone is imported
from this checkout's source.

    python scripts/gpu_backbone_memory.py --site /tmp/site --out wan_memory.json
    python scripts/gpu_backbone_memory.py --dry-run    # tiny models on the CPU, same code path
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]

# (frames, height, width) of each stream, as in the paper.
STREAMS = {"spatial": (1, 480, 832), "motion": (61, 224, 224)}
# The dry run keeps the frame counts (the causal VAE's chunks) with fewer
# pixels: the tiny models take a minute on the paper's sizes on a small CPU.
DRY_RUN_STREAMS = {"spatial": (1, 64, 112), "motion": (61, 32, 32)}
GIB = 2**30


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--site",
        action="append",
        default=[],
        metavar="DIR",
        help="prepend DIR to sys.path (unpacked wheels: diffusers and its needs); repeatable",
    )
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    parser.add_argument("--num-blocks", type=int, default=20, help="transformer blocks read (default: 20 of 30)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="tiny random models on the CPU, small frames, one run each: checks the script, measures nothing",
    )
    return parser.parse_args(argv)


def build_backbone(args: argparse.Namespace, device: torch.device):
    from video2act_core.models.backbones.wan import WanBackbone
    from video2act_core.models.backbones.wan_original import WAN22_TI2V_5B_TRANSFORMER, WAN22_VAE

    if args.dry_run:
        return WanBackbone(num_blocks=args.num_blocks).eval()
    # bf16 as the default dtype and the GPU as the default device: the 5B
    # parameters are created there, never in fp32 on the CPU.
    torch.set_default_dtype(torch.bfloat16)
    try:
        with device:
            backbone = WanBackbone(transformer=WAN22_TI2V_5B_TRANSFORMER, vae=WAN22_VAE, num_blocks=args.num_blocks)
    finally:
        torch.set_default_dtype(torch.float32)
    # from_pretrained(torch_dtype=bf16) keeps these modules (time embedding,
    # modulation tables, norms) in fp32; do the same.
    transformer = backbone.transformer
    for name, module in transformer.named_modules():
        if any(kept in name.split(".") for kept in transformer._keep_in_fp32_modules):
            module.float()
    return backbone.eval()


def median_ms(run, warmup: int, repeats: int, synchronize) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        run()
        synchronize()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def measure_stream(backbone, shape: tuple[int, int, int], args, device: torch.device) -> dict:
    """VAE encode and feature times (ms) and peak memory (GiB) of one stream, batch 1."""
    on_gpu = device.type == "cuda"
    synchronize = torch.cuda.synchronize if on_gpu else (lambda: None)
    frames = torch.rand(1, *shape[:1], 3, *shape[1:], device=device)
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    latents = backbone.encode(frames)
    encode_ms = median_ms(lambda: backbone.encode(frames), args.warmup, args.repeats, synchronize)
    encode_peak = torch.cuda.max_memory_allocated() / GIB if on_gpu else None
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    features = backbone.features(latents)
    features_ms = median_ms(lambda: backbone.features(latents), args.warmup, args.repeats, synchronize)
    features_peak = torch.cuda.max_memory_allocated() / GIB if on_gpu else None
    return {
        "frames": shape[0],
        "height": shape[1],
        "width": shape[2],
        "latents": list(latents.shape[1:]),  # (t, c, h, w)
        "tokens": features.shape[1] * features.shape[3] * features.shape[4],
        "features": list(features.shape[1:]),  # (t, C, h', w')
        "vae_encode_ms": round(encode_ms, 2),
        "features_ms": round(features_ms, 2),
        "vae_encode_peak_gib": None if encode_peak is None else round(encode_peak, 3),
        "features_peak_gib": None if features_peak is None else round(features_peak, 3),
        "peak_gib": None if encode_peak is None else round(max(encode_peak, features_peak), 3),
    }


def print_table(results: dict) -> None:
    print(
        f"{results['device']}, {results['dtype']}, features after {results['num_blocks']} of "
        f"{results['total_blocks']} blocks; parameters: transformer {results['transformer_params']:,}, "
        f"VAE {results['vae_params']:,}; weights on the GPU: {results['weights_gib']} GiB"
    )
    header = (
        f"{'stream':8} {'input':>13} {'latents t,c,h,w':>17} {'tokens':>6} {'VAE ms':>8} "
        f"{'features ms':>11} {'VAE peak GiB':>12} {'feat peak GiB':>13}"
    )
    print(header)
    for name, row in results["streams"].items():
        frames = f"{row['frames']}x{row['height']}x{row['width']}"
        latents = ",".join(str(size) for size in row["latents"])
        print(
            f"{name:8} {frames:>13} {latents:>17} {row['tokens']:>6} {row['vae_encode_ms']:>8} "
            f"{row['features_ms']:>11} {str(row['vae_encode_peak_gib']):>12} {str(row['features_peak_gib']):>13}"
        )


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path[:0] = [str(Path(site).resolve()) for site in args.site]
    # The backbone from this checkout, whether or not the workspace is installed.
    sys.path.insert(0, str(REPO / "src" / "video2act_core"))
    if args.dry_run:
        args.warmup, args.repeats = 0, 1
        device = torch.device("cpu")
    elif not torch.cuda.is_available():
        print("no CUDA device: run on a GPU machine, or with --dry-run", file=sys.stderr)
        return 1
    else:
        device = torch.device("cuda")
    import diffusers

    torch.manual_seed(0)
    backbone = build_backbone(args, device)
    weights_gib = torch.cuda.memory_allocated() / GIB if device.type == "cuda" else None
    results = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu (dry run, tiny models)",
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "dtype": str(backbone.transformer.dtype).removeprefix("torch."),
        "num_blocks": backbone.num_blocks,
        "total_blocks": len(backbone.transformer.blocks),
        "transformer_params": sum(p.numel() for p in backbone.transformer.parameters()),
        "vae_params": sum(p.numel() for p in backbone.vae.parameters()),
        "weights_gib": None if weights_gib is None else round(weights_gib, 3),
        "warmup": args.warmup,
        "repeats": args.repeats,
        "streams": {},
    }
    with torch.inference_mode():
        for name, shape in (DRY_RUN_STREAMS if args.dry_run else STREAMS).items():
            results["streams"][name] = measure_stream(backbone, shape, args, device)
    print_table(results)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
