"""Our data and training pipeline against the usual PIL/ImageFolder one, measured in the same run.

    python benchmarks/throughput.py [--data DIR] [--device auto|cpu|cuda] [--quick]

Both pipelines use the same images, the same plain LightVGG, batch size and augmentation policy. The
baseline is torchvision's ImageFolder with PIL transforms (Resize, RandomHorizontalFlip, RandomAffine,
ColorJitter, ToTensor) in a DataLoader with 2 workers, re-decoding every image every epoch, in fp32.
Ours is the decoded uint8 cache, the default (`auto`) augmentation backend (batched tensor augmentation on the
training device, one grid_sample per batch), no workers, channels_last and mixed precision where the device has
it (bf16 on CPUs with bf16 hardware and on GPUs from capability 8.0, fp16 with a gradient scaler on a T4 or
P100). `--device` picks where both train (default: CUDA, then MPS, then the CPU); on a GPU the baseline's
batches come from its 2 workers and are copied there, as on Colab and Kaggle. A short training run with each
pipeline (same seed, policy and schedule) checks that the speed costs no accuracy. Results go to
results/benchmarks/<machine>.json, with the same keys on every device.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

from facial_expression.config import AugmentConfig, RESULTS_DIR
from facial_expression.data import BatchLoader, find_data_root, load_folder, resolve_layout
from facial_expression.evaluation import measure_latencies
from facial_expression.models import build_model
from facial_expression.runtime import (amp_dtype, autocast, configure_backends, device_name, make_grad_scaler,
                                       pick_device, seed_everything, set_threads)

BATCH = 64


def baseline_loader(train_dir: Path, workers: int = 2, shuffle: bool = True):
    """The usual pipeline: ImageFolder + PIL transforms + DataLoader workers."""
    from torchvision import datasets, transforms as T
    p = AugmentConfig.preset("standard")
    tf = T.Compose([T.Resize((128, 128)), T.RandomHorizontalFlip(p.hflip),
                    T.RandomAffine(p.rotation, translate=(p.translate, p.translate), scale=tuple(p.scale)),
                    T.ColorJitter(p.brightness, p.contrast), T.ToTensor()])
    ds = datasets.ImageFolder(str(train_dir), transform=tf)
    return torch.utils.data.DataLoader(ds, batch_size=BATCH, shuffle=shuffle, num_workers=workers,
                                       persistent_workers=workers > 0, drop_last=True)


def synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work, so that a clock read after it measures it (a no-op elsewhere)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_second(batches, n_batches: int, warmup: int = 3, step=None, device=torch.device("cpu")) -> float:
    """Images per second over `n_batches` after `warmup` batches, optionally running `step` on each."""
    it = iter(batches)
    for _ in range(warmup):
        x, y = next(it)
        if step:
            step(x, y)
    synchronize(device)
    seen, t0 = 0, time.perf_counter()
    for _ in range(n_batches):
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(batches)
            x, y = next(it)
        if step:
            step(x, y)
        seen += len(y)
    synchronize(device)
    return seen / (time.perf_counter() - t0)


def make_step(model, amp, channels_last: bool):
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    device = next(model.parameters()).device
    scaler = make_grad_scaler(device, amp)  # fp16 on a T4/P100 needs loss scaling, as in training

    def step(x, y):
        x = x.to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            loss = loss_fn(model(x).float(), y.to(device))
        opt.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
    return step


def epoch_breakdown(model, loader, amp, n_batches: int) -> dict:
    """Seconds per batch in data, forward, backward and optimizer step (our pipeline)."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    device = next(model.parameters()).device
    times = {"data": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    it = iter(loader)

    def clock() -> float:  # a GPU runs asynchronously: wait for it before reading the clock
        synchronize(device)
        return time.perf_counter()
    for _ in range(n_batches):
        t0 = clock()
        x, y = next(it)
        t1 = clock()
        with autocast(device, amp):
            loss = loss_fn(model(x).float(), y)
        t2 = clock()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t3 = clock()
        opt.step()
        t4 = clock()
        for k, a, b in (("data", t0, t1), ("forward", t1, t2), ("backward", t2, t3), ("optimizer", t3, t4)):
            times[k] += b - a
    total = sum(times.values())
    return {k: {"seconds_per_batch": v / n_batches, "share": v / total} for k, v in times.items()}


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024


def run_part(part: str, data: str, quick: bool, device: str = "auto") -> dict:
    """One measurement in a fresh process, so that peak memory belongs to that pipeline alone."""
    r = subprocess.run([sys.executable, __file__, "--part", part, "--data", data, "--device", device]
                       + (["--quick"] if quick else []), capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"part {part} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def part(name: str, data: str, quick: bool, device_choice: str = "auto") -> dict:
    set_threads()
    seed_everything(0)
    layout = resolve_layout(data)
    device = pick_device(device_choice)
    configure_backends(device)
    amp = amp_dtype(device)
    n = 5 if quick else 30
    out: dict = {}
    if name in ("data_baseline", "train_baseline"):
        loader = baseline_loader(layout.train_dir)
        if name == "data_baseline":
            out["images_per_s"] = images_per_second(loader, n)
        else:
            model = build_model("light-vgg", len(layout.classes)).to(device)
            out["images_per_s"] = images_per_second(loader, n, step=make_step(model, None, False), device=device)
    else:
        t0 = time.perf_counter()
        train = load_folder(layout.train_dir, 128, layout.classes, progress=False)
        out["cache_load_s"] = time.perf_counter() - t0
        out["cache_mb"] = train.images.numel() / 2**20
        loader = BatchLoader(train, BATCH, shuffle=True, augment="standard", device=device, drop_last=True,
                             backend="auto")
        if name == "data_ours":
            out["images_per_s"] = images_per_second(loader, n, device=device)
        elif name == "data_ours_v2":
            out["images_per_s"] = images_per_second(
                BatchLoader(train, BATCH, shuffle=True, augment="standard", device=device, backend="v2"), n,
                device=device)
        elif name == "data_ours_noaug":
            out["images_per_s"] = images_per_second(BatchLoader(train, BATCH, shuffle=True, device=device), n,
                                                     device=device)
        elif name == "train_ours":
            model = build_model("light-vgg", len(layout.classes)).to(device).to(memory_format=torch.channels_last)
            out["images_per_s"] = images_per_second(loader, n, step=make_step(model, amp, True), device=device)
            out["breakdown"] = epoch_breakdown(model, loader, amp, max(3, n // 3))
        elif name.startswith("scale_"):
            k = int(name.split("_")[1])
            sub = train.subset(torch.randperm(len(train))[:k].tolist())
            model = build_model("light-vgg", len(layout.classes)).to(device).to(memory_format=torch.channels_last)
            step = make_step(model, amp, True)
            t0 = time.perf_counter()
            for x, y in BatchLoader(sub, BATCH, shuffle=True, augment="standard", device=device, drop_last=True,
                                    backend="auto"):
                step(x, y)
            synchronize(device)
            out.update(images=k, epoch_s=time.perf_counter() - t0, cache_mb=sub.images.numel() / 2**20)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def accuracy_check(data: str, epochs: int, quick: bool, device_choice: str = "auto") -> dict:
    """Validation accuracy after the same short training with each pipeline (same seed, policy, schedule)."""
    from facial_expression.config import TrainConfig
    from facial_expression.evaluation import predict
    from facial_expression.experiment import run_experiment
    import tempfile
    max_batches = 5 if quick else None
    out = {"epochs": epochs, "model": "LightVGG with batch-norm"}
    with tempfile.TemporaryDirectory() as tmp:
        # batch-norm: the plain network's escape from its initial plateau is too erratic for a short check
        cfg = TrainConfig(epochs=epochs, batch_norm=True, data=data, device=device_choice,
                          out=f"{tmp}/ours", max_batches=max_batches)
        t0 = time.perf_counter()
        r = run_experiment(cfg, resume=False, progress=False)
        out["ours"] = {"validation_accuracy": r.metrics["validation"]["accuracy"], "seconds": time.perf_counter() - t0}
        splits = r.splits
    # the baseline: PIL loader with 2 workers, fp32, NCHW; same init seed, optimizer and one-cycle schedule
    set_threads()
    seed_everything(0)
    device = pick_device(device_choice)
    model = build_model("light-vgg", len(splits.classes), batch_norm=True).to(device)
    loader = baseline_loader(resolve_layout(data).train_dir)
    steps = min(len(loader), max_batches or len(loader))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=epochs * steps)
    loss_fn = nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for i, (x, y) in enumerate(loader):
            if i >= steps:
                break
            loss = loss_fn(model(x.to(device)), y.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    probs, labels = predict(model, splits.validation, max_batches=max_batches)
    out["baseline"] = {"validation_accuracy": float((probs.argmax(1) == labels).mean()),
                       "seconds": time.perf_counter() - t0,
                       "note": "trains on all of train/ (the tune split is not held out)"}
    return out


def model_speed(num_classes: int, quick: bool, device_choice: str = "auto") -> dict:
    """Evaluation images/s at batch 256 (VGG16: 32) and single-image latency, fp32 against ours."""
    set_threads()
    device = pick_device(device_choice)
    amp = amp_dtype(device)
    out = {}
    for name, size, batch in (("light-vgg", 128, 256), ("vgg16", 224, 32)):
        opts = {"weights": None} if name == "vgg16" else {}
        model = build_model(name, num_classes, **opts).to(device).eval()
        x = torch.rand(batch, 3, size, size, device=device)
        res = {}
        for tag, fast in (("baseline_fp32", False), ("ours", True)):
            m = model.to(memory_format=torch.channels_last) if fast else model
            xi = x.contiguous(memory_format=torch.channels_last) if fast else x
            with torch.inference_mode(), autocast(device, amp if fast else None):
                m(xi)
                reps = 1 if quick or name == "vgg16" else 3
                synchronize(device)
                t0 = time.perf_counter()
                for _ in range(reps):
                    m(xi)
                synchronize(device)
                res[f"{tag}_eval_images_per_s"] = reps * batch / (time.perf_counter() - t0)
        lat = measure_latencies({"m": (model, size)}, device, repeats=10 if quick else 50)["m"]
        res["latency_fp32_median_ms"], res["latency_fp32_p90_ms"] = lat["median_ms"], lat["p90_ms"]
        out[name] = res
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="dataset root (default: $FER_DATA, then data/affectnet)")
    ap.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then the CPU) | cpu | cuda | mps")
    ap.add_argument("--quick", action="store_true", help="a few batches only (for the test suite)")
    ap.add_argument("--epochs", type=int, default=4, help="epochs of the accuracy check")
    ap.add_argument("--part", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help="JSON path (default: results/benchmarks/<machine>.json)")
    args = ap.parse_args()
    data = str(find_data_root(args.data))
    if args.part:
        print(json.dumps(part(args.part, data, args.quick, args.device)))
        return
    layout = resolve_layout(data)
    res = {name: run_part(name, data, args.quick, args.device) for name in
           ("data_baseline", "data_ours", "data_ours_v2", "data_ours_noaug", "train_baseline", "train_ours")}
    total = sum(1 for c in layout.classes for _ in (layout.train_dir / c).iterdir())
    sizes = [1000, 2000, 4000, total] if not args.quick else [256]
    res["scaling"] = [run_part(f"scale_{k}", data, args.quick, args.device) for k in sizes]
    res["models"] = model_speed(len(layout.classes), args.quick, args.device)
    res["accuracy"] = accuracy_check(data, args.epochs, args.quick, args.device)
    device = pick_device(args.device)
    summary = {
        "machine": platform.node(), "device": device_name(device), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "amp": str(amp_dtype(device)),
        "data": data, "batch_size": BATCH, "quick": args.quick,
        "ratios": {"data_only": res["data_ours"]["images_per_s"] / res["data_baseline"]["images_per_s"],
                   "training": res["train_ours"]["images_per_s"] / res["train_baseline"]["images_per_s"]},
        **res,
    }
    data_baseline = res["data_baseline"]["images_per_s"]
    rows = [("data only (img/s)", res["data_ours"]["images_per_s"], data_baseline),
            ("  ours, per-image v2 augmentation", res["data_ours_v2"]["images_per_s"], data_baseline),
            ("  ours without augmentation", res["data_ours_noaug"]["images_per_s"], data_baseline),
            ("LightVGG training (img/s)", res["train_ours"]["images_per_s"], res["train_baseline"]["images_per_s"])]
    for name, r in res["models"].items():
        rows.append((f"{name} evaluation (img/s)", r["ours_eval_images_per_s"], r["baseline_fp32_eval_images_per_s"]))
    rows.append(("peak RSS, data (MB)", res["data_ours"]["peak_rss_mb"], res["data_baseline"]["peak_rss_mb"]))
    print(f"{'':34s}{'ours':>10s}{'baseline':>10s}{'ratio':>8s}")
    for label, ours, base in rows:
        print(f"{label:34s}{ours:10.1f}{base:10.1f}{ours / base:8.2f}")
    for name, r in res["models"].items():
        print(f"{name} latency fp32: median {r['latency_fp32_median_ms']:.1f} ms, "
              f"p90 {r['latency_fp32_p90_ms']:.1f} ms")
    acc = res["accuracy"]
    print(f"validation accuracy after {acc['epochs']} epochs: ours {acc['ours']['validation_accuracy']:.4f} "
          f"({acc['ours']['seconds']:.0f} s), baseline {acc['baseline']['validation_accuracy']:.4f} "
          f"({acc['baseline']['seconds']:.0f} s)")
    print("epoch breakdown (ours):", {k: f"{v['share']:.0%}" for k, v in res["train_ours"]["breakdown"].items()})
    for s in res["scaling"]:
        print(f"scaling: {s['images']:5d} images  epoch {s['epoch_s']:.1f} s  cache {s['cache_mb']:.0f} MB  "
              f"peak RSS {s['peak_rss_mb']:.0f} MB")
    path = Path(args.out) if args.out else RESULTS_DIR / "benchmarks" / f"{platform.node() or 'machine'}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
