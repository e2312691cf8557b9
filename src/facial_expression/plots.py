"""Figures for the notebooks and the report, each saved as PNG (small) and PDF (vector).

Every figure is drawn at the size it is printed at: at most TEXT_WIDTH wide, the report's text width, and the
report includes it at its natural size. So a font of FONT_SIZE points here is FONT_SIZE points on paper.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch

from .data import ImageSet, augmented_views
from .evaluation import roc_curves

# The one place plot fonts are set: points at print size, never below SMALL_FONT_SIZE (8 pt).
FONT_SIZE = 9
SMALL_FONT_SIZE = 8  # legends, cell numbers, panel titles
TEXT_WIDTH = 6.3  # inches: a little under the report's 6.45 in text width, which no figure may pass
STYLE = {**sns.axes_style("ticks"), "font.size": FONT_SIZE, "axes.titlesize": FONT_SIZE,
         "axes.labelsize": FONT_SIZE, "xtick.labelsize": SMALL_FONT_SIZE, "ytick.labelsize": SMALL_FONT_SIZE,
         "legend.fontsize": SMALL_FONT_SIZE, "legend.title_fontsize": SMALL_FONT_SIZE,
         "figure.titlesize": FONT_SIZE}


def styled(make_figure):
    """Draw a figure under STYLE, whatever the caller's matplotlib settings."""
    @functools.wraps(make_figure)
    def wrapper(*args, **kwargs):
        with plt.rc_context(STYLE):
            return make_figure(*args, **kwargs)
    return wrapper


def apply_style() -> None:
    """STYLE for every figure of a notebook session, including those drawn outside this module."""
    plt.rcParams.update(STYLE)


def save_figure(fig, stem: str | Path, dpi: int = 110, photo: bool = False, png: bool = True) -> list[Path]:
    """Write `stem`.pdf and `stem`.png (and, for grids of photos, a small `stem`.jpg for notebooks)."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png")] if png else []
    for path in paths:
        fig.savefig(path, dpi=dpi, bbox_inches="tight", pad_inches=0.02)
    paths.append(stem.with_suffix(".pdf"))
    fig.savefig(paths[-1], bbox_inches="tight", pad_inches=0.02, metadata={"CreationDate": None})  # reproducible
    if photo:  # photos compress badly as PNG; a JPEG keeps the notebooks light
        paths.append(stem.with_suffix(".jpg"))
        fig.savefig(paths[-1], dpi=80, bbox_inches="tight", pil_kwargs={"quality": 85})
    return paths


def _to_hwc(img: torch.Tensor) -> np.ndarray:
    img = img.float() / 255 if img.dtype == torch.uint8 else img
    return img.clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def pick_per_class(data: ImageSet, n: int = 3, seed: int = 0) -> dict[str, list[int]]:
    """`n` random sample indices of each class, reproducible by seed."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for i, name in enumerate(data.classes):
        idx = torch.nonzero(data.labels == i).flatten()
        out[name] = idx[torch.randperm(len(idx), generator=g)[:n]].tolist()
    return out


@styled
def sample_grid(data: ImageSet, n: int = 3, seed: int = 0):
    """`n` random samples of each class: one column per class."""
    picks = pick_per_class(data, n, seed)
    side = min(0.8, (TEXT_WIDTH - 0.2) / len(picks))
    fig, axes = plt.subplots(n, len(picks), figsize=(side * len(picks), side * n + 0.3), squeeze=False)
    for c, (name, idx) in enumerate(picks.items()):
        axes[0, c].set_title(name)
        for r in range(n):
            axes[r, c].axis("off")
            if r < len(idx):
                axes[r, c].imshow(_to_hwc(data.images[idx[r]]))
    fig.tight_layout(pad=0.2, w_pad=0.1, h_pad=0.1)
    return fig


@styled
def augmented_grid(data: ImageSet, policy, n: int = 3, seed: int = 0):
    """For one random image per class (a column each): the original, then `n` augmented views below it."""
    picks = pick_per_class(data, 1, seed)
    idx = [v[0] for v in picks.values()]
    views = augmented_views(data.images[idx], policy, n_views=n, seed=seed)
    side = min(0.8, (TEXT_WIDTH - 1.0) / len(idx))
    fig, axes = plt.subplots(n + 1, len(idx), figsize=(side * len(idx) + 0.8, side * (n + 1) + 0.3),
                             squeeze=False)
    for c, name in enumerate(picks):
        axes[0, c].set_title(name)
        axes[0, c].imshow(_to_hwc(data.images[idx[c]]))
        for r in range(n):
            axes[r + 1, c].imshow(_to_hwc(views[c, r]))
    for r, label in enumerate(["original"] + [f"view {k + 1}" for k in range(n)]):
        axes[r, 0].text(-0.08, 0.5, label, transform=axes[r, 0].transAxes, ha="right", va="center")
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout(pad=0.2, w_pad=0.1, h_pad=0.1)
    return fig


