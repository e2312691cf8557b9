"""Grad-CAM (pytorch-grad-cam) maps, and the figures that show them.

The shortcut checks built on these maps (face regions, photo style) are in `shortcuts.py`.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from .checkpoint import load_checkpoint
from .data import ImageSet, load_for_checkpoint, to_unit_float
from .evaluation import predict, save_json
from .plots import TEXT_WIDTH, save_figure, styled
from .runtime import pick_device


# Regions of an aligned face crop, as fractions of its side: the outer ring, and two horizontal bands
BORDER_FRACTION = 1 / 8
EYES_BAND = (0.25, 0.5)
MOUTH_BAND = (0.6, 0.85)


def region_shares(cams: np.ndarray, spread: bool = False) -> dict[str, float]:
    """Mean share of CAM mass (over N x H x W maps) in the border ring, the eyes band and the mouth band; with
    `spread`, the standard error of each mean instead.

    The border is the outer BORDER_FRACTION ring; the bands span EYES_BAND and MOUTH_BAND of the height.
    A uniform map gives each region its area share (border 43.75%, each band 25%).
    """
    n, h, w = cams.shape
    total = cams.reshape(n, -1).sum(1) + 1e-8
    b = max(1, int(h * BORDER_FRACTION))
    inner = cams[:, b:h - b, b:w - b].reshape(n, -1).sum(1)
    eyes = cams[:, int(EYES_BAND[0] * h):int(EYES_BAND[1] * h), :].reshape(n, -1).sum(1)
    mouth = cams[:, int(MOUTH_BAND[0] * h):int(MOUTH_BAND[1] * h), :].reshape(n, -1).sum(1)
    shares = {"border": 1 - inner / total, "eyes_band": eyes / total, "mouth_band": mouth / total}
    if spread:
        return {k: float(v.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan") for k, v in shares.items()}
    return {k: float(v.mean()) for k, v in shares.items()}


def select_samples(y_true: np.ndarray, probs: np.ndarray, per_class: int = 2) -> list[dict]:
    """Per true class, the `per_class` most confident right and the `per_class` most confident wrong.

    Deterministic: ties are broken by index (a stable sort).
    """
    y_pred, conf = probs.argmax(1), probs.max(1)
    picks = []
    for c in range(probs.shape[1]):
        for correct in (True, False):
            idx = np.flatnonzero((y_true == c) & ((y_pred == c) == correct))
            idx = idx[np.argsort(-conf[idx], kind="stable")][:per_class]
            picks += [{"index": int(i), "true": int(c), "pred": int(y_pred[i]), "confidence": float(conf[i]),
                       "correct": correct} for i in idx]
    return picks


def compute_cams(model: torch.nn.Module, images: torch.Tensor, targets: list[int],
                 batch_size: int = 32, cam: GradCAM | None = None) -> np.ndarray:
    """Grad-CAM maps (N x H x W, each scaled to [0, 1]) of float images for the given target classes.

    Without `cam`, one GradCAM object is built for all the images and used as a context manager, so its
    hooks are always removed. A caller that needs maps in several calls (one per photo, say) can open
    `with GradCAM(model=model, target_layers=[model.cam_layer]) as cam:` itself and pass `cam`. The
    input is copied, never modified.
    """
    device = next(model.parameters()).device
    was_training = model.training  # read first: building a GradCAM switches the model to eval
    model.eval()
    maps = []
    with GradCAM(model=model, target_layers=[model.cam_layer]) if cam is None else nullcontext(cam) as cam:
        for start in range(0, len(images), batch_size):
            # requires_grad on a copy: with frozen features the target layer would otherwise get no gradient
            x = images[start:start + batch_size].detach().clone().float().to(device).requires_grad_(True)
            t = [ClassifierOutputTarget(int(k)) for k in targets[start:start + batch_size]]
            maps.append(cam(input_tensor=x, targets=t))
    model.train(was_training)
    return np.concatenate(maps) if maps else np.zeros((0,) + tuple(images.shape[-2:]), np.float32)


def overlay(image: torch.Tensor, mask: np.ndarray, weight: float = 0.55) -> np.ndarray:
    """A CAM heat map laid over a [0, 1] image, as uint8 RGB."""
    rgb = image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return show_cam_on_image(rgb, mask, use_rgb=True, image_weight=weight)


MAX_HEIGHT = 8.3  # inches: a grid and its caption fit the report's page (8 classes, a row a class)


@styled
def cam_grid(picks: list[dict], images: torch.Tensor, cams_pred: np.ndarray, cams_true: np.ndarray,
             classes, correct: bool, title: str | None = None):
    """One row per class: each face under its confidence, then its CAM for the predicted class and (wrong ones)
    for the true class, each under its class name (short titles: long class names would run into each other)."""
    rows = [[i for i, p in enumerate(picks) if p["true"] == c and p["correct"] == correct]
            for c in range(len(classes))]
    per_row = max((len(r) for r in rows), default=0)
    panels = 2 if correct else 3
    cols = max(1, per_row * panels)
    side = min(1.0, (TEXT_WIDTH - 0.8) / cols, MAX_HEIGHT / len(classes) - 0.3)  # 0.3 in: each row's labels
    fig, axes = plt.subplots(len(classes), cols, figsize=(side * cols + 0.8, (side + 0.3) * len(classes)),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, row in enumerate(rows):
        axes[r, 0].text(-0.08, 0.5, classes[r], transform=axes[r, 0].transAxes, ha="right", va="center")
        for k, i in enumerate(row):
            p, img = picks[i], images[i]
            cells = [(img.permute(1, 2, 0).numpy(), f"{p['confidence']:.2f}"),
                     (overlay(img, cams_pred[i]), classes[p["pred"]])]
            if not correct:
                cells.append((overlay(img, cams_true[i]), classes[p["true"]]))
            for j, (pic, label) in enumerate(cells):
                ax = axes[r, k * panels + j]
                ax.imshow(pic)
                ax.set_title(label, pad=2)
    legend = "above a face: the model's confidence; above a map: the class it explains"
    fig.suptitle(f"{title}\n{legend}" if title else legend)
    top = 1 - 0.45 / fig.get_figheight()  # room for the title above the first row's labels
    fig.tight_layout(pad=0.2, w_pad=0.1, h_pad=0.5, rect=(0, 0, 1, top))
    return fig


def cam_analysis(model, data: ImageSet, per_class: int = 2, max_batches: int | None = None) -> dict:
    """Predict on `data`, pick right and wrong faces per class, and compute their CAMs."""
    probs, labels = predict(model, data, max_batches=max_batches)
    picks = select_samples(labels, probs, per_class)
    index = [p["index"] for p in picks]
    images = to_unit_float(data.images[index]) if index else torch.zeros(0, 3, 1, 1)
    # one GradCAM for both targets: the images twice, first for the predicted then for the true class
    cams = compute_cams(model, torch.cat([images, images]), [p["pred"] for p in picks] + [p["true"] for p in picks])
    cams_pred, cams_true = cams[:len(picks)], cams[len(picks):]
    for p, cam, cam_true in zip(picks, cams_pred, cams_true):
        p["path"] = data.paths[p["index"]]
        p["regions"] = region_shares(cam[None])  # where the map of the predicted class lies
        if not p["correct"]:
            p["regions_true"] = region_shares(cam_true[None])  # and that of the class it should have been
    return {"picks": picks, "images": images, "cams_pred": cams_pred, "cams_true": cams_true,
            "classes": list(data.classes)}


def save_cam_figures(analysis: dict, out_dir: str | Path, label: str = "") -> list[Path]:
    """Write cam_correct and cam_wrong grids (PNG and PDF) and cam_samples.json."""
    out_dir = Path(out_dir)
    paths = []
    for correct, name in ((True, "cam_correct"), (False, "cam_wrong")):
        kind = "correctly" if correct else "wrongly"
        fig = cam_grid(analysis["picks"], analysis["images"], analysis["cams_pred"], analysis["cams_true"],
                       analysis["classes"], correct, f"Grad-CAM{label}: {kind} classified validation faces")
        paths += save_figure(fig, out_dir / name, photo=True)[::2]
        plt.close(fig)
    paths.append(save_json(analysis["picks"], out_dir / "cam_samples.json"))
    return paths


def cam_report(checkpoint, data, out_dir, per_class: int = 2, max_batches: int | None = None,
               device: str = "auto") -> list[Path]:
    """The `fer cam` command: CAM grids of a checkpoint on a dataset's validation split."""
    model, ckpt = load_checkpoint(checkpoint, pick_device(device))
    images = load_for_checkpoint(data, model.input_size, ckpt)
    return save_cam_figures(cam_analysis(model, images, per_class, max_batches), out_dir)


