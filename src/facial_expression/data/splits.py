"""The three splits (train, tune carved from train, validation) and their statistics."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass

import pandas as pd
from sklearn.model_selection import train_test_split

from .cache import ImageSet, load_folder
from .folders import DatasetLayout, resolve_layout


@dataclass
class Splits:
    """train and tune (both from train/) and validation (only ever evaluated)."""

    layout: DatasetLayout
    train: ImageSet
    tune: ImageSet
    validation: ImageSet

    @property
    def classes(self) -> tuple[str, ...]:
        return self.layout.classes

    def items(self):
        return [("train", self.train), ("tune", self.tune), ("validation", self.validation)]


def split_train_tune(data: ImageSet, fraction: float = 0.1, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """A stratified, seeded tune split carved from train: it selects checkpoints, never validation/."""
    if not 0 < fraction < 1:
        raise ValueError(f"tune fraction must be in (0, 1), got {fraction}")
    index = list(range(len(data)))
    train_idx, tune_idx = train_test_split(index, test_size=fraction, random_state=seed,
                                           stratify=data.labels.numpy())
    return data.subset(sorted(train_idx)), data.subset(sorted(tune_idx))


def load_splits(root: str | os.PathLike | None, size: int, tune_fraction: float = 0.1, seed: int = 0,
                progress: bool = True) -> Splits:
    """Check the layout, decode both folders at `size`, and carve the tune split."""
    layout = resolve_layout(root)
    full_train = load_folder(layout.train_dir, size, layout.classes, progress=progress)
    validation = load_folder(layout.eval_dir, size, layout.classes, progress=progress)
    train, tune = split_train_tune(full_train, tune_fraction, seed)
    return Splits(layout, train, tune, validation)


def split_statistics(splits: Splits) -> dict:
    """Images per class per split, totals, and the original image sizes and colour modes seen."""
    per_class = {name: s.counts() for name, s in splits.items()}
    sizes, modes = Counter(), Counter()
    for _, s in splits.items():
        sizes.update(f"{w}x{h}" for w, h in s.orig_sizes)
        modes.update(s.modes)
    return {
        "root": str(splits.layout.root),
        "classes": list(splits.classes),
        "per_class": per_class,
        "totals": {name: len(s) for name, s in splits.items()},
        "image_sizes": dict(sizes.most_common()),
        "colour_modes": dict(modes.most_common()),
    }


def statistics_table(stats: dict) -> pd.DataFrame:
    """Split statistics as a class x split table with a total row and column."""
    df = pd.DataFrame(stats["per_class"]).loc[stats["classes"]]
    df.loc["total"] = df.sum()
    df["all"] = df.sum(axis=1)
    return df
