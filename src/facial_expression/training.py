"""The training loop: optimizer and schedule from the config, checkpoints, resume and early stopping."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from .config import TrainConfig
from .data import BatchLoader, Splits
from .data.fingerprint import mismatch
from .errors import FERError, NonFiniteLossError
from .models import build_model
from .runtime import amp_dtype, autocast, device_name, make_grad_scaler


@dataclass
class History:
    """Per-epoch metrics of a run, plus how it ended."""

    epochs: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    best_tune_accuracy: float = -1.0
    interrupted: bool = False
    stopped_early: bool = False
    device: str = ""
    amp: str | None = None
    wall_seconds: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: Path) -> "History":
        return cls(**json.loads(Path(path).read_text()))


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD over the trainable parameters; a VGG16 head gets lr x head_lr_mult."""
    head = set(map(id, model.head_parameters())) if hasattr(model, "head_parameters") else set()
    body = [p for p in model.parameters() if p.requires_grad and id(p) not in head]
    groups = [{"params": body, "lr": cfg.lr}]
    if head:
        groups.append({"params": [p for p in model.parameters() if id(p) in head],
                       "lr": cfg.lr * cfg.head_lr_mult})
    name = cfg.optimizer.lower()
    if name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               nesterov=cfg.momentum > 0)
    raise FERError(f"unknown optimizer {cfg.optimizer!r}; choose adam, adamw or sgd")


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
    from torchvision.transforms import v2
    if cfg.mix == "none":
        return None
    mixup = v2.MixUp(alpha=cfg.mix_alpha, num_classes=num_classes)
    cutmix = v2.CutMix(alpha=cfg.mix_alpha, num_classes=num_classes)
    choices = {"mixup": mixup, "cutmix": cutmix, "both": v2.RandomChoice([mixup, cutmix])}
    if cfg.mix not in choices:
        raise FERError(f"unknown mix {cfg.mix!r}; choose none, mixup, cutmix or both")
    return choices[cfg.mix]


