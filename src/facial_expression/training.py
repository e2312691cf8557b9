"""The training loop: optimizer, schedule, loss and EMA from the config; evaluation each epoch, early stopping.

Checkpoints and resuming live in `checkpoint`. Under torchrun (several processes, one per GPU) `fit` trains one
run with DistributedDataParallel: each process reads its shard of every epoch, and rank 0 alone evaluates,
prints and writes the run folder.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.torch_version import TorchVersion
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torchvision.transforms import v2
from tqdm.auto import tqdm

from .checkpoint import RunCheckpoints, TrainingState
from .config import TrainConfig
from .data import BatchLoader, ImageSet, Splits, choose_backend
from .errors import FERError, NonFiniteLossError
from .evaluation import model_device, predict
from .runs import ran_to_the_end
from .runtime import (Distributed, amp_dtype, autocast, device_name, distributed, make_grad_scaler, precision_name,
                      seed_epoch)


@dataclass
class History:
    """Per-epoch metrics of a run, plus how it ended."""

    epochs: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    best_tune_accuracy: float = -1.0
    interrupted: bool = False
    stopped_early: bool = False
    hardware: str = ""  # where it ran, in words (runtime.device_name)
    precision: str | None = None  # the autocast dtype's name ("bfloat16", "float16"); None for fp32
    wall_seconds: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def add(self, row: dict) -> bool:
        """Append an epoch's row; True when its tune accuracy is the best so far (best.pt is then saved)."""
        self.epochs.append(row)
        self.wall_seconds += row["seconds"]
        improved = row["tune_accuracy"] > self.best_tune_accuracy
        if improved:
            self.best_tune_accuracy, self.best_epoch = row["tune_accuracy"], row["epoch"]
        return improved

    def epochs_since_best(self) -> int:
        """Epochs run after the best one: what early stopping counts (a resumed run keeps counting)."""
        return self.epochs[-1]["epoch"] - self.best_epoch if self.epochs else 0

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        """From a saved history; one written before the fields were renamed has `device` and `amp`."""
        renamed = {"device": "hardware", "amp": "precision"}
        return cls(**{renamed.get(k, k): v for k, v in d.items()})

    @classmethod
    def load(cls, path: Path) -> "History":
        return cls.from_dict(json.loads(Path(path).read_text()))


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD over the trainable parameters; a VGG16 head gets lr x head_lr_mult."""
    head = set(map(id, model.head_parameters())) if hasattr(model, "head_parameters") else set()
    body = [p for p in model.parameters() if p.requires_grad and id(p) not in head]
    groups = [{"params": body, "lr": cfg.lr}]
    if head:
        groups.append({"params": [p for p in model.parameters() if id(p) in head],
                       "lr": cfg.lr * cfg.head_lr_mult})
    name = cfg.optimizer.lower()
    fused = _fused_adam(model)
    if name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, fused=fused)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, fused=fused)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               nesterov=cfg.momentum > 0)
    raise FERError(f"unknown optimizer {cfg.optimizer!r}; choose adam, adamw or sgd")


def _fused_adam(model: nn.Module) -> bool | None:
    """The fused Adam kernel where torch has one for the model's device (CUDA, and the CPU from torch 2.4): an
    order of magnitude faster on the CPU for VGG16's head (benchmarks/fused_adam.py; README, "Performance")."""
    device = model_device(model).type
    return True if device == "cuda" or (device == "cpu" and TorchVersion(torch.__version__) >= "2.4") else None


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """A per-batch learning-rate schedule: one-cycle, cosine with linear warm-up, or none."""
    total = max(1, cfg.epochs * steps_per_epoch)
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total)
    if cfg.schedule == "cosine":
        warm = min(total - 1, int(cfg.warmup_epochs * steps_per_epoch))

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / (warm + 1)
            return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    if cfg.schedule == "none":
        return None
    raise FERError(f"unknown schedule {cfg.schedule!r}; choose onecycle, cosine or none")


def class_weights(counts: dict[str, int]) -> torch.Tensor:
    """Inverse-frequency weights, normalised to mean 1."""
    n = torch.tensor(list(counts.values()), dtype=torch.float32).clamp(min=1)
    w = n.sum() / (len(n) * n)
    return w / w.mean()


