"""Time one Adam step over VGG16's classifier (124 M parameters with its 1000 ImageNet classes, 120 M with the
7 or 8 of FER: what transfer learning trains), with the loop torch picks by default and with the fused kernel
that `training.make_optimizer` uses, in one call.

    python benchmarks/fused_adam.py [--device cpu|cuda] [--steps 10]

Prints a JSON line: the device, ms per step for each implementation (median of --steps after 2 warm-ups) and
their ratio. The classifier is built by torchvision with random weights and gradients: speed does not depend on
the values.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torchvision.models import vgg16


def step_ms(params, device: str, steps: int, **options) -> float:
    opt = torch.optim.Adam(params, lr=1e-4, **options)
    times = []
    for i in range(steps + 2):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(1e3 * (time.perf_counter() - t))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    params = list(vgg16(weights=None).classifier.to(args.device).parameters())
    for p in params:
        p.grad = torch.randn_like(p)
    default = step_ms(params, args.device, args.steps)
    fused = step_ms(params, args.device, args.steps, fused=True)
    print(json.dumps({"device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
                      "torch": torch.__version__, "parameters": sum(p.numel() for p in params),
                      "default_ms": round(default, 2), "fused_ms": round(fused, 2),
                      "speedup": round(default / fused, 1)}))


if __name__ == "__main__":
    main()
