"""Seeds, the device, mixed precision and threads: the hardware policy in one place."""

from __future__ import annotations

import contextlib
import os
import random
from functools import lru_cache

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) in one call."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str = "auto") -> torch.device:
    """cuda, then mps, then cpu; or the device named."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device_name(device: torch.device) -> str:
    """A human-readable name for reports: the GPU model, or the CPU model and thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        model = "CPU"
        with contextlib.suppress(OSError):
            for line in open("/proc/cpuinfo"):
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        return f"{model} ({torch.get_num_threads()} threads)"
    return device.type


@lru_cache(maxsize=None)
def cpu_has_fast_bf16() -> bool:
    """True where oneDNN has bf16 hardware (AMX or AVX512-BF16) to run autocast fast."""
    with contextlib.suppress(OSError):
        flags = open("/proc/cpuinfo").read()
        return "amx_bf16" in flags or "avx512_bf16" in flags
    return False


def amp_dtype(device: torch.device, amp: str = "auto") -> torch.dtype | None:
    """The autocast dtype for a device: bf16 on capable CPUs and GPUs, fp16 on older GPUs, or None."""
    if amp == "off":
        return None
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_fast_bf16():
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None):
    """An autocast context, or a no-op where mixed precision is off."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def set_threads(n: int | None = None) -> int:
    """Use every core for intra-op work (there are no loader workers to share them with)."""
    n = n or int(os.environ.get("FER_THREADS", 0)) or os.cpu_count() or 1
    torch.set_num_threads(n)
    return n
