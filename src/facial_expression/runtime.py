"""Seeds, the device, mixed precision, threads and torchrun's processes: the hardware policy in one place."""

from __future__ import annotations

import contextlib
import os
import random
import warnings
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

import numpy as np
import torch
import torch.distributed as dist

from .config import AMP_CHOICES, check_choice
from .errors import ConfigError


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) in one call."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# Each run's epochs draw from two streams, both fixed by (seed, epoch): the shuffle order (the loader's own
# generator) and everything that uses torch's global generator. Two large primes keep the streams of
# different seeds and epochs apart.
SHUFFLE_STREAM, DRAW_STREAM = 100_003, 100_019
RANK_STREAM = 1_000_003  # torchrun's processes draw their augmentations and dropout from streams of their own


def shuffle_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of one epoch's shuffle order."""
    return torch.Generator().manual_seed(seed * SHUFFLE_STREAM + epoch)


def seed_epoch(seed: int, epoch: int, rank: int = 0) -> None:
    """Seed torch's global generator for one training epoch (of one process, `rank`, under torchrun).
    torchvision's v2 augmentations and dropout draw from it and take no generator of their own; seeded per
    epoch, an epoch resumed from last.pt draws exactly what it drew the first time."""
    torch.manual_seed(seed * DRAW_STREAM + epoch + rank * RANK_STREAM)


def pick_device(name: str = "auto") -> torch.device:
    """cuda, then mps, then cpu; or the device named. Under torchrun each process gets its own GPU (LOCAL_RANK)."""
    if name != "auto":
        device = torch.device(name)
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        device = torch.device("mps")
    else:
        device = torch.device("cpu")
    if device.type == "cuda" and device.index is None and _launched_world_size() > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % max(1, torch.cuda.device_count()))
    return device


@dataclass(frozen=True)
class Distributed:
    """This process's place among the processes that train one run together (torchrun); one of one without it."""

    rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that prints, writes the run folder and evaluates."""
        return self.rank == 0


def _launched_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", 1))


def distributed() -> Distributed:
    """The process group this process belongs to, or a group of one."""
    if dist.is_available() and dist.is_initialized():
        return Distributed(dist.get_rank(), dist.get_world_size())
    return Distributed()


def process_group_backend(device: torch.device) -> str:
    """NCCL where every process on this machine has a GPU of its own; gloo on the CPU, and where processes share
    a GPU (NCCL refuses two ranks on one device; a check on a one-GPU machine runs that way)."""
    per_machine = int(os.environ.get("LOCAL_WORLD_SIZE", _launched_world_size()))
    if torch.device(device).type == "cuda" and torch.cuda.device_count() >= per_machine:
        return "nccl"
    return "gloo"


def init_distributed(device: torch.device) -> Distributed:
    """Join torchrun's process group where it started several processes (WORLD_SIZE > 1), with
    `process_group_backend`'s backend. Without torchrun nothing happens."""
    if _launched_world_size() <= 1 or not dist.is_available() or dist.is_initialized():
        return distributed()
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    # the others wait while rank 0 decodes the dataset into the cache (main_process_first): give it an hour
    dist.init_process_group(process_group_backend(device), timeout=timedelta(hours=1))
    return distributed()


def end_distributed() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def main_process_first():
    """Rank 0 runs the block first (decoding the image cache, say); the others wait, then run it (reading it)."""
    d = distributed()
    if not d.main:
        dist.barrier()
    yield
    if d.main and d.world_size > 1:
        dist.barrier()


def precision_name(dtype: torch.dtype | None) -> str | None:
    """What a run records for its autocast dtype: "bfloat16" or "float16", None for fp32."""
    return str(dtype).removeprefix("torch.") if dtype else None


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


# bf16 tensor cores arrived with Ampere; below it CUDA emulates bf16 (slowly), whatever is_bf16_supported() says
NATIVE_BF16_CAPABILITY = (8, 0)


def _cpu_bf16_feature() -> str | None:
    """The CPU's bf16 hardware by name (AMX or AVX512-BF16), for reports."""
    with contextlib.suppress(OSError):
        flags = open("/proc/cpuinfo").read()
        return "AMX" if "amx_bf16" in flags else "AVX512-BF16" if "avx512_bf16" in flags else None
    return None


@lru_cache(maxsize=None)
def cpu_has_fast_bf16() -> bool:
    """True where oneDNN has bf16 hardware (AMX or AVX512-BF16) to run autocast fast."""
    return _cpu_bf16_feature() is not None


