"""Figures for the notebooks and the report, each saved as PNG (small) and PDF (vector)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch

from .data import ImageSet, augmented_views
from .evaluation import roc_curves


FONT_SIZE = 10  # points at the figure's own size; the one place plot fonts are set


def apply_style() -> None:
    """Seaborn's ticks style with every text at FONT_SIZE (titles a point larger)."""
    sns.set_theme(style="ticks", rc={"font.size": FONT_SIZE, "axes.titlesize": FONT_SIZE + 1,
                                     "axes.labelsize": FONT_SIZE, "xtick.labelsize": FONT_SIZE,
                                     "ytick.labelsize": FONT_SIZE, "legend.fontsize": FONT_SIZE,
                                     "figure.titlesize": FONT_SIZE + 1})


def save_figure(fig, stem: str | Path, dpi: int = 110, photo: bool = False) -> list[Path]:
    """Write `stem`.png and `stem`.pdf (and, for grids of photos, a small `stem`.jpg for notebooks)."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    fig.savefig(paths[0], dpi=dpi, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight", metadata={"CreationDate": None})  # reproducible bytes
    if photo:  # photos compress badly as PNG; a JPEG keeps the notebooks light
        paths.append(stem.with_suffix(".jpg"))
        fig.savefig(paths[2], dpi=80, bbox_inches="tight", pil_kwargs={"quality": 85})
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


def sample_grid(data: ImageSet, n: int = 3, seed: int = 0, title: str | None = None):
    """A class x n grid of random samples."""
    picks = pick_per_class(data, n, seed)
    fig, axes = plt.subplots(len(picks), n, figsize=(1.6 * n, 1.6 * len(picks)), squeeze=False)
    for r, (name, idx) in enumerate(picks.items()):
        for c in range(n):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(idx):
                ax.imshow(_to_hwc(data.images[idx[c]]))
        axes[r, 0].text(-0.1, 0.5, name, transform=axes[r, 0].transAxes, ha="right", va="center")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def augmented_grid(data: ImageSet, policy, n: int = 3, seed: int = 0):
    """For one random image per class: the original, then `n` augmented views."""
    picks = pick_per_class(data, 1, seed)
    idx = [v[0] for v in picks.values()]
    views = augmented_views(data.images[idx], policy, n_views=n, seed=seed)
    fig, axes = plt.subplots(len(idx), n + 1, figsize=(1.6 * (n + 1), 1.6 * len(idx)), squeeze=False)
    for r, name in enumerate(picks):
        axes[r, 0].imshow(_to_hwc(data.images[idx[r]]))
        axes[r, 0].text(-0.1, 0.5, name, transform=axes[r, 0].transAxes, ha="right", va="center")
        for c in range(n):
            axes[r, c + 1].imshow(_to_hwc(views[r, c]))
        for ax in axes[r]:
            ax.axis("off")
    axes[0, 0].set_title("original")
    for c in range(n):
        axes[0, c + 1].set_title(f"augmented {c + 1}")
    fig.tight_layout()
    return fig


def plot_history(history: dict | list, title: str | None = None):
    """Loss and accuracy per epoch for train, tune and validation; the best tune epoch is marked."""
    rows = history["epochs"] if isinstance(history, dict) else history
    best = history.get("best_epoch") if isinstance(history, dict) else None
    epochs = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for split, style in (("train", "-"), ("tune", "--"), ("validation", "-.")):
            ax.plot(epochs, [r[f"{split}_{metric}"] for r in rows], style, marker=".", label=split)
        if best:
            ax.axvline(best, color="grey", lw=0.8, ls=":", label=f"best tune epoch ({best})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[1].legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_roc(y_true: np.ndarray, probs: np.ndarray, classes, title: str = "ROC (one-vs-rest)"):
    """One-vs-rest ROC curve per class with its AUC."""
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    for name, (fpr, tpr, auc) in roc_curves(y_true, probs, classes).items():
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8, label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_confusion(cm, classes, title: str = "", normalize: bool = False, ax=None):
    """A colour-coded confusion matrix with counts (or row-normalised rates) in each cell."""
    cm = np.asarray(cm, dtype=float)
    if normalize:
        cm = cm / np.clip(cm.sum(1, keepdims=True), 1, None)
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.4, 4.6))
    sns.heatmap(cm, annot=True, fmt=".2f" if normalize else ".0f", cmap="Blues", cbar=True, ax=ax,
                xticklabels=classes, yticklabels=classes, annot_kws={"size": 7}, square=True)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return fig or ax.figure


def plot_confusions(metrics_by_split: dict[str, dict], normalize: bool = False):
    """Side-by-side confusion matrices of several splits (train, tune, validation)."""
    n = len(metrics_by_split)
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.6), squeeze=False)
    for ax, (split, m) in zip(axes[0], metrics_by_split.items()):
        kind = "row-normalised" if normalize else "counts"
        plot_confusion(m["confusion_matrix"], m["classes"], f"{split} ({kind}, n={m['n']})", normalize, ax)
    fig.tight_layout()
    return fig
