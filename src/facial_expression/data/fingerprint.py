"""A dataset's fingerprint: which data a run saw, so that runs on different data are never mixed.

Every run records it in config.json, metrics.json and its checkpoints. Anything that combines runs, or
evaluates a checkpoint on a dataset, compares fingerprints first and refuses (or flags) a mismatch.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

from ..errors import DataError
from .folders import DatasetLayout, list_files


def _split_dirs(layout: DatasetLayout) -> dict[str, Path]:
    dirs = {"train": layout.train_dir, "validation": layout.eval_dir}
    if getattr(layout, "test_dir", None) is not None:
        dirs["test"] = layout.test_dir
    return dirs


def is_ffhq(path: str | Path) -> bool:
    """Whether an image file is an FFHQ portrait (named ffhq_*): the development sample's second photo source."""
    return Path(path).name.lower().startswith("ffhq")


def dataset_fingerprint(layout: DatasetLayout, splits=None) -> dict:
    """Root, class names, files per split, a hash of the file list, and (with `splits`) counts and sizes.

    The hash covers split folder, class and file name of every image file, so it does not depend on the
    seed that carves the tune split, nor on where the dataset is mounted.
    """
    folders = getattr(layout, "folders", layout.classes)
    h, files, ffhq = hashlib.sha1(), {}, 0
    for split, split_dir in _split_dirs(layout).items():
        n = 0
        for folder, name in zip(folders, layout.classes):
            for f in list_files(split_dir / folder)[0]:
                h.update(f"{split}/{name}/{f.name}\n".encode())
                ffhq += is_ffhq(f)
                n += 1
        files[split] = n
    fp = {"root": str(layout.root), "name": layout.root.name, "classes": list(layout.classes),
          "files": files, "files_sha1": h.hexdigest()[:16], "ffhq_files": ffhq}
    if splits is not None:
        sizes = Counter(f"{w}x{h_}" for _, s in splits.items() for w, h_ in s.orig_sizes)
        fp["counts"] = {name: s.counts() for name, s in splits.items()}
        fp["image_sizes"] = dict(sizes.most_common(5))
    return fp


def describe(fp: dict | None) -> str:
    """One line for captions and logs: name, classes and images per split."""
    if not fp:
        return "unknown data (the run has no dataset fingerprint)"
    files = ", ".join(f"{n:,} {split}" for split, n in fp["files"].items())
    return f"{fp['name']} ({len(fp['classes'])} classes: {', '.join(fp['classes'])}; {files} images)"


def mismatch(a: dict | None, b: dict | None) -> str | None:
    """Why two fingerprints are not the same dataset, or None when they are (or both are unknown)."""
    if not a and not b:
        return None
    if not a or not b:
        return "one of the two has no dataset fingerprint, so its data cannot be checked"
    if list(a["classes"]) != list(b["classes"]):
        return f"classes differ ({', '.join(a['classes'])} vs {', '.join(b['classes'])})"
    if a["files_sha1"] != b["files_sha1"]:
        return f"the image files differ ({describe(a)} vs {describe(b)})"
    return None


def check_same_dataset(expected: dict | None, actual: dict | None, what: str) -> None:
    """Raise DataError with one line when `what` was made on other data than the dataset at hand."""
    why = mismatch(expected, actual)
    if why:
        raise DataError(f"{what} was trained on other data: {why}")


def run_fingerprint(run_dir: str | Path) -> dict | None:
    """The fingerprint a run recorded (metrics.json, else config.json), or None for older runs."""
    for name in ("metrics.json", "config.json"):
        path = Path(run_dir) / name
        if path.exists():
            fp = json.loads(path.read_text()).get("dataset")
            if fp:
                return fp
    return None
