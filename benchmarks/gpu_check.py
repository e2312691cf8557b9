"""End-to-end timing on a CUDA machine (Colab/Kaggle T4 or P100, or any other GPU).

    python benchmarks/gpu_check.py [--data DIR] [--weights PATH] [--skip STEP ...] [--allow-cpu]

Runs, each in its own process, timed, output captured: the notebooks' smoke mode; 2 epochs of
LightVGG; 2 epochs of VGG16 from a local weights file (--weights, else $FER_VGG16_WEIGHTS, else a
randomly initialised VGG16 saved to a temporary file: "random weights: timing only"); 2 epochs of LightVGG
with per-image v2 augmentation (against the `light` step's default, same session); benchmarks/throughput.py
--quick (--throughput-full for its full run, many minutes); and 1 epoch of LightVGG in 2 processes with
torchrun (DistributedDataParallel: one GPU each where there are 2 or more, else both on one GPU over gloo). Writes
results/benchmarks/<gpu name>.json with the hardware (runtime.describe_hardware), each step's wall
seconds, return code and last lines of output, and prints a summary. Without CUDA it refuses, unless
--allow-cpu (a dry run: add --max-batches 2 and skip the slow steps; its JSON is not a result).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from facial_expression.config import RESULTS_DIR
from facial_expression.data import find_data_root
from facial_expression.errors import DataError
from facial_expression.models import build_model, estimate_epoch_seconds
from facial_expression.models.cost import SUSTAINED_TFLOPS
from facial_expression.runtime import describe_hardware

STEPS = ("notebooks", "light", "vgg16", "light_v2", "throughput", "ddp")
HERE = Path(__file__).resolve().parent


def slug(name: str) -> str:
    """A file-name-safe version of a device name: 'Tesla T4' -> 'tesla-t4'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "device"


def clean_lines(text: str) -> list[str]:
    """Output lines as a terminal would show them: the last state of each \\r-redrawn line, no progress bars."""
    lines = [line.split("\r")[-1].rstrip() for line in text.split("\n")]  # splitlines() would split at \r too
    return [line for line in lines if line and not re.search(r"\|\s*\d+/\d+ \[", line)]  # tqdm: "| 3/10 ["


def run_step(cmd: list[str], timeout: float, tail: int) -> dict:
    """Run one command; its wall seconds, return code, last output lines, epoch lines and validation line."""
    t0 = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=timeout)
        out, rc = r.stdout, r.returncode
    except subprocess.TimeoutExpired as e:  # its captured output is bytes whatever text= says
        out = (e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout or "")
        out, rc = out + f"\ntimed out after {timeout:.0f} s", None
    lines = clean_lines(out)
    return {"command": " ".join(cmd), "seconds": round(time.perf_counter() - t0, 1), "returncode": rc,
            "epochs": [line.strip() for line in lines if line.lstrip().startswith("epoch ")],
            "validation": next((line for line in reversed(lines) if line.startswith("validation")), None),
            "tail": lines[-tail:]}


def vgg16_weights(path: str | None, tmp: Path) -> tuple[str, bool]:
    """The weights file to train VGG16 from, and whether it is a random stand-in."""
    if path:
        return str(Path(path).expanduser().resolve()), False
    from torchvision.models import vgg16
    # same keys as the ImageNet file, so the train command loads it the same way; the timing is the same
    random_path = tmp / "vgg16_random.pth"
    torch.save(vgg16(weights=None).state_dict(), random_path)
    return str(random_path), True


