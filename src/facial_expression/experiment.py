"""One experiment end to end: data, model, fit, evaluation on every split, figures and metrics.json.

The CLI and the notebooks both call `run_experiment`, so the same config and seed give the same numbers.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_checkpoint
from .config import RESULTS_DIR, TrainConfig
from .data import (ImageSet, Splits, load_split_for_checkpoint, load_splits, resolve_eval_folder, resolve_layout,
                   split_statistics)
from .data.fingerprint import check_same_dataset, dataset_fingerprint, describe
from .data.folders import canonical_class
from .errors import DataError, FERError
from .evaluation import (LATENCY_FILE, LATENCY_REPEATS, compute_metrics, measure_latencies, predict, report_text,
                         save_json, timed)
from .models import build_model, count_parameters, model_options
from .plots import draw_run_figures
from .runs import Run
from .runtime import (amp_dtype, configure_backends, init_distributed, main_process_first, pick_device,
                      seed_everything, set_threads)
from .training import History, fit

DEFAULT_NAMES = {"light-vgg": "light_vgg", "vgg16": "vgg16_transfer", "alexnet-var": "alexnet_var",
                 "mobilenet-var": "mobilenet_var"}
# The paper's three light networks (Hewitt and Gunes 2018): model name -> (results folder, name in tables)
PAPER_MODELS = {"light-vgg": ("light_vgg", "VGG-var (LightVGG, part c)"), "alexnet-var": ("alexnet_var", "AlexNet-var"),
                "mobilenet-var": ("mobilenet_var", "MobileNet-var")}


@dataclass
class ExperimentResult:
    """What a finished run leaves behind, in memory and under `out_dir`."""

    cfg: TrainConfig
    out_dir: Path
    splits: Splits
    model: torch.nn.Module
    history: History
    metrics: dict  # split -> metrics dict
    predictions: dict  # split -> (probs, labels)


HEADLINE = ("accuracy", "macro_f1", "macro_auc")  # the metrics every variant of a run (TTA, EMA) is given


def output_dir(cfg: TrainConfig) -> Path:
    return Path(cfg.out) if cfg.out else RESULTS_DIR / DEFAULT_NAMES.get(cfg.model, cfg.model)


def evaluate_splits(model, data: dict[str, ImageSet], out_dir: Path, classes, batch_size: int = 256,
                    dtype=None, max_batches: int | None = None, extra: dict | None = None,
                    tta: bool = False) -> tuple[dict, dict]:
    """Metrics, predictions.npz, metrics.json and ROC/confusion figures for each split given.

    metrics.json's top level holds the validation split (the reported one), or the only split given;
    every split is under "splits". The metrics use flip test-time augmentation if `tta`; the other choice (without TTA,
    or with it) is measured too on tune and validation, under "flip_tta" or "no_tta".
    """
    out_dir = Path(out_dir)
    metrics, preds, alternative = {}, {}, {}
    for split, images in data.items():
        probs, labels = predict(model, images, batch_size, dtype, max_batches, tta=tta)
        metrics[split], preds[split] = compute_metrics(labels, probs, classes), (probs, labels)
        if split in ("tune", "validation"):
            alternative[split] = headline_metrics(model, images, classes, batch_size, dtype, max_batches, not tta)
    reported = "validation" if "validation" in data else list(data)[-1]
    summary = {**metrics[reported], "evaluated_split": reported, "tta": tta, **(extra or {}),
               "splits": {s: {k: m[k] for k in (*HEADLINE, "micro_auc", "cohen_kappa", "n", "confusion_matrix")}
                          for s, m in metrics.items()},
               "no_tta" if tta else "flip_tta": alternative}
    save_json(summary, out_dir / "metrics.json")
    np.savez_compressed(out_dir / "predictions.npz",
                        **{f"{s}_probs": p for s, (p, _) in preds.items()},
                        **{f"{s}_labels": y for s, (_, y) in preds.items()})
    probs, labels = preds[reported]
    (out_dir / "classification_report.txt").write_text(report_text(labels, probs, classes))
    draw_run_figures(out_dir)
    return metrics, preds


def headline_metrics(model, images: ImageSet, classes, batch_size: int, dtype, max_batches: int | None,
                     tta: bool) -> dict:
    """Accuracy, macro-F1 and macro-AUC of one model on one split, without or with flip TTA."""
    probs, labels = predict(model, images, batch_size, dtype, max_batches, tta=tta)
    m = compute_metrics(labels, probs, classes)
    return {k: m[k] for k in HEADLINE}


def by_tta(metrics: dict) -> dict[str, dict]:
    """A metrics.json's split metrics as {"no_tta": {split: ...}, "flip_tta": {split: ...}}: the reported ones
    (under "splits", with TTA if the run used it) and the other choice that evaluate_splits measured too."""
    shown, other = ("flip_tta", "no_tta") if metrics.get("tta") else ("no_tta", "flip_tta")
    return {shown: metrics["splits"], other: metrics.get(other, {})}


def ema_metrics(path: Path, splits: Splits, cfg: TrainConfig, device) -> dict:
    """Accuracy, macro-F1 and macro-AUC of the EMA weights (ema.pt) on tune and validation, without and with
    flip TTA: the same run then answers whether averaging the weights helps. Tune selects; validation reports."""
    model, _ = load_checkpoint(path, device)
    dtype = amp_dtype(device, cfg.amp)
    return {key: {split: headline_metrics(model, getattr(splits, split), splits.classes, cfg.eval_batch_size, dtype,
                                          cfg.max_batches, tta) for split in ("tune", "validation")}
            for key, tta in (("no_tta", False), ("flip_tta", True))}


def run_experiment(cfg: TrainConfig, resume: bool = True, progress: bool = True,
                   splits: Splits | None = None) -> ExperimentResult:
    """Train the configured model and evaluate its best (tune-selected) checkpoint on all splits.

    Under torchrun every process trains (`fit`); rank 0 alone evaluates and writes, and the others return with
    empty metrics."""
    seed_everything(cfg.seed)
    set_threads()
    device = pick_device(cfg.device)
    procs = init_distributed(device)
    configure_backends(device)
    out_dir = output_dir(cfg)
    size = cfg.resolved_input_size()
    classes = splits.classes if splits is not None else resolve_layout(cfg.data, cfg.classes).classes
    options = model_options(cfg)
    model = build_model(cfg.model, len(classes), **options)  # before decoding: missing weights fail fast
    if splits is None:
        with main_process_first():  # rank 0 decodes into the disk cache, the others then read it
            splits = load_splits(cfg.data, size, cfg.tune_fraction, cfg.seed, progress=progress and procs.main,
                                 classes=cfg.classes)
    cfg = replace(cfg, data=str(splits.layout.root))
    dataset = dataset_fingerprint(splits.layout, splits)
    if procs.main:
        save_json(split_statistics(splits), out_dir / "split_stats.json")
    model = model.to(device).to(memory_format=torch.channels_last)
    history = fit(model, splits, cfg, out_dir, options, resume=resume, progress=progress, dataset=dataset)
    if not procs.main:
        return ExperimentResult(cfg, out_dir, splits, model, history, {}, {})

    best = out_dir / "best.pt"
    if best.exists():
        model, _ = load_checkpoint(best, device)
        model = model.to(memory_format=torch.channels_last)
    saved = saved_evaluation(out_dir, history, cfg, dataset, splits.classes) if resume else None
    if saved is not None:
        print(f"{out_dir} was evaluated when it finished: its saved predictions are used "
              "(delete its metrics.json to evaluate it again)")
        return ExperimentResult(cfg, out_dir, splits, model, history, *saved)
    latency = measure_latencies({"run": (copy.deepcopy(model).float().cpu(), size)}, "cpu",
                                *LATENCY_REPEATS["smoke" if cfg.max_batches else "run"])["run"]
    extra = {"model": cfg.model, "parameters": count_parameters(model), "best_epoch": history.best_epoch,
             "epochs_run": len(history.epochs), "wall_seconds": history.wall_seconds,
             "device": history.hardware, "amp": history.precision, "data": cfg.data,
             "interrupted": history.interrupted, "max_batches": cfg.max_batches,
             "cpu_latency_ms": latency["median_ms"], "cpu_latency_p90_ms": latency["p90_ms"], "dataset": dataset}
    if cfg.ema and (out_dir / "ema.pt").exists():
        extra["ema"] = ema_metrics(out_dir / "ema.pt", splits, cfg, device)
    metrics, preds = evaluate_splits(model, dict(splits.items()), out_dir, splits.classes,
                                     cfg.eval_batch_size, amp_dtype(device, cfg.amp), cfg.max_batches, extra,
                                     tta=cfg.tta)
    return ExperimentResult(cfg, out_dir, splits, model, history, metrics, preds)


def saved_evaluation(out_dir: Path, history: History, cfg: TrainConfig, dataset: dict,
                     classes) -> tuple[dict, dict] | None:
    """The metrics and predictions (split -> (probs, labels)) that a finished run saved, if they are of this very
    training (its history, data and settings), recomputed from predictions.npz. Rerunning a notebook then shows
    the numbers it showed, on any machine: evaluating again under fp32 on one CPU what was evaluated under bf16 on
    another moved some confusion counts by one or two faces. None where the run must be evaluated."""
    m, p_path = Run(out_dir).metrics, out_dir / "predictions.npz"
    if history.interrupted or m is None or not p_path.exists():
        return None
    same = {"epochs_run": len(history.epochs), "best_epoch": history.best_epoch, "wall_seconds": history.wall_seconds,
            "dataset": json.loads(json.dumps(dataset)), "tta": cfg.tta, "max_batches": cfg.max_batches,
            "classes": list(classes)}
    if any(m.get(k) != v for k, v in same.items()) or bool(cfg.ema) != ("ema" in m):
        return None
    with np.load(p_path) as saved:
        preds = {s: (saved[f"{s}_probs"], saved[f"{s}_labels"]) for s in m["splits"]}
    return {s: compute_metrics(labels, probs, list(classes)) for s, (probs, labels) in preds.items()}, preds


def evaluate_checkpoint(checkpoint: str | Path, data: str | Path, out_dir: str | Path,
                        batch_size: int = 256, max_batches: int | None = None, device: str = "auto",
                        progress: bool = True) -> dict:
    """Evaluate a saved model on a folder of class sub-folders, matching classes by name."""
    dev = pick_device(device)
    model, ckpt = load_checkpoint(checkpoint, dev)
    folder = resolve_eval_folder(data)
    images = load_split_for_checkpoint(folder, model.input_size, ckpt, progress)
    cfg = TrainConfig.from_dict(ckpt["config"])
    extra = {"model": ckpt["model_name"], "checkpoint": str(checkpoint), "data": str(folder),
             "trained_on": ckpt.get("dataset")}
    metrics, _ = evaluate_splits(model, {folder.name: images}, Path(out_dir), ckpt["classes"], batch_size,
                                 amp_dtype(dev, cfg.amp), max_batches, extra, tta=cfg.tta)
    return metrics[folder.name]


def trained_model(cfg: TrainConfig, what: str = "the model", progress: bool = True):
    """(model, checkpoint) of cfg's finished run on cfg.data: trained, or resumed, first where it has not finished.

    An interrupted run is named and resumed, never explained; a run folder that holds a model of other data is
    refused in one line.
    """
    out, run = output_dir(cfg), Run(output_dir(cfg))
    current = dataset_fingerprint(resolve_layout(cfg.data, cfg.classes))
    if run.finished and run.best.exists():
        check_same_dataset(run.fingerprint, current,
                           f"{what} in {out} (delete that folder or set another results folder)")
        print(f"using {what} from {out} ({describe(run.fingerprint)})")
    else:
        print(f"{what} in {out} was interrupted before it finished: resuming it now (from its last.pt)"
              if run.state == "interrupted" else f"{what} is not in {out}: training it now with its own settings "
              f"({cfg.epochs} epoch{'s' * (cfg.epochs != 1)})")
        if run_experiment(cfg, progress=progress).history.interrupted:
            raise FERError(f"{what} in {out} was interrupted again, and an unfinished model is not explained: run "
                           "this again to resume it")
    model, ckpt = load_checkpoint(out / "best.pt", pick_device(cfg.device))
    if [canonical_class(c) for c in ckpt["classes"]] != [canonical_class(c) for c in current["classes"]]:
        raise DataError(f"{out / 'best.pt'} knows the classes {', '.join(ckpt['classes'])}, and the dataset "
                        f"has {', '.join(current['classes'])}; delete that folder or set another results folder")
    return model, ckpt


def trained_fields(metrics: dict) -> dict:
    """What a model card takes from a finished run's metrics.json: its headline metrics and epochs."""
    return {**{k: round(metrics[k], 4) for k in HEADLINE}, "epochs_run": metrics.get("epochs_run")}


