"""Helpers the notebooks call, and the runner that executes them with papermill."""

from __future__ import annotations

import os
import platform

import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch

from .config import NOTEBOOKS_DIR, RESULTS_DIR, TrainConfig

NOTEBOOKS = ("P5_a_preprocessing", "P5_b_transfer_vgg16", "P5_c_light_vgg", "P5_d_cam")
SMOKE_PARAMS = {"epochs": 1, "max_batches": 2, "vgg16_weights": "none", "smoke": True, "run_ablation": True}


def environment_info() -> dict:
    """Where this runs: platform, torch version, device and GPU name."""
    from .runtime import device_name, pick_device
    device = pick_device()
    return {"platform": "colab" if "google.colab" in sys.modules else
            "kaggle" if "KAGGLE_KERNEL_RUN_TYPE" in os.environ else platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__, "device": str(device),
            "device_name": device_name(device), "cuda": torch.version.cuda}


def settings_table(cfg: TrainConfig, stats: dict | None = None, params: dict | None = None,
                   history=None) -> pd.DataFrame:
    """Every setting of a run as one two-column table, for the notebook and the report."""
    opt = {"adam": f"Adam (betas={tuple(cfg.betas)}, weight decay={cfg.weight_decay})",
           "adamw": f"AdamW (betas={tuple(cfg.betas)}, weight decay={cfg.weight_decay})",
           "sgd": f"SGD (momentum={cfg.momentum}, Nesterov, weight decay={cfg.weight_decay})"}[cfg.optimizer]
    sched = {"onecycle": f"one-cycle, max lr {cfg.lr:g}", "none": f"constant {cfg.lr:g}",
             "cosine": f"cosine, {cfg.warmup_epochs:g} warm-up epochs, peak {cfg.lr:g}"}[cfg.schedule]
    rows = {
        "model": cfg.model,
        "loss": "cross-entropy" + (f", label smoothing {cfg.label_smoothing}" if cfg.label_smoothing else "")
                + (", inverse-frequency class weights" if cfg.class_weights else ""),
        "optimizer": opt,
        "learning rate / schedule": sched + (f"; head lr x{cfg.head_lr_mult:g}" if cfg.model == "vgg16" else ""),
        "epochs (max) / early stopping": f"{cfg.epochs} / " + (f"patience {cfg.patience}" if cfg.patience
                                                                else "none; best tune epoch kept"),
        "batch size": cfg.batch_size,
        "input": f"RGB {cfg.resolved_input_size()}x{cfg.resolved_input_size()}, pixels scaled to [0, 1]"
                 + (", then ImageNet mean/std" if cfg.model == "vgg16" else ""),
        "augmentation (on-line)": cfg.augment,
        "seed": cfg.seed,
        "mixed precision": cfg.amp if history is None else f"{cfg.amp} ({history.amp or 'off'} used)",
    }
    if cfg.model == "vgg16":
        rows["weights / freezing"] = f"{cfg.weights} / {cfg.freeze}"
    else:
        rows["batch-norm / dropout / Gaussian dropout"] = f"{cfg.batch_norm} / {cfg.dropout} / {cfg.gaussian_dropout}"
    if params:
        rows["parameters (total / trainable)"] = f"{params['total']:,} / {params['trainable']:,}"
    if stats:
        t = stats["totals"]
        rows["split (train / tune / validation)"] = f"{t['train']} / {t['tune']} / {t['validation']}"
    if history is not None:
        rows["epochs run / best tune epoch"] = f"{len(history.epochs)} / {history.best_epoch}"
        rows["hardware / wall time"] = f"{history.device} / {history.wall_seconds / 60:.1f} min"
    if cfg.max_batches:
        rows["max batches (smoke run)"] = cfg.max_batches
    return pd.DataFrame({"setting": list(rows), "value": [str(v) for v in rows.values()]}).set_index("setting")


def run_notebooks(names=NOTEBOOKS, params: dict | None = None, smoke: bool = False,
                  output_dir: str | Path | None = None, kernel: str = "python3") -> list[Path]:
    """Execute notebooks in order with papermill.

    Normal mode executes them in place. Smoke mode (1 epoch, 2 batches, random VGG16 allowed) writes
    executed copies and all results into `output_dir` (a temporary folder by default), so committed
    outputs are never touched.
    """
    import papermill as pm
    params = dict(params or {})
    if smoke:
        out = Path(output_dir or tempfile.mkdtemp(prefix="fer-smoke-"))
        params = {**SMOKE_PARAMS, "results": str(out / "results"), **params}
    else:
        out = Path(output_dir) if output_dir else NOTEBOOKS_DIR
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        src = NOTEBOOKS_DIR / f"{name}.ipynb"
        dst = out / f"{name}.ipynb"
        print(f"executing {src} -> {dst}", flush=True)
        declared = pm.inspect_notebook(str(src))
        # smoke settings go only to the notebooks that declare them; the caller's go everywhere
        nb_params = {k: v for k, v in params.items() if k in declared or k not in SMOKE_PARAMS}
        pm.execute_notebook(str(src), str(dst), parameters=nb_params, kernel_name=kernel,
                            cwd=str(NOTEBOOKS_DIR), progress_bar=False)
        written.append(dst)
    return written


def results_dir(results: str | None) -> Path:
    """The notebooks' results folder: the parameter, else the repository's results/."""
    return Path(results) if results else RESULTS_DIR