def make_mixer(cfg: TrainConfig, num_classes: int):
    """torchvision's batch-level MixUp, CutMix or a random choice of the two; None for "none".

    They turn the labels into class probabilities, which CrossEntropyLoss takes as they are.
    """
    if cfg.mix == "none":
        return None
    mixup = v2.MixUp(alpha=cfg.mix_alpha, num_classes=num_classes)
    cutmix = v2.CutMix(alpha=cfg.mix_alpha, num_classes=num_classes)
    choices = {"mixup": mixup, "cutmix": cutmix, "both": v2.RandomChoice([mixup, cutmix])}
    if cfg.mix not in choices:
        raise FERError(f"unknown mix {cfg.mix!r}; choose none, mixup, cutmix or both")
    return choices[cfg.mix]


def train_one_epoch(model, loader, loss_fn, optimizer, scheduler=None, dtype=None, scaler=None,
                    progress: bool = True, desc: str = "train", mixer=None, ema=None) -> dict:
    """One pass over the training loader; returns mean loss and accuracy over the batches, and the faces seen
    (under torchrun: over every process's batches).

    With a `mixer` (MixUp/CutMix) the loss uses the mixed soft labels and the accuracy the dominant
    original label of each image. An `ema` (see `make_ema`) is updated after each optimiser step. `dtype`
    is the autocast dtype (None: fp32).
    """
    model.train()
    device = model_device(model)
    total_loss, correct, seen = 0.0, 0, 0
    bar = tqdm(loader, desc=desc, leave=False, disable=not progress)
    for step, (x, y) in enumerate(bar):
        target = y
        if mixer is not None:
            x, target = mixer(x, y)
            y = target.argmax(1)
        with autocast(device, dtype):
            logits = model(x)
            loss = loss_fn(logits.float(), target)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"loss became {loss.item()} at batch {step} ({desc}); lower the "
                                     "learning rate or check the data")
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if ema is not None:
            ema.update_parameters(model)
        if scheduler is not None:
            scheduler.step()
        n = len(y)
        total_loss += loss.item() * n
        correct += (logits.argmax(1) == y).sum().item()
        seen += n
        bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
    if distributed().world_size > 1:  # the epoch's loss and accuracy over every process's faces
        totals = torch.tensor([total_loss, correct, seen], dtype=torch.float64, device=device)
        dist.all_reduce(totals)
        total_loss, correct, seen = totals[0].item(), int(totals[1].item()), int(totals[2].item())
    return {"loss": total_loss / max(seen, 1), "accuracy": correct / max(seen, 1), "faces": seen}


def evaluate(model, data: ImageSet, loss_fn: nn.Module | None = None, dtype=None, batch_size: int = 256,
             max_batches: int | None = None, tta: bool = False) -> dict:
    """Mean loss and accuracy on an ImageSet: `evaluation.predict` plus the loss.

    predict sets eval mode and inference mode, runs under `dtype` autocast and averages in the mirror
    image with `tta`. The loss (plain cross-entropy by default) is taken on log-probabilities, which
    cross-entropy turns back into the same probabilities; with `tta`, those of the averaged prediction.
    """
    if len(data) == 0:
        return {"loss": 0.0, "accuracy": 0.0}
    probs, labels = predict(model, data, batch_size, dtype, max_batches, tta)
    loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss()
    device = next((b.device for b in loss_fn.buffers()), torch.device("cpu"))  # a class-weight tensor's
    probs, labels = torch.from_numpy(probs).to(device), torch.from_numpy(labels).to(device)
    loss = loss_fn(probs.clamp_min(torch.finfo(probs.dtype).tiny).log(), labels)
    return {"loss": loss.item(), "accuracy": (probs.argmax(1) == labels).float().mean().item()}


def make_ema(model: nn.Module, decay: float) -> AveragedModel | None:
    """An exponential moving average of the weights and buffers (AveragedModel); None when `decay` is 0."""
    if not decay:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def make_train_loader(splits: Splits, cfg: TrainConfig, device: torch.device,
                      procs: Distributed = Distributed()) -> BatchLoader:
    """The shuffled, augmented training batches (this process's shard under torchrun); refuses a split smaller
    than one batch."""
    loader = BatchLoader(splits.train, cfg.batch_size, shuffle=True, augment=cfg.augment, device=device,
                         seed=cfg.seed, max_batches=cfg.max_batches, drop_last=True, backend=cfg.augment_backend,
                         rank=procs.rank, world_size=procs.world_size)
    if len(loader) == 0:
        each = f" shared by {procs.world_size} processes" if procs.world_size > 1 else ""
        raise FERError(f"the training split has {len(splits.train)} images{each}, fewer than one batch of "
                       f"{cfg.batch_size}; lower the batch size")
    return loader