@styled
def plot_history(history: dict | list, title: str | None = None):
    """Loss and accuracy per epoch for train, tune and validation; the best tune epoch is marked."""
    rows = history["epochs"] if isinstance(history, dict) else history
    best = history.get("best_epoch") if isinstance(history, dict) else None
    epochs = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(TEXT_WIDTH, 2.5))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for split, style in (("train", "-"), ("tune", "--"), ("validation", "-.")):
            if f"{split}_{metric}" in rows[0]:
                ax.plot(epochs, [r[f"{split}_{metric}"] for r in rows], style, marker=".", ms=3, label=split)
        if best:
            ax.axvline(best, color="grey", lw=0.8, ls=":", label=f"best tune epoch ({best})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[1].legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout(pad=0.3)
    return fig


@styled
def plot_roc(y_true: np.ndarray, probs: np.ndarray, classes, title: str = "ROC (one-vs-rest)"):
    """One-vs-rest ROC curve per class with its AUC; half the text width, so two fit side by side."""
    fig, ax = plt.subplots(figsize=(TEXT_WIDTH / 2 - 0.1, 3.0))
    for name, (fpr, tpr, auc) in roc_curves(y_true, probs, classes).items():
        ax.plot(fpr, tpr, lw=1.2, label=f"{name} ({auc:.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8, label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(loc="lower right", title="class (AUC)", handlelength=1.2, labelspacing=0.2, borderpad=0.3)
    fig.tight_layout(pad=0.3)
    return fig


@styled
def plot_confusions(metrics_by_split: dict[str, dict]):
    """The confusion matrix of each split (train, tune, validation) side by side, at print size: each cell coloured
    by its share of the true class, with that share in %."""
    n = len(metrics_by_split)
    fig, axes = plt.subplots(1, n, figsize=(TEXT_WIDTH, 0.3 + TEXT_WIDTH / (n + 0.5)), squeeze=False)
    for i, (ax, (split, m)) in enumerate(zip(axes.flat, metrics_by_split.items())):
        cm = np.asarray(m["confusion_matrix"], dtype=float)
        rates = cm / np.clip(cm.sum(1, keepdims=True), 1, None)
        sns.heatmap(rates, annot=np.vectorize(lambda r: f"{100 * r:.0f}")(rates), fmt="", cmap="Blues", vmin=0,
                    vmax=1, cbar=False, ax=ax, square=True, xticklabels=m["classes"],
                    yticklabels=m["classes"] if i == 0 else False, annot_kws={"size": SMALL_FONT_SIZE})
        ax.tick_params(axis="x", labelrotation=90)
        ax.tick_params(axis="y", labelrotation=0)
        ax.set(xlabel="predicted", ylabel="true" if i == 0 else "", title=f"{split} (n = {m['n']:,})")
    fig.tight_layout(pad=0.3, w_pad=0.6)
    return fig


def draw_run_figures(out_dir: str | Path, fig_dir: str | Path | None = None, prefix: str = "",
                     png: bool = True) -> list[Path]:
    """Redraw a run's figures from what it saved (history.json, metrics.json, predictions.npz): loss and
    accuracy curves, ROC curves per split and the confusion matrices, as fig_dir/<prefix><name>.pdf and .png
    (default: out_dir/figures)."""
    out_dir = Path(out_dir)
    fig_dir = Path(fig_dir) if fig_dir else out_dir / "figures"
    figures, written = [], []
    if (out_dir / "history.json").exists():
        history = json.loads((out_dir / "history.json").read_text())
        if history.get("epochs"):
            figures.append(("history", plot_history(history)))
    metrics = json.loads((out_dir / "metrics.json").read_text())
    classes = metrics["classes"]
    if (out_dir / "predictions.npz").exists():
        with np.load(out_dir / "predictions.npz") as preds:
            for split in metrics["splits"]:
                figures.append((f"roc_{split}", plot_roc(preds[f"{split}_labels"], preds[f"{split}_probs"],
                                                         classes, f"ROC, {split}")))
    if metrics.get("splits"):
        figures.append(("confusion", plot_confusions({s: {**m, "classes": classes}
                                                      for s, m in metrics["splits"].items()})))
    for name, fig in figures:
        written += save_figure(fig, fig_dir / f"{prefix}{name}", png=png)
        plt.close(fig)
    return written
