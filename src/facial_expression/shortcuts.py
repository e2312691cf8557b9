"""Shortcut checks: does a model use cues that are not the expression?

A "shortcut" is a feature that predicts the label in our data without being the facial expression:
the image border or background (where the Grad-CAM mass lies, per face region) or the photo source
(FFHQ portraits are mostly `happy` and `neutral` in our sample, so photo style alone could predict
those two classes). These checks measure where the maps lie and how predictions differ between photo
sources; they do not prove a shortcut, and a region's share is only meaningful next to its area share
(what a uniform map gives).
"""

from __future__ import annotations

import numpy as np

from .cam import compute_cams
from .data import ImageSet, to_unit_float
from .data.fingerprint import is_ffhq
from .evaluation import predict

# Regions of an aligned face crop, as fractions of its side: the outer ring, and two horizontal bands
BORDER_FRACTION = 1 / 8
EYES_BAND = (0.25, 0.5)
MOUTH_BAND = (0.6, 0.85)


def region_shares(cams: np.ndarray) -> dict[str, float]:
    """Mean share of CAM mass (over N x H x W maps) in the border ring, the eyes band and the mouth band.

    The border is the outer BORDER_FRACTION ring; the bands span EYES_BAND and MOUTH_BAND of the height.
    A uniform map gives each region its area share (border 43.75%, each band 25%).
    """
    n, h, w = cams.shape
    total = cams.reshape(n, -1).sum(1) + 1e-8
    b = max(1, int(h * BORDER_FRACTION))
    inner = cams[:, b:h - b, b:w - b].reshape(n, -1).sum(1)
    eyes = cams[:, int(EYES_BAND[0] * h):int(EYES_BAND[1] * h), :].reshape(n, -1).sum(1)
    mouth = cams[:, int(MOUTH_BAND[0] * h):int(MOUTH_BAND[1] * h), :].reshape(n, -1).sum(1)
    return {"border": float(np.mean(1 - inner / total)), "eyes_band": float(np.mean(eyes / total)),
            "mouth_band": float(np.mean(mouth / total))}


def ffhq_mask(paths: list[str]) -> np.ndarray:
    """A boolean array: which of `paths` are FFHQ portraits (files named ffhq_*)."""
    return np.array([is_ffhq(p) for p in paths], dtype=bool)


def photo_style_check(paths: list[str], y_true: np.ndarray, y_pred: np.ndarray, classes):
    """Per class: accuracy on FFHQ portraits (files named ffhq_*) and on the other images.

    In our sample `happy` and `neutral` are mostly FFHQ photos; how often a non-happy/neutral face is
    predicted happy or neutral when it *is* an FFHQ photo shows whether photo style is a shortcut.
    """
    import pandas as pd
    ffhq = ffhq_mask(paths)
    rows = []
    for c, name in enumerate(classes):
        sel = y_true == c
        row = {"class": name, "ffhq_images": int((sel & ffhq).sum()), "other_images": int((sel & ~ffhq).sum())}
        for tag, mask in (("ffhq", sel & ffhq), ("other", sel & ~ffhq)):
            row[f"accuracy_{tag}"] = float((y_pred[mask] == c).mean()) if mask.any() else float("nan")
        rows.append(row)
    return pd.DataFrame(rows).set_index("class")


def photo_style_summary(paths: list[str], y_true: np.ndarray, y_pred: np.ndarray, classes) -> dict:
    """How often faces of the five other classes are predicted happy or neutral, FFHQ photos vs the rest."""
    ffhq = ffhq_mask(paths)
    hn = [list(classes).index(c) for c in ("happy", "neutral") if c in classes]
    other = ~np.isin(y_true, hn)
    out = {}
    for tag, sel in (("ffhq", ffhq & other), ("nonffhq", ~ffhq & other)):
        out[f"{tag}_other_classes"] = int(sel.sum())
        out[f"{tag}_other_predicted_happy_neutral"] = float(np.isin(y_pred[sel], hn).mean()) if sel.any() else None
    return out


def shortcut_summary(model, data: ImageSet, max_batches: int | None = None) -> dict:
    """Where the predicted-class maps of every face lie (border, eyes, mouth), and the photo-style check
    where the data has FFHQ files."""
    probs, labels = predict(model, data, max_batches=max_batches)
    preds = probs.argmax(1)
    cams = compute_cams(model, to_unit_float(data.images[:len(labels)]), preds.tolist())
    paths = data.paths[:len(labels)]
    # the photo-style check only where the data has a second photo source (the sample's ffhq_* files)
    style = photo_style_summary(paths, labels, preds, data.classes) if ffhq_mask(data.paths).any() else {}
    return {**region_shares(cams), **style,
            "accuracy_fp32": float((preds == labels).mean())}  # fp32 here; metrics.json used the run's autocast