def augment_backend_for(cfg: TrainConfig, device: torch.device, saved: dict | None) -> tuple[str, str]:
    """The backend this run trains with and why: a resumed run's own where `augment_backend` is auto (so a run
    trained with v2 goes on with v2), else `data.choose_backend`'s choice."""
    old = (saved or {}).get("config", {}).get("augment_backend", "v2")
    if cfg.augment_backend == "auto" and saved is not None and old != "auto":
        return old, "the backend the resumed run was trained with"
    if cfg.augment == "none":
        return choose_backend(cfg.augment_backend, cfg.augment, device)[0], "no augmentation"
    return choose_backend(cfg.augment_backend, cfg.augment, device)


def parallel_model(model: nn.Module, device: torch.device, procs: Distributed) -> tuple[nn.Module, str]:
    """The module to train with under torchrun (DistributedDataParallel over `model`, which it shares the
    parameters of), and how batch-norm statistics are kept; `model` itself in one process."""
    if procs.world_size == 1:
        return model, ""
    bn = ""
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        if device.type == "cuda":  # batch statistics over every process's batch, as one process would see it
            nn.SyncBatchNorm.convert_sync_batchnorm(model)
            bn = "; batch-norm: SyncBatchNorm"
        else:  # torch's SyncBatchNorm runs on GPUs only
            bn = "; batch-norm: each process's own batch statistics (no SyncBatchNorm on the CPU)"
    ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return ddp, bn


def share_row(row: dict | None, procs: Distributed) -> dict:
    """Rank 0's epoch row, on every process (early stopping and the best epoch are decided alike everywhere)."""
    if procs.world_size == 1:
        return row
    box = [row]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def make_loss(cfg: TrainConfig, counts: dict[str, int], device: torch.device) -> nn.Module:
    """The training loss: cross-entropy with optional class weights and label smoothing."""
    weight = class_weights(counts).to(device) if cfg.class_weights else None
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)


def evaluate_epoch(state: TrainingState, splits: Splits, cfg: TrainConfig, dtype=None) -> dict:
    """Plain cross-entropy and accuracy of the model on tune and validation, and of the EMA on tune."""
    runs = {"tune": (state.model, splits.tune), "validation": (state.model, splits.validation)}
    if state.ema is not None:
        runs["ema_tune"] = (state.ema.module, splits.tune)
    row = {}
    for name, (model, data) in runs.items():
        m = evaluate(model, data, dtype=dtype, batch_size=cfg.eval_batch_size, max_batches=cfg.max_batches)
        row.update({f"{name}_loss": m["loss"], f"{name}_accuracy": m["accuracy"]})
    return row


def epoch_line(row: dict, epochs: int, improved: bool) -> str:
    """The one summary line printed after each epoch (loss/accuracy per split)."""
    ema = f"  ema {row['ema_tune_loss']:.3f}/{row['ema_tune_accuracy']:.3f}" if "ema_tune_loss" in row else ""
    return (f"epoch {row['epoch']:3d}/{epochs}  train {row['train_loss']:.3f}/{row['train_accuracy']:.3f}  "
            f"tune {row['tune_loss']:.3f}/{row['tune_accuracy']:.3f}  "
            f"val {row['validation_loss']:.3f}/{row['validation_accuracy']:.3f}{ema}  "
            f"lr {row['lr']:.2e}  {row['seconds']:.0f}s{'  *' if improved else ''}")


