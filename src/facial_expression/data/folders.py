"""Finding a dataset and listing its class folders, with clear errors for bad layouts."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from ..config import DEFAULT_DATA_DIR
from ..errors import DataError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
TRAIN_NAMES = ("train",)
EVAL_NAMES = ("validation", "val", "test")


@dataclass(frozen=True)
class DatasetLayout:
    """A dataset root with a train split and an evaluation split, and its class names."""

    root: Path
    train_dir: Path
    eval_dir: Path
    classes: tuple[str, ...]


def _candidate_roots() -> list[Path]:
    """Usual places on Kaggle and Colab, searched only when nothing was given."""
    found = []
    for pattern in ("/kaggle/input/*", "/kaggle/input/*/*", "/content/drive/MyDrive/*",
                    "/content/drive/MyDrive/*/*", "/content/*"):
        found += [Path(p) for p in sorted(glob.glob(pattern))]
    return found


def _is_root(path: Path) -> bool:
    return path.is_dir() and (path / "train").is_dir() and any((path / n).is_dir() for n in EVAL_NAMES)


def find_data_root(path: str | os.PathLike | None = None) -> Path:
    """The dataset root: `path`, else $FER_DATA, else data/affectnet, else a Kaggle/Colab location."""
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_dir():
            raise DataError(f"dataset folder {p} does not exist")
        return p
    if os.environ.get("FER_DATA"):
        p = Path(os.environ["FER_DATA"]).expanduser()
        if not p.is_dir():
            raise DataError(f"FER_DATA points to {p}, which does not exist")
        return p
    if DEFAULT_DATA_DIR.is_dir():
        return DEFAULT_DATA_DIR
    for p in _candidate_roots():
        if _is_root(p):
            return p
    raise DataError(
        f"no dataset found: pass a path, set FER_DATA, or put it at {DEFAULT_DATA_DIR} "
        "(layout <root>/train/<class>/*, <root>/validation/<class>/*; see data/README.md)"
    )


def class_folders(split_dir: Path) -> list[str]:
    """Sorted names of the sub-folders of a split (hidden folders ignored)."""
    return sorted(d.name for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith("."))


def list_files(class_dir: Path) -> tuple[list[Path], list[Path]]:
    """(candidate image files, skipped non-image files) of one class folder, sorted."""
    images, skipped = [], []
    for f in sorted(class_dir.iterdir()):
        if not f.is_file():
            continue
        if f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith("."):
            images.append(f)
        else:
            skipped.append(f)
    return images, skipped


def resolve_layout(root: str | os.PathLike | None = None) -> DatasetLayout:
    """Check a dataset root before any work: both splits, the same non-empty class folders."""
    root = find_data_root(root)
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise DataError(f"{root} has no train/ folder (expected <root>/train/<class>/*)")
    eval_dir = next((root / n for n in EVAL_NAMES if (root / n).is_dir()), None)
    if eval_dir is None:
        raise DataError(f"{root} has no validation/, val/ or test/ folder next to train/")
    train_classes, eval_classes = class_folders(train_dir), class_folders(eval_dir)
    if not train_classes:
        raise DataError(f"{train_dir} is empty: it needs one sub-folder per class")
    if not eval_classes:
        raise DataError(f"{eval_dir} is empty: it needs one sub-folder per class")
    if train_classes != eval_classes:
        only_train = sorted(set(train_classes) - set(eval_classes))
        only_eval = sorted(set(eval_classes) - set(train_classes))
        parts = []
        if only_train:
            parts.append(f"missing from {eval_dir.name}/: {', '.join(only_train)}")
        if only_eval:
            parts.append(f"missing from {train_dir.name}/: {', '.join(only_eval)}")
        raise DataError(f"class folders differ between splits in {root} ({'; '.join(parts)})")
    for split_dir in (train_dir, eval_dir):
        for c in train_classes:
            if not list_files(split_dir / c)[0]:
                raise DataError(f"class folder {split_dir / c} holds no images")
    return DatasetLayout(root=root, train_dir=train_dir, eval_dir=eval_dir, classes=tuple(train_classes))


def resolve_eval_folder(path: str | os.PathLike) -> Path:
    """A folder of class sub-folders to evaluate: a split itself, or a root whose validation split is used."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise DataError(f"folder {p} does not exist")
    if _is_root(p):
        return resolve_layout(p).eval_dir
    if not class_folders(p):
        raise DataError(f"{p} has no class sub-folders to evaluate")
    return p
