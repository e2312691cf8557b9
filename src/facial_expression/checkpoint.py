"""Checkpoints: what they hold, writing and reading them, and resuming a training run from one.

A run folder holds up to three, and each rebuilds its model alone (`load_checkpoint`):
best.pt, the epoch with the best tune accuracy, for inference; last.pt, the last finished epoch plus the
optimizer, schedule, grad-scaler and EMA state, for resuming; ema.pt, the exponential moving average of
the weights at the end of training (only when `TrainConfig.ema` is on).

Format versions. `epoch` is the last finished epoch. Version 2 counts it from 1, as History's rows and
`best_epoch` do. Files without a `version` key are version 1, which counted it from 0 (its History was
already 1-based). `read_checkpoint` converts them as it loads them, so old best.pt and last.pt files
still load and resume; nothing on disk is rewritten.

`fer export` turns a checkpoint into an ONNX model (export.py) whose metadata holds the checkpoint's record
without its weights (ONNX_METADATA); `load_checkpoint` loads such a file too, as an OnnxModel.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import TrainConfig
from .data.fingerprint import mismatch
from .data.folders import canonical_class
from .errors import FERError, in_notebook
from .models import build_model
from .runs import Run, ran_to_the_end

VERSION = 2  # 2: `epoch` counted from 1; 1 (no "version" key): counted from 0
ONNX_METADATA = "fer_checkpoint"  # an exported model's metadata key: the checkpoint's dict without its weights


def checkpoint_payload(model: nn.Module, cfg: TrainConfig, classes, model_options: dict, **extra) -> dict:
    """What a checkpoint holds: enough to rebuild the model without the config file."""
    options = dict(model_options)
    if "weights" in options:
        options["weights"] = None  # the state dict carries the weights
    return {"version": VERSION, "model_name": cfg.model, "model_options": options, "classes": list(classes),
            "config": cfg.to_dict(), "state_dict": model.state_dict(), **extra}


def save_checkpoint(payload: dict, path: str | Path) -> None:
    """torch.save through a temporary file, so that a crash never leaves a half-written checkpoint."""
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def upgrade(ckpt: dict) -> dict:
    """The checkpoint in the current format, converted in place: version 1 counted epochs from 0."""
    version = ckpt.get("version", 1)
    if version > VERSION:
        raise FERError(f"this checkpoint has format version {version}, newer than this code's {VERSION}; "
                       "update the package")
    if version == 1 and ckpt.get("epoch") is not None:
        ckpt["epoch"] += 1
    ckpt["version"] = VERSION
    return ckpt


def read_checkpoint(path: str | Path) -> dict:
    """A checkpoint's dict, on the CPU and in the current format whichever version wrote it."""
    path = Path(path)
    if not path.is_file():
        raise FERError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # a zip or pickle of something else: torch raises several types
        raise FERError(f"{path} is not a checkpoint of this project: neither a PyTorch checkpoint (best.pt, "
                       f"last.pt, ema.pt) nor an ONNX model (.onnx) ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or not {"model_name", "classes", "state_dict"} <= set(ckpt):
        raise FERError(f"{path} is a PyTorch file but not a checkpoint of this project (no model name, classes "
                       "and state dict)")
    return upgrade(ckpt)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a model from a checkpoint alone; returns (model in eval mode, checkpoint dict).

    An .onnx file from `fer export` gives an OnnxModel, which runs on the CPU whatever `device` says."""
    if Path(path).suffix.lower() == ".onnx":
        return load_onnx(path)
    ckpt = read_checkpoint(path)
    model = build_model(ckpt["model_name"], len(ckpt["classes"]), **ckpt["model_options"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval(), ckpt


class OnnxModel(torch.nn.Module):
    """An ONNX Runtime session (CPU) that evaluation and prediction call like a model: float faces in, logits out.

    It has no parameters; `model_device` sends its inputs to the CPU. `fer export` writes the files it reads.
    """

    def __init__(self, path: str | Path, input_size: int, threads: int | None = None):
        super().__init__()
        try:
            import onnxruntime as ort
        except ImportError:
            raise FERError(f"{Path(path).name} is an ONNX model, and onnxruntime is not installed: "
                           'pip install -e ".[export]"') from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.log_severity_level = 3  # errors only
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own types (InvalidProtobuf, Fail, ...)
            raise FERError(f"{path} is not an ONNX model that ONNX Runtime can load ({str(e).splitlines()[0]})") \
                from None
        self.input_name, self.input_size, self.path = self.session.get_inputs()[0].name, input_size, Path(path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        faces = x.detach().float().cpu().contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {self.input_name: faces})[0])


def load_onnx(path: str | Path, threads: int | None = None) -> tuple[nn.Module, dict]:
    """(OnnxModel, the checkpoint's dict without weights) of an .onnx file that `fer export` wrote."""
    path = Path(path)
    if not path.is_file():
        raise FERError(f"ONNX model {path} does not exist")
    model = OnnxModel(path, 0, threads)
    record = model.session.get_modelmeta().custom_metadata_map.get(ONNX_METADATA)
    if record is None:
        raise FERError(f"{path} is an ONNX model without this project's metadata (classes, input size); "
                       "export the checkpoint with `fer export`")
    ckpt = json.loads(record)
    model.input_size = int(ckpt["input_size"])
    return model, ckpt


def resume_problem(saved: dict, cfg: TrainConfig, classes, dataset: dict | None = None,
                   ignore=frozenset()) -> str | None:
    """Why a saved run cannot be resumed with `cfg` on `classes` and `dataset`, or None when it can; the settings
    in `ignore` may differ."""
    if [canonical_class(c) for c in saved.get("classes", classes)] != [canonical_class(c) for c in classes]:
        return (f"it was trained on classes {', '.join(saved['classes'])}, and this dataset has "
                f"{', '.join(classes)}")
    if json.dumps(saved["config"].get("epochs")) != json.dumps(cfg.epochs):
        return (f"it was trained for a {saved['config']['epochs']}-epoch schedule and {cfg.epochs} epochs were "
                "asked for (the learning-rate schedule spans the whole run)")
    why = mismatch(saved.get("dataset"), dataset)
    if why:
        return f"it was trained on other data: {why}"
    changed = sorted(cfg.differences(saved["config"], ignore={"out", "data", "device", "patience", "eval_batch_size",
                                                              *ignore}))
    return f"it was trained with other settings ({', '.join(changed)})" if changed else None


@dataclass
class TrainingState:
    """Everything a run changes as it trains. last.pt saves all of it, so that a resumed run continues exactly."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any = None  # a per-batch LRScheduler, or None
    scaler: Any = None  # a GradScaler (fp16 on CUDA), or None
    ema: Any = None  # a torch.optim.swa_utils.AveragedModel of `model`, or None
    history: Any = None  # training.History
    epoch: int = 0  # the last finished epoch, counted from 1; 0 before the first

    def resumable(self) -> dict:
        """The states that last.pt adds to the model's."""
        return {"optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "ema": self.ema.state_dict() if self.ema is not None else None}

    def restore(self, saved: dict) -> None:
        """Load a last.pt (as `read_checkpoint` returns it) into this state, in place."""
        self.model.load_state_dict(saved["state_dict"])
        kernels = [{k: g[k] for k in ("fused", "foreach") if k in g} for g in self.optimizer.param_groups]
        self.optimizer.load_state_dict(saved["optimizer"])
        for group, chosen in zip(self.optimizer.param_groups, kernels):
            group.update(chosen)  # this machine's kernel (training.make_optimizer), not the saving machine's
            for p in group["params"] if group.get("fused") else []:
                state = self.optimizer.state.get(p, {})
                if "step" in state:  # the fused kernel keeps its step count as a float32 beside the parameter
                    state["step"] = state["step"].to(p.device, torch.float32)
        if self.scheduler is not None and saved.get("scheduler"):
            self.scheduler.load_state_dict(saved["scheduler"])
        if self.scaler is not None and saved.get("scaler"):
            self.scaler.load_state_dict(saved["scaler"])
        if self.ema is not None:  # resume_problem has checked that the saved run had the same EMA
            self.ema.load_state_dict(saved["ema"])
        self.history = type(self.history)(**saved["history"])
        self.epoch = saved["epoch"]


@dataclass
class RunCheckpoints(Run):
    """The checkpoints of one run folder, and what each records next to its weights."""

    path: Path
    cfg: TrainConfig
    classes: list[str]
    model_options: dict
    dataset: dict | None = None  # the data fingerprint, recorded in every file

    def saved_run(self) -> dict | None:
        """last.pt to resume from, or None when there is none; refuses one made with other settings."""
        if not self.last.exists():
            return None
        saved = read_checkpoint(self.last)
        # a finished run trains no further, so the number of processes that trained it does not matter to it
        why = resume_problem(saved, self.cfg, self.classes, self.dataset,
                             ignore={"world_size"} if ran_to_the_end(saved["history"], self.cfg.epochs) else ())
        if why:
            how = (f"set `results` in the parameters cell to another folder, or delete {self.path}" if in_notebook()
                   else "start fresh with --no-resume, or use another output folder")
            raise FERError(f"cannot resume {self.last}: {why}; {how} (a trial run belongs in a results folder of "
                           "its own)")
        return saved

    def finished_run(self) -> dict | None:
        """history.json of a run that finished with these settings where last.pt is gone (a clone keeps only
        best.pt), so that it is not trained again; None otherwise. Refuses a finished run of other settings."""
        saved = self.history
        if self.last.exists() or not self.best.exists() or saved is None or not ran_to_the_end(saved, self.cfg.epochs):
            return None
        why = resume_problem(read_checkpoint(self.best), self.cfg, self.classes, self.dataset, ignore={"world_size"})
        if why:
            raise FERError(f"{self.path} holds a finished run with other settings: {why}; delete it or use "
                           "another output folder")
        return saved

    def payload(self, model: nn.Module, state: TrainingState, **extra) -> dict:
        return checkpoint_payload(model, self.cfg, self.classes, self.model_options, epoch=state.epoch,
                                  history=state.history.to_dict(), dataset=self.dataset, **extra)

    def save_epoch(self, state: TrainingState, improved: bool) -> None:
        """last.pt after every epoch; best.pt (only what inference needs, ~1/3 the size) when `improved`."""
        if improved:
            save_checkpoint(self.payload(state.model, state), self.best)
        save_checkpoint(self.payload(state.model, state, **state.resumable()), self.last)

    def save_ema(self, state: TrainingState) -> None:
        """ema.pt: the averaged weights as an ordinary checkpoint; `ema_steps` counts the steps averaged."""
        save_checkpoint(self.payload(state.ema.module, state, ema_steps=int(state.ema.n_averaged)), self.ema)