def estimates(data: Path, device_name: str) -> dict | None:
    """Epoch seconds predicted by models.cost for this GPU (if it is in its table), to compare with the runs."""
    key = next((k for k in SUSTAINED_TFLOPS if k != "cpu" and k.lower() in device_name.lower()), None)
    if key is None:
        return None
    n = sum(1 for f in (data / "train").rglob("*") if f.is_file())
    n_classes = sum(1 for d in (data / "train").iterdir() if d.is_dir())
    return {"gpu": key, "train_images_incl_tune": n, "note": "an estimate from FLOPs, not a measurement",
            "light-vgg_epoch_s": estimate_epoch_seconds(build_model("light-vgg", n_classes), n, key),
            "vgg16_epoch_s": estimate_epoch_seconds(build_model("vgg16", n_classes, weights=None), n, key)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("FER_DATA"), help="dataset root (default: $FER_DATA)")
    ap.add_argument("--weights", default=os.environ.get("FER_VGG16_WEIGHTS"),
                    help="VGG16 ImageNet .pth (default: $FER_VGG16_WEIGHTS; else random weights, timing only)")
    ap.add_argument("--skip", nargs="*", default=[], choices=STEPS, help="steps to leave out")
    ap.add_argument("--epochs", type=int, default=2, help="epochs of each training step")
    ap.add_argument("--max-batches", type=int, default=None, help="batches per epoch (dry runs)")
    ap.add_argument("--throughput-full", action="store_true", help="throughput.py's full run instead of --quick")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds allowed per step")
    ap.add_argument("--tail", type=int, default=20, help="output lines kept per step")
    ap.add_argument("--allow-cpu", action="store_true", help="run without CUDA (a dry run, not a result)")
    ap.add_argument("--out", default=None, help="JSON path (default: results/benchmarks/<gpu name>.json)")
    args = ap.parse_args()
    if not torch.cuda.is_available() and not args.allow_cpu:
        sys.exit("gpu_check: no CUDA device (torch.cuda.is_available() is False); "
                 "run it on a GPU, or --allow-cpu for a dry run")

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    hardware = describe_hardware(device)
    try:
        data = find_data_root(args.data).resolve()
    except DataError as e:
        sys.exit(f"gpu_check: {e}")
    if "vgg16" not in args.skip and args.weights and not Path(args.weights).expanduser().is_file():
        sys.exit(f"gpu_check: VGG16 weights file {args.weights} does not exist")  # before an hour of other steps
    print(f"{hardware['device']}: torch {hardware['torch']}, CUDA {hardware['cuda']}, capability "
          f"{hardware['capability']}, amp {hardware['amp']} ({hardware['amp_reason']})", flush=True)
    py, limit = sys.executable, ["--max-batches", str(args.max_batches)] if args.max_batches else []
    train = [py, "-m", "facial_expression", "train", "--epochs", str(args.epochs), "--data", str(data), "--no-resume"]
    result = {"hardware": hardware, "data": str(data), "epochs": args.epochs, "max_batches": args.max_batches,
              "estimates": estimates(data, hardware["device"]), "steps": {}}
    with tempfile.TemporaryDirectory(prefix="fer-gpu-check-") as tmp:
        tmp = Path(tmp)
        commands = {
            "notebooks": [py, "-m", "facial_expression", "notebooks", "--smoke", "--output-dir", str(tmp / "notebooks"),
                          "-p", "data", str(data)],
            "light": train + ["--model", "light-vgg", "--out", str(tmp / "light")] + limit,
            "vgg16": None,  # needs its weights file first
            "light_v2": train + ["--model", "light-vgg", "--augment-backend", "v2", "--out", str(tmp / "light_v2")]
                        + limit,
            "throughput": [py, str(HERE / "throughput.py"), "--data", str(data), "--out", str(tmp / "throughput.json")]
                          + ([] if args.throughput_full else ["--quick"]),
            "ddp": [py, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "facial_expression",
                    "train", "--model", "light-vgg", "--epochs", "1", "--data", str(data), "--no-resume",
                    "--out", str(tmp / "ddp")] + limit,
        }
        gpus = torch.cuda.device_count()
        ddp_mode = (f"2 processes, one GPU each (NCCL; {gpus} GPUs)" if gpus >= 2 else
                    f"2 processes sharing {'one GPU' if gpus else 'the CPU'} (gloo)")
        for step in STEPS:
            if step in args.skip:
                result["steps"][step] = {"skipped": True}
                continue
            if step == "vgg16":
                weights, random = vgg16_weights(args.weights, tmp)
                commands[step] = train + ["--model", "vgg16", "--weights", weights, "--out", str(tmp / "vgg16")] + limit
            print(f"[{step}] {' '.join(commands[step])}", flush=True)
            r = run_step(commands[step], args.timeout, args.tail)
            if step == "vgg16":
                r["weights"] = "random weights: timing only" if random else weights
            history = tmp / step / "history.json"
            if step in ("light", "light_v2") and history.is_file():  # the epoch line rounds to whole seconds
                r["epoch_s"] = [e["seconds"] for e in json.loads(history.read_text())["epochs"]]
            if step == "ddp":
                r["mode"] = ddp_mode
                if (tmp / "ddp" / "config.json").is_file():
                    r["world_size"] = json.loads((tmp / "ddp" / "config.json").read_text()).get("world_size")
            if step == "throughput" and (tmp / "throughput.json").is_file():
                full = json.loads((tmp / "throughput.json").read_text())
                r["summary"] = {k: full.get(k) for k in ("quick", "amp", "ratios", "models", "accuracy")}
            result["steps"][step] = r
            last = "".join(f"\n    {line}" for line in r["tail"][-6:])
            print(f"[{step}] rc {r['returncode']} in {r['seconds']:.0f} s{last}", flush=True)

    path = Path(args.out) if args.out else RESULTS_DIR / "benchmarks" / f"{slug(hardware['device'])}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(f"\nsummary ({hardware['device']}, amp {hardware['amp']}):")
    for step, r in result["steps"].items():
        if r.get("skipped"):
            print(f"  {step:11s} skipped")
            continue
        note = f"  [{r['weights']}]" if r.get("weights", "").startswith("random") else ""
        print(f"  {step:11s} rc {r['returncode']}  {r['seconds']:7.1f} s  {r['validation'] or ''}{note}")
    light, v2 = result["steps"].get("light", {}).get("epoch_s"), result["steps"].get("light_v2", {}).get("epoch_s")
    if light and v2:
        print(f"  LightVGG's last epoch: {light[-1]:.1f} s with the default augmentation, {v2[-1]:.1f} s with "
              f"per-image v2 ({v2[-1] / light[-1]:.1f}x)")
    if result["estimates"]:
        e = result["estimates"]
        print(f"  estimated epoch on {e['gpu']} (FLOPs, not measured): light-vgg {e['light-vgg_epoch_s']:.1f} s, "
              f"vgg16 {e['vgg16_epoch_s']:.1f} s")
    print(f"wrote {path}")
    failed = [s for s, r in result["steps"].items() if not r.get("skipped") and r["returncode"] != 0]
    if failed:
        sys.exit(f"gpu_check: failed steps: {', '.join(failed)}")


if __name__ == "__main__":
    main()
