"""Shortcut checks: does a model use cues that are not the expression?

A "shortcut" is a feature that predicts the label in our data without being the facial expression:
the image border or background (where the Grad-CAM mass lies, per face region) or the photo source
(FFHQ portraits are mostly `happy` and `neutral` in our sample, so photo style alone could predict
those two classes). These checks measure where the maps lie and how predictions differ between photo
sources; they do not prove a shortcut, and a region's share is only meaningful next to its area share
(what a uniform map gives).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .cam import comparison_grid, compute_cams, region_shares, select_samples
from .config import AREA, SE
from .data import ImageSet, to_unit_float
from .data.fingerprint import is_ffhq
from .evaluation import predict, save_json
from .plots import save_figure


def ffhq_mask(paths: list[str]) -> np.ndarray:
    """A boolean array: which of `paths` are FFHQ portraits (files named ffhq_*)."""
    return np.array([is_ffhq(p) for p in paths], dtype=bool)


def photo_style_check(paths: list[str], y_true: np.ndarray, y_pred: np.ndarray, classes):
    """Per class: accuracy on FFHQ portraits (files named ffhq_*) and on the other images.

    In our sample `happy` and `neutral` are mostly FFHQ photos; how often a non-happy/neutral face is
    predicted happy or neutral when it *is* an FFHQ photo shows whether photo style is a shortcut.
    """
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


@dataclass
class SplitMaps:
    """One model's predictions and predicted-class Grad-CAM maps over a split, computed once and then
    summarised per face region and per photo source."""

    probs: np.ndarray  # N x C
    labels: np.ndarray  # N
    cams: np.ndarray  # N x H x W
    paths: list[str]
    classes: list[str]

    @classmethod
    def compute(cls, model, data: ImageSet, max_batches: int | None = None) -> "SplitMaps":
        probs, labels = predict(model, data, max_batches=max_batches)
        cams = compute_cams(model, to_unit_float(data.images[:len(labels)]), probs.argmax(1).tolist())
        return cls(probs, labels, cams, list(data.paths[:len(labels)]), list(data.classes))

    @property
    def preds(self) -> np.ndarray:
        return self.probs.argmax(1)

    def region_table(self) -> pd.DataFrame:
        """Region shares per true class, over all faces, and of a uniform map (each region's area share)."""
        table = pd.DataFrame({c: region_shares(self.cams[self.labels == i]) for i, c in enumerate(self.classes)
                              if (self.labels == i).any()}).T
        table.loc["all"] = region_shares(self.cams)
        table.loc[SE] = region_shares(self.cams, spread=True)
        table.loc[AREA] = region_shares(np.ones((1,) + self.cams.shape[1:], np.float32))
        return table

    def has_second_source(self) -> bool:
        """Whether these files come from two photo sources (the sample's ffhq_* files)."""
        return bool(ffhq_mask(self.paths).any())

    def photo_style(self) -> tuple[pd.DataFrame, dict]:
        """The per-class photo-style table and its summary (`photo_style_check`, `photo_style_summary`)."""
        args = (self.paths, self.labels, self.preds, self.classes)
        return photo_style_check(*args), photo_style_summary(*args)

    def summary(self) -> dict:
        """Where the maps lie over all faces, and the photo-style summary where there is a second source."""
        return {**region_shares(self.cams), **(self.photo_style()[1] if self.has_second_source() else {})}

    def compare(self, model, other, name: str, data: ImageSet, out: str | Path,
                max_batches: int | None = None) -> tuple[Path, pd.DataFrame]:
        """`other` against `model` (whose maps these are): each class's most confident right and wrong face of
        `model`, with each model's Grad-CAM for the class it predicts (out/cam_comparison.jpg), and where both
        models' maps lie over the whole split (out/shortcuts.json, the table returned)."""
        picks = select_samples(self.labels, self.probs, per_class=1)
        picks.sort(key=lambda p: (p["true"], not p["correct"]))
        fig = comparison_grid({"plain": model, name: other}, data, picks, groups=2, title="Grad-CAM of the "
                              "predicted class, same validation faces (left: correct, right: wrong)")
        image = save_figure(fig, Path(out) / "cam_comparison", photo=True)[-1]
        plt.close(fig)
        table = pd.DataFrame({"plain": self.summary(), name: SplitMaps.compute(other, data, max_batches).summary()})
        save_json(table.to_dict(), Path(out) / "shortcuts.json")
        return image, table