def fit(model: nn.Module, splits: Splits, cfg: TrainConfig, out_dir: str | Path, model_options: dict,
        resume: bool = True, progress: bool = True, dataset: dict | None = None) -> History:
    """Train with the tune split selecting the best epoch; writes config, history, last.pt and best.pt.

    Resumes from out_dir/last.pt when it exists (and `resume`) and was made with the same settings,
    schedule length and dataset; otherwise it refuses in one line. Ctrl-C keeps the last finished epoch
    on disk and returns the history with `interrupted` set. `dataset` is the fingerprint recorded with
    every file the run writes. With `cfg.ema` the EMA is evaluated on tune each epoch and the final
    one is written to ema.pt. The augmentation backend is resolved here (`augment_backend_for`), printed
    and recorded in config.json.

    Under torchrun every process calls it: the batch size is per process (the optimiser step sees
    world_size x batch_size faces), the learning rate is used as given, and the schedule counts the steps of
    one process's shard. Rank 0 alone evaluates, prints and writes files; config.json records `world_size`.
    """
    out_dir = Path(out_dir)
    procs = distributed()
    if procs.main:
        out_dir.mkdir(parents=True, exist_ok=True)
    cfg = replace(cfg, world_size=procs.world_size)
    files = RunCheckpoints(out_dir, cfg, splits.classes, model_options, dataset)
    saved = files.saved_run() if resume else None  # refuses before anything is written
    finished = files.finished_run() if resume else None
    if finished is not None:
        if procs.main:
            print(f"{out_dir} already holds this run, finished (best.pt, history.json): nothing to train")
        return History.from_dict(finished)
    device = model_device(model)
    backend, why = augment_backend_for(cfg, device, saved)
    # a finished run read by another number of processes (a 2-GPU run opened by a notebook) keeps its record
    done = saved is not None and ran_to_the_end(saved["history"], cfg.epochs)
    ranks = saved["config"].get("world_size", 1) if done else cfg.world_size
    cfg = files.cfg = replace(cfg, augment_backend=backend, world_size=ranks)
    if procs.main:
        (out_dir / "config.json").write_text(json.dumps({**cfg.to_dict(), "dataset": dataset}, indent=2))
        print(f"augmentation {cfg.augment}: {backend} backend, {why} (augment_backend: auto | v2 | batched)")
    dtype = amp_dtype(device, cfg.amp)
    loader = make_train_loader(splits, cfg, device, procs)
    trained, bn = parallel_model(model, device, procs)
    if procs.main and procs.world_size > 1:
        print(f"{procs.world_size} processes: batch {cfg.batch_size} per process, {cfg.batch_size * procs.world_size} "
              f"faces per step, lr {cfg.lr:g} as given, {len(loader)} steps per epoch{bn}")
    loss_fn, mixer = make_loss(cfg, splits.train.counts(), device), make_mixer(cfg, len(splits.classes))
    optimizer = make_optimizer(model, cfg)
    hardware = device_name(device) if procs.world_size == 1 else f"{procs.world_size} x {device_name(device)}"
    state = TrainingState(model, optimizer, make_scheduler(optimizer, cfg, len(loader)),
                          make_grad_scaler(device, dtype), make_ema(model, cfg.ema),
                          History(hardware=hardware, precision=precision_name(dtype)))
    if saved is not None:
        state.restore(saved)
        if procs.main:
            print(f"resumed from {files.last} after epoch {state.epoch}")
    try:
        for epoch in range(state.epoch + 1, cfg.epochs + 1):
            t0 = time.perf_counter()
            loader.set_epoch(epoch - 1)  # both streams keep their 0-based index: runs reproduce older ones
            seed_epoch(cfg.seed, epoch - 1, procs.rank)
            train = train_one_epoch(trained, loader, loss_fn, optimizer, state.scheduler, dtype, state.scaler,
                                    progress and procs.main, desc=f"epoch {epoch}/{cfg.epochs}", mixer=mixer,
                                    ema=state.ema)
            row = None
            if procs.main:
                row = {"epoch": epoch, "train_loss": train["loss"], "train_accuracy": train["accuracy"],
                       **evaluate_epoch(state, splits, cfg, dtype), "lr": optimizer.param_groups[0]["lr"],
                       "seconds": time.perf_counter() - t0}
            row = share_row(row, procs)
            state.epoch, improved = epoch, state.history.add(row)
            if procs.main:
                print(epoch_line(row, cfg.epochs, improved), flush=True)
                files.save_epoch(state, improved)
                state.history.save(out_dir / "history.json")
            if cfg.patience is not None and state.history.epochs_since_best() >= cfg.patience:
                state.history.stopped_early = True
                if procs.main:
                    print(f"early stop: tune accuracy has not improved for {cfg.patience} epochs")
                break
        if state.ema is not None and procs.main:
            files.save_ema(state)
    except KeyboardInterrupt:
        state.history.interrupted = True
        if procs.main:
            print(f"\ninterrupted: {files.last} holds the last finished epoch; run again to resume")
    if procs.main:
        state.history.save(out_dir / "history.json")
    return state.history