@styled
def comparison_grid(models: dict, data: ImageSet, picks: list[dict], title: str | None = None, groups: int = 1):
    """The same faces under several models: each face, then per model its Grad-CAM for the class that
    model predicts. `picks` (from select_samples) fixes the faces, usually chosen by the first model;
    `groups` side-by-side blocks of faces (e.g. 2: a correct and a wrong face per class and row)."""
    index = [p["index"] for p in picks]
    images = to_unit_float(data.images[index])
    columns = []
    for name, model in models.items():
        probs, _ = predict(model, data.subset(index))
        columns.append((name, probs, compute_cams(model, images, probs.argmax(1).tolist())))
    width, rows = 1 + len(models), -(-len(picks) // groups)
    side = min(0.78, TEXT_WIDTH / (width * groups) - 0.1)  # seven rows of faces still fit one page
    fig, axes = plt.subplots(rows, width * groups, figsize=(side * width * groups, (side + 0.5) * rows),
                             squeeze=False)
    for i, p in enumerate(picks):
        r, c0 = i // groups, (i % groups) * width
        axes[r, c0].imshow(images[i].permute(1, 2, 0).numpy())
        axes[r, c0].set_title(f"true\n{data.classes[p['true']]}\n", pad=2)
        for j, (name, probs, cams) in enumerate(columns, start=1):
            k = int(probs[i].argmax())
            axes[r, c0 + j].imshow(overlay(images[i], cams[i]))
            mark = "✓" if k == p["true"] else "✗"
            axes[r, c0 + j].set_title(f"{name}\n{data.classes[k]}\n{probs[i, k]:.2f} {mark}", pad=2)
    for ax in axes.flat:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    top = 1 - 0.3 / fig.get_figheight() if title else 1
    fig.tight_layout(pad=0.2, w_pad=0.8, h_pad=0.4, rect=(0, 0, 1, top))
    return fig
