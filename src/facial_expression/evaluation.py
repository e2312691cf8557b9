"""Predictions and metrics: accuracy, macro-F1, kappa, confusion matrix and one-vs-rest ROC/AUC."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import (accuracy_score, classification_report, cohen_kappa_score, confusion_matrix, f1_score,
                             precision_recall_fscore_support, roc_auc_score, roc_curve)

from .data.cache import ImageSet
from .data.loader import BatchLoader
from .runtime import autocast


class FlipTTA(torch.nn.Module):
    """Flip test-time augmentation: the mean class probabilities of a face and its mirror image (two passes)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model, self.input_size = model, getattr(model, "input_size", None)
        self.architecture = f"flip TTA of {getattr(model, 'architecture', None)}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.softmax(self.model(x).float(), 1) + torch.softmax(self.model(x.flip(-1)).float(), 1)) / 2


def model_device(model: torch.nn.Module) -> torch.device:
    """Where a model's inputs go: its parameters' device, the CPU for a model without any (OnnxModel)."""
    return next(model.parameters(), torch.empty(0)).device


def predict(model, data: ImageSet, batch_size: int = 256, dtype: torch.dtype | None = None,
            max_batches: int | None = None, tta: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (N x C) and true labels (N) of a model on an ImageSet, in eval mode.

    `dtype` is the autocast dtype (None: fp32); with `tta` the probabilities are the mean over each image
    and its mirror image.
    """
    device = model_device(model)
    model.eval()
    probs, labels = [], []
    with torch.inference_mode(), autocast(device, dtype):
        for x, y in BatchLoader(data, batch_size, device=device, max_batches=max_batches):
            p = FlipTTA(model)(x) if tta else torch.softmax(model(x).float(), 1)
            probs.append(p.cpu())
            labels.append(y.cpu())
    return torch.cat(probs).numpy(), torch.cat(labels).numpy()


def roc_curves(y_true: np.ndarray, probs: np.ndarray, classes) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """One-vs-rest ROC per class present in y_true: name -> (fpr, tpr, auc)."""
    out = {}
    for i, name in enumerate(classes):
        positives = y_true == i
        if positives.all() or not positives.any():
            continue  # undefined without both positives and negatives
        fpr, tpr, _ = roc_curve(positives, probs[:, i])
        out[name] = (fpr, tpr, float(roc_auc_score(positives, probs[:, i])))
    return out


def compute_metrics(y_true: np.ndarray, probs: np.ndarray, classes) -> dict:
    """All metrics of one split. AUCs are one-vs-rest; the macro AUC averages the classes present."""
    classes = list(classes)
    labels = list(range(len(classes)))
    y_pred = probs.argmax(1)
    prec, rec, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    curves = roc_curves(y_true, probs, classes)
    present = [c for c in classes if c in curves]
    micro = None
    if len(present) >= 2:
        onehot = np.eye(len(classes))[y_true]
        micro = float(roc_auc_score(onehot.ravel(), probs.ravel()))
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "macro_auc": float(np.mean([curves[c][2] for c in present])) if present else None,
        "micro_auc": micro,
        "cohen_kappa": float(cohen_kappa_score(y_true, y_pred, labels=labels)),
        "n": int(len(y_true)),
        "classes": classes,
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "per_class": {
            c: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                "support": int(support[i]), "auc": curves[c][2] if c in curves else None}
            for i, c in enumerate(classes)
        },
    }


def report_text(y_true: np.ndarray, probs: np.ndarray, classes) -> str:
    """scikit-learn's classification report."""
    return classification_report(y_true, probs.argmax(1), labels=list(range(len(classes))),
                                 target_names=list(classes), digits=3, zero_division=0)


def save_json(obj, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2))
    return path


LATENCY_REPEATS = {"run": (50, 10), "smoke": (3, 1)}  # (timed, warm-up) passes; a smoke run's numbers mean nothing


def measure_latencies(models: dict[str, tuple], device=None, repeats: int = 50, warmup: int = 10) -> dict[str, dict]:
    """Single-image latency of several models (name -> (model, input size)), interleaved: each round times one
    pass of every model in turn, so that a machine whose load drifts slows them alike and their ratios hold."""
    device = torch.device(device) if device else model_device(next(iter(models.values()))[0])
    inputs = {k: (m.to(device).eval(), torch.rand(1, 3, size, size, device=device)) for k, (m, size) in models.items()}
    times = {k: [] for k in models}
    with torch.inference_mode():
        for i in range(warmup + repeats):
            for k, (model, x) in inputs.items():
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                model(x)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if i >= warmup:
                    times[k].append((time.perf_counter() - t0) * 1000)
    return {k: {"device": str(device), "median_ms": float(np.median(t)), "p90_ms": float(np.percentile(t, 90)),
                "repeats": repeats} for k, t in times.items()}


LATENCY_FILE = "latency.json"  # in a results folder: the groups of models `timed` timed together


def saved_latencies(cache: str | Path, architectures: dict, device: str = "cpu", threads: int | None = None,
                    repeats: int = 0) -> dict[str, float] | None:
    """Median ms of models (name -> architecture) from the latest group in `cache` that timed all their architectures
    together on `device` with `threads` CPU threads (None: any) and at least `repeats` passes; None if none did."""
    for g in reversed(_groups(cache)):
        if g["device"] == device and threads in (None, g["threads"]) and g["repeats"] >= repeats \
                and set(architectures.values()) <= set(g["ms"]):
            return {name: g["ms"][a] for name, a in architectures.items()}
    return None


def _groups(cache: str | Path) -> list[dict]:
    return json.loads(Path(cache).read_text())["groups"] if Path(cache).exists() else []


def timed(models: dict[str, tuple], cache: str | Path, device: str = "cpu", repeats: int = 50,
          warmup: int = 10) -> dict[str, float]:
    """Median single-image latency in ms of models (name -> (model, input size)): read from `cache` (a results
    folder's LATENCY_FILE) where their architectures (`build_model`'s) were timed together with as many CPU threads
    as now, else timed in one `measure_latencies` call, one model per architecture, and saved there as a group. So
    every table takes its ratios from one interleaved measurement; delete the file to time again."""
    names = {name: m.architecture for name, (m, _) in models.items()}
    key = device if device == "cpu" else torch.cuda.get_device_name(device)  # one GPU's times are not another's
    if (ms := saved_latencies(cache, names, key, torch.get_num_threads(), repeats)) is not None:
        return ms
    t = measure_latencies({a: models[name] for name, a in names.items()}, device, repeats, warmup)
    group = {"device": key, "threads": torch.get_num_threads(), "repeats": repeats,
             "ms": {a: v["median_ms"] for a, v in t.items()}}
    save_json({"groups": _groups(cache) + [group]}, cache)
    return {name: group["ms"][a] for name, a in names.items()}