def train_one_epoch(model, loader, loss_fn, optimizer, scheduler=None, amp=None, scaler=None,
                    progress: bool = True, desc: str = "train", mixer=None) -> dict:
    """One pass over the training loader; returns mean loss and accuracy over the batches.

    With a `mixer` (MixUp/CutMix) the loss uses the mixed soft labels and the accuracy the dominant
    original label of each image.
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
        with autocast(device, amp):
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
        if scheduler is not None:
            scheduler.step()
        n = len(y)
        total_loss += loss.item() * n
        correct += (logits.argmax(1) == y).sum().item()
        seen += n
        bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
    return {"loss": total_loss / max(seen, 1), "accuracy": correct / max(seen, 1)}


def evaluate(model, loader, loss_fn, amp=None) -> dict:
    """Mean loss and accuracy over an evaluation loader, in eval mode and without gradients."""
    model.eval()
    device = model_device(model)
    total_loss, correct, seen = 0.0, 0, 0
    with torch.inference_mode(), autocast(device, amp):
        for x, y in loader:
            logits = model(x).float()
            total_loss += loss_fn(logits, y).item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
    return {"loss": total_loss / max(seen, 1), "accuracy": correct / max(seen, 1)}


def checkpoint_payload(model, cfg: TrainConfig, classes, model_options: dict, **extra) -> dict:
    """What a checkpoint holds: enough to rebuild the model without the config file."""
    options = dict(model_options)
    if "weights" in options:
        options["weights"] = None  # the state dict carries the weights
    return {"model_name": cfg.model, "model_options": options, "classes": list(classes),
            "config": cfg.to_dict(), "state_dict": model.state_dict(), **extra}


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a model from a checkpoint alone; returns (model in eval mode, checkpoint dict)."""
    path = Path(path)
    if not path.is_file():
        raise FERError(f"checkpoint {path} does not exist")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = build_model(ckpt["model_name"], len(ckpt["classes"]), **ckpt["model_options"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval(), ckpt


def resume_problem(saved: dict, cfg: TrainConfig, classes, dataset: dict | None = None) -> str | None:
    """Why a saved run cannot be resumed with `cfg` on `classes` and `dataset`, or None when it can."""
    if list(saved.get("classes", classes)) != list(classes):
        return (f"it was trained on classes {', '.join(saved['classes'])}, and this dataset has "
                f"{', '.join(classes)}")
    if json.dumps(saved["config"].get("epochs")) != json.dumps(cfg.epochs):
        return (f"it was trained for a {saved['config']['epochs']}-epoch schedule and {cfg.epochs} epochs were "
                "asked for (the learning-rate schedule spans the whole run)")
    why = mismatch(saved.get("dataset"), dataset)
    if why:
        return f"it was trained on other data: {why}"
    ignore = {"out", "data", "device", "patience", "eval_batch_size"}
    defaults = TrainConfig().to_dict()  # settings added after a checkpoint was written had their defaults
    changed = sorted(k for k, v in cfg.to_dict().items()
                     if k not in ignore and json.dumps(saved["config"].get(k, defaults[k])) != json.dumps(v))
    return f"it was trained with other settings ({', '.join(changed)})" if changed else None


def fit(model: nn.Module, splits: Splits, cfg: TrainConfig, out_dir: str | Path, model_options: dict,
        resume: bool = True, progress: bool = True, dataset: dict | None = None) -> History:
    """Train with the tune split selecting the best epoch; writes config, history, last.pt and best.pt.

    Resumes from out_dir/last.pt when it exists (and `resume`) and was made with the same settings,
    schedule length and dataset; otherwise it refuses in one line. Ctrl-C keeps the last finished epoch
    on disk and returns the history with `interrupted` set. `dataset` is the fingerprint recorded with
    every file the run writes.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = model_device(model)
    amp = amp_dtype(device, cfg.amp)
    scaler = make_grad_scaler(device, amp)
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    state = torch.load(last_path, map_location="cpu", weights_only=False) if resume and last_path.exists() else None
    if state is not None:
        why = resume_problem(state, cfg, splits.classes, dataset)
        if why:
            raise FERError(f"cannot resume {last_path}: {why}; start fresh with --no-resume (notebooks: "
                           "delete the folder) or use another output folder")
    (out_dir / "config.json").write_text(json.dumps({**cfg.to_dict(), "dataset": dataset}, indent=2))

    train_loader = BatchLoader(splits.train, cfg.batch_size, shuffle=True, augment=cfg.augment,
                               device=device, seed=cfg.seed, max_batches=cfg.max_batches, drop_last=True,
                               backend=cfg.augment_backend)
    eval_loaders = {name: BatchLoader(data, cfg.eval_batch_size, device=device, max_batches=cfg.max_batches)
                    for name, data in (("tune", splits.tune), ("validation", splits.validation))}
    if len(train_loader) == 0:
        raise FERError(f"the training split has {len(splits.train)} images, fewer than one batch of "
                       f"{cfg.batch_size}; lower the batch size")
    weight = class_weights(splits.train.counts()).to(device) if cfg.class_weights else None
    loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)
    eval_loss_fn = nn.CrossEntropyLoss()
    mixer = make_mixer(cfg, len(splits.classes))
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg, len(train_loader))
    history = History(device=device_name(device), amp=str(amp).replace("torch.", "") if amp else None)

    start_epoch = 0
    if state is not None:
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler"):
            scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        history = History(**state["history"])
        start_epoch = state["epoch"] + 1
        print(f"resumed from {last_path} after epoch {start_epoch}")

    def save(path: Path, epoch: int, resumable: bool) -> None:
        """last.pt can resume (optimizer state too); best.pt holds only what inference needs (~1/3 the size)."""
        extra = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict() if scheduler else None,
                 "scaler": scaler.state_dict() if scaler else None} if resumable else {}
        payload = checkpoint_payload(model, cfg, splits.classes, model_options, epoch=epoch,
                                     history=history.to_dict(), dataset=dataset, **extra)
        tmp = path.with_suffix(".tmp")
        torch.save(payload, tmp)
        tmp.replace(path)  # never leave a half-written checkpoint

    bad_epochs = 0
    try:
        for epoch in range(start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            train_loader.set_epoch(epoch)
            train = train_one_epoch(model, train_loader, loss_fn, optimizer, scheduler, amp, scaler,
                                    progress, desc=f"epoch {epoch + 1}/{cfg.epochs}", mixer=mixer)
            tune = evaluate(model, eval_loaders["tune"], eval_loss_fn, amp)
            val = evaluate(model, eval_loaders["validation"], eval_loss_fn, amp)
            row = {"epoch": epoch + 1, "train_loss": train["loss"], "train_accuracy": train["accuracy"],
                   "tune_loss": tune["loss"], "tune_accuracy": tune["accuracy"],
                   "validation_loss": val["loss"], "validation_accuracy": val["accuracy"],
                   "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - t0}
            history.epochs.append(row)
            history.wall_seconds += row["seconds"]
            improved = tune["accuracy"] > history.best_tune_accuracy
            if improved:
                history.best_tune_accuracy, history.best_epoch = tune["accuracy"], epoch + 1
                bad_epochs = 0
            else:
                bad_epochs += 1
            print(f"epoch {epoch + 1:3d}/{cfg.epochs}  train {train['loss']:.3f}/{train['accuracy']:.3f}  "
                  f"tune {tune['loss']:.3f}/{tune['accuracy']:.3f}  val {val['loss']:.3f}/{val['accuracy']:.3f}  "
                  f"lr {row['lr']:.2e}  {row['seconds']:.0f}s{'  *' if improved else ''}", flush=True)
            if improved:
                save(best_path, epoch, resumable=False)
            save(last_path, epoch, resumable=True)
            history.save(out_dir / "history.json")
            if cfg.patience is not None and bad_epochs >= cfg.patience:
                history.stopped_early = True
                print(f"early stop: tune accuracy has not improved for {cfg.patience} epochs")
                break
    except KeyboardInterrupt:
        history.interrupted = True
        print(f"\ninterrupted: {last_path} holds the last finished epoch; run again to resume")
    history.save(out_dir / "history.json")
    return history