def gpu_has_native_bf16(device: torch.device) -> bool:
    """Compute capability >= 8.0 (Ampere on); not is_bf16_supported(), which counts emulation (True on a T4)."""
    return tuple(torch.cuda.get_device_capability(device)) >= NATIVE_BF16_CAPABILITY


def _amp_decision(device: torch.device, amp: str | None) -> tuple[torch.dtype | None, str]:
    """The autocast dtype for a device and an amp setting, and a one-phrase reason."""
    amp = "auto" if amp is None else amp
    check_choice("amp", amp, AMP_CHOICES)
    device = torch.device(device)
    if amp == "off":
        return None, "mixed precision off (requested)"
    if device.type == "cuda":
        native = gpu_has_native_bf16(device)
        where = "capability {}.{}".format(*torch.cuda.get_device_capability(device))
        if amp == "bf16":
            return torch.bfloat16, f"bf16 (requested){'' if native else f', emulated and slow at {where}'}"
        if amp == "fp16":
            return torch.float16, "fp16 + GradScaler (requested)"
        if native:
            return torch.bfloat16, f"native bf16 ({where})"
        return torch.float16, "fp16 + GradScaler: no native bf16 below capability 8.0"
    if device.type == "cpu":
        if amp == "fp16":
            raise ConfigError("amp='fp16' is not supported on the CPU (no fp16 autocast speed-up there); "
                             "use 'bf16' or 'off'")
        fast = cpu_has_fast_bf16()
        if amp == "bf16":
            return torch.bfloat16, "bf16 (requested)" + ("" if fast else ", CPU without bf16 hardware: slow")
        if fast:
            return torch.bfloat16, f"CPU with {_cpu_bf16_feature() or 'bf16 hardware'}"
        return None, "CPU without bf16 hardware"
    if amp in ("bf16", "fp16"):  # mps and others: obey an explicit choice, never guess
        return (torch.bfloat16 if amp == "bf16" else torch.float16), f"{amp} (requested)"
    return None, f"no automatic mixed precision on {device.type}"


def amp_dtype(device: torch.device, amp: str | None = "auto") -> torch.dtype | None:
    """The autocast dtype: native bf16 (GPU capability >= 8.0, AMX/AVX512-BF16 CPU), fp16 on older GPUs, or None."""
    dtype, reason = _amp_decision(device, amp)
    if amp == "bf16" and torch.device(device).type == "cuda" and not gpu_has_native_bf16(device):
        warnings.warn(f"amp='bf16' on a GPU without native bf16: {reason}; 'fp16' (the default there) is "
                      "much faster", stacklevel=2)
    return dtype


def needs_grad_scaler(device: torch.device, dtype: torch.dtype | None) -> bool:
    """True exactly for fp16 autocast on CUDA, whose small gradients underflow without loss scaling."""
    return torch.device(device).type == "cuda" and dtype == torch.float16


def make_grad_scaler(device: torch.device, dtype: torch.dtype | None):
    """A `torch.amp.GradScaler("cuda")` for fp16 on CUDA, else None."""
    return torch.amp.GradScaler("cuda") if needs_grad_scaler(device, dtype) else None


def configure_backends(device: torch.device) -> dict:
    """On CUDA: cuDNN autotuning and TF32 matmuls/convolutions; a no-op elsewhere. Returns what it set."""
    if torch.device(device).type != "cuda":
        return {}
    # fixed input sizes, so autotuning pays off after the first batch; TF32 only matters from Ampere on
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    return {"cudnn.benchmark": True, "cuda.matmul.allow_tf32": True, "cudnn.allow_tf32": True}


def describe_hardware(device: torch.device, amp: str | None = "auto") -> dict:
    """Device, torch/CUDA versions, GPU capability and the amp dtype chosen, with the reason, for reports."""
    device = torch.device(device)
    dtype, reason = _amp_decision(device, amp)
    info = {"device": device_name(device), "device_type": device.type, "torch": torch.__version__,
            "cuda": torch.version.cuda, "capability": None,
            "amp": {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "off"), "amp_reason": reason}
    if device.type == "cuda":
        info["capability"] = "{}.{}".format(*torch.cuda.get_device_capability(device))
    return info


def autocast(device: torch.device, dtype: torch.dtype | None):
    """An autocast context, or a no-op where mixed precision is off."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def set_threads(n: int | None = None) -> int:
    """Use every core for intra-op work (there are no loader workers to share them with); torchrun's processes on
    one machine share them out."""
    share = max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
    n = n or int(os.environ.get("FER_THREADS", 0)) or share
    torch.set_num_threads(n)
    return n