def model_cards(runs: list[tuple], cache: str | Path, smoke: bool = False) -> list[dict]:
    """Cards of saved runs (out_dir, name, architecture or None): parameters, size on disk, validation metrics, and
    latencies timed together through `cache` (`timed`; a few passes for a smoke run, or any with `smoke`). A run not
    finished is "not trained yet" (or "interrupted"), measured on random weights of its `architecture` (model name,
    classes, options) where given."""
    cards, models, smoke_run = [], {}, smoke
    for i, (out_dir, name, architecture) in enumerate(runs):
        run = Run(out_dir)
        trained = run.finished and run.best.exists()
        status = "interrupted" if run.state == "interrupted" else "not trained yet"
        m = run.metrics if trained else {}
        smoke_run = smoke_run or run.smoke
        if trained:
            model, _ = load_checkpoint(run.best, "cpu")
            card = {"model": name, "status": "trained", "checkpoint_MB": round(run.best.stat().st_size / 2**20, 1)}
        elif architecture is not None:
            model = build_model(architecture[0], architecture[1], **architecture[2]).eval()
            card = {"model": name, "status": f"{status}: size and latency of the architecture"}
        else:
            cards.append({"model": name, "status": status})
            continue
        params = count_parameters(model)
        card.update({"parameters": params["total"], "trainable": params["trainable"],
                     "fp32_size_MB": round(params["total"] * 4 / 2**20, 1), "cpu_latency_ms": None,
                     **({"gpu_latency_ms": None} if torch.cuda.is_available() else {})})  # measured below
        if trained:
            card.update(trained_fields(m))
        else:
            card.update({k: "not run" for k in HEADLINE})
        models[i] = (model, model.input_size)
        cards.append(card)
    for device in (["cpu"] + (["cuda"] if torch.cuda.is_available() else [])) if models else []:
        for i, ms in timed(models, cache, device, *LATENCY_REPEATS["smoke" if smoke_run else "run"]).items():
            cards[i][f"{device if device == 'cpu' else 'gpu'}_latency_ms"] = round(ms, 2)
    return cards


def paper_models_comparison(results: str | Path, n_classes: int, smoke: bool = False) -> list[dict]:
    """Model cards of the paper's three light networks, their CPU latencies timed together (RESULTS/latency.json);
    a network without a finished run is measured on its architecture and marked not trained."""
    return model_cards([(Path(results) / folder, label, (model, n_classes, {}))
                        for model, (folder, label) in PAPER_MODELS.items()], Path(results) / LATENCY_FILE, smoke)
