"""The augmentation backends against each other, in one run: per-image v2 against `auto` (what training now uses).

    python benchmarks/augment_backends.py [--data DIR] [--device cpu|cuda] [--batches 8] [--rounds 3]

Both run on the same decoded training faces, with the same LightVGG, batch size, policy and precision. Each round
times `--batches` batches of every backend, one after the other (v2, auto, v2, auto, ...), so that a machine
whose load drifts affects both alike; the result is the median over the rounds of auto's speed over v2's in
the same round. Two measurements: the loader
alone (augmentation and the copy to the device) and a training step with it (forward, backward, Adam). Writes
results/benchmarks/augment-backends-<device>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from facial_expression.config import RESULTS_DIR
from facial_expression.data import BatchLoader, choose_backend, find_data_root, load_folder, resolve_layout
from facial_expression.models import build_model
from facial_expression.runtime import amp_dtype, autocast, device_name, pick_device, seed_epoch, set_threads


def timed_batches(loader: BatchLoader, n: int, step=None) -> float:
    """Faces per second over `n` batches of `loader` (one warm-up batch first), with `step` on each if given."""
    it = iter(loader)
    x, y = next(it)
    if step:
        step(x, y)
    seen, t0 = 0, time.perf_counter()
    for _ in range(n):
        x, y = next(it)
        if step:
            step(x, y)
        seen += len(y)
    if loader.device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="dataset root (default: $FER_DATA, then data/affectnet)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--policy", default="standard", help="augmentation policy")
    ap.add_argument("--batch-size", type=int, default=64, help="batch size")
    ap.add_argument("--batches", type=int, default=8, help="timed batches per backend and round")
    ap.add_argument("--rounds", type=int, default=3, help="rounds, each timing every backend once")
    ap.add_argument("--out", default=None,
                    help="JSON path (default: results/benchmarks/augment-backends-<device>.json)")
    args = ap.parse_args()
    threads = set_threads()
    device = pick_device(args.device)
    dtype = amp_dtype(device)
    layout = resolve_layout(str(find_data_root(args.data)))
    train = load_folder(layout.train_dir, 128, layout.classes, progress=False)
    need = (args.batches + 1) * args.batch_size
    if len(train) < need:
        raise SystemExit(f"{len(train)} training faces, fewer than the {need} one timing needs")
    auto = choose_backend("auto", args.policy, device)
    backends = {"v2": "v2", "auto": "auto"}
    model = build_model("light-vgg", len(layout.classes)).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = nn.CrossEntropyLoss()

    def step(x, y):
        with autocast(device, dtype):
            loss = loss_fn(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    times: dict[str, dict[str, list[float]]] = {k: {"data": [], "train": []} for k in backends}
    for r in range(args.rounds):
        for what, fn in (("data", None), ("train", step)):
            for name, backend in backends.items():
                loader = BatchLoader(train, args.batch_size, shuffle=True, augment=args.policy, device=device,
                                     seed=r, drop_last=True, backend=backend)
                seed_epoch(0, r)
                times[name][what].append(timed_batches(loader, args.batches, fn))
    med = {name: {what: statistics.median(v) for what, v in t.items()} for name, t in times.items()}
    paired = {what: [a / b for a, b in zip(times["auto"][what], times["v2"][what])] for what in ("data", "train")}
    result = {
        "device": device_name(device), "machine": platform.node(), "torch": torch.__version__, "threads": threads,
        "amp": str(dtype), "policy": args.policy, "batch_size": args.batch_size, "batches": args.batches,
        "rounds": args.rounds, "auto_backend": auto[0], "auto_reason": auto[1], "faces_per_s": times,
        "median_faces_per_s": med,
        "ratio_auto_over_v2_per_round": paired,
        "ratio_auto_over_v2": {what: statistics.median(r) for what, r in paired.items()},
    }
    print(f"{result['device']}, {result['amp']}, policy {args.policy}, batch {args.batch_size}, "
          f"{args.rounds} rounds of {args.batches} batches; auto = {auto[0]} ({auto[1]})")
    for what, label in (("data", "loader alone"), ("train", "training step")):
        print(f"  {label:14s} v2 {med['v2'][what]:8.1f} faces/s   auto {med['auto'][what]:8.1f} faces/s   "
              f"auto/v2 {result['ratio_auto_over_v2'][what]:.2f}x (rounds: "
              + ", ".join(f"{r:.2f}" for r in paired[what]) + ")")
    path = Path(args.out) if args.out else RESULTS_DIR / "benchmarks" / f"augment-backends-{device.type}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
