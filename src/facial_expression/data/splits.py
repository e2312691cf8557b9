"""The splits (train, tune carved from train, validation, and test if the dataset has one) and their statistics."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from ..errors import ConfigError
from .cache import ImageSet, load_folder
from .folders import DatasetLayout, find_data_root, folders_for, resolve_eval_folder, resolve_layout


@dataclass
class Splits:
    """train and tune (both from train/), validation and optional test (only ever evaluated)."""

    layout: DatasetLayout
    train: ImageSet
    tune: ImageSet
    validation: ImageSet
    test: ImageSet | None = None

    @property
    def classes(self) -> tuple[str, ...]:
        return self.layout.classes

    def items(self):
        """(name, ImageSet) pairs: train, tune, validation, then test when the dataset has one."""
        pairs = [("train", self.train), ("tune", self.tune), ("validation", self.validation)]
        return pairs + [("test", self.test)] if self.test is not None else pairs


def split_train_tune(data: ImageSet, fraction: float = 0.1, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """A stratified, seeded tune split carved from train: it selects checkpoints, never validation/."""
    if not 0 < fraction < 1:
        raise ConfigError(f"tune fraction must be in (0, 1), got {fraction}")
    index = list(range(len(data)))
    train_idx, tune_idx = train_test_split(index, test_size=fraction, random_state=seed,
                                           stratify=data.labels.numpy())
    return data.subset(sorted(train_idx)), data.subset(sorted(tune_idx))


def load_splits(root: str | os.PathLike | None, size: int, tune_fraction: float = 0.1, seed: int = 0,
                progress: bool = True, classes=None) -> Splits:
    """Check the layout, decode its split folders at `size`, and carve the tune split.

    `classes` names numeric class folders (a list, "a,b,...", or "affectnet"); see `resolve_layout`.
    """
    layout = resolve_layout(root, classes)

    def load(split_dir):
        return load_folder(split_dir, size, layout.classes, progress=progress, folders=layout.folders)

    train, tune = split_train_tune(load(layout.train_dir), tune_fraction, seed)
    test = load(layout.test_dir) if layout.test_dir is not None else None
    return Splits(layout, train, tune, load(layout.eval_dir), test)


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


def load_for_checkpoint(data, size: int, ckpt: dict, progress: bool = True) -> ImageSet:
    """A split folder, or a dataset's validation split, labelled in a checkpoint's class order (numeric
    folders named through the class map the checkpoint was trained with)."""
    return load_split_for_checkpoint(resolve_eval_folder(data if data is not None else find_data_root(None)),
                                     size, ckpt, progress)


def load_split_for_checkpoint(folder: Path, size: int, ckpt: dict, progress: bool = True) -> ImageSet:
    """`load_for_checkpoint` of a folder that `resolve_eval_folder` has already resolved."""
    classes = tuple(ckpt["classes"])
    folders = folders_for(folder, classes, ckpt.get("config", {}).get("classes"))
    return load_folder(folder, size, classes, progress=progress, folders=folders)
