"""Decode every image once into a uint8 tensor at the model's input size, cached in memory and on disk.

Re-decoding JPEGs with PIL every epoch is what makes the usual ImageFolder pipeline slow. Here a split is
decoded once into an N x 3 x S x S uint8 array; augmentation then works on tensors. Above a size
threshold the array is a memory-mapped .npy file, so the cache does not cap the dataset at RAM.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..config import cache_dir
from ..errors import DataError
from .folders import class_folders, list_files

MMAP_THRESHOLD_BYTES = int(os.environ.get("FER_MMAP_THRESHOLD", 2 * 2**30))


class SkippedFilesWarning(UserWarning):
    """Some files in a class folder were not images or could not be decoded."""


@dataclass
class ImageSet:
    """Decoded images of one split: uint8 N x 3 x S x S, labels, and where each came from."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    paths: list[str]
    orig_sizes: list[tuple[int, int]] = field(default_factory=list)
    modes: list[str] = field(default_factory=list)
    memory_mapped: bool = False  # images read through a memory map of the on-disk cache

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index) -> "ImageSet":
        """The samples at `index` (a sequence of ints), as a new ImageSet."""
        index = torch.as_tensor(index, dtype=torch.long)
        pick = index.tolist()
        return ImageSet(
            images=self.images[index], labels=self.labels[index], classes=self.classes,
            paths=[self.paths[i] for i in pick],
            orig_sizes=[self.orig_sizes[i] for i in pick] if self.orig_sizes else [],
            modes=[self.modes[i] for i in pick] if self.modes else [],
        )

    def counts(self) -> dict[str, int]:
        """Images per class, in class order."""
        c = Counter(self.labels.tolist())
        return {name: c.get(i, 0) for i, name in enumerate(self.classes)}


def decode_image(path: Path, size: int) -> tuple[np.ndarray, tuple[int, int], str]:
    """One file as a 3 x size x size uint8 array (any mode converted to RGB), its size and its mode."""
    with Image.open(path) as im:
        im.load()  # raises on truncated or corrupt data
        orig, mode = im.size, im.mode
        rgb = im.convert("RGB").resize((size, size), Image.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1), orig, mode


def _cache_key(files: list[tuple[Path, int]], size: int) -> str:
    h = hashlib.sha1(f"v1|{size}".encode())
    for f, label in files:
        st = f.stat()
        h.update(f"{f.resolve()}|{label}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def _warn_skipped(skipped: list[tuple[Path, str]]) -> None:
    if skipped:
        lines = "\n".join(f"  {p}: {why}" for p, why in skipped)
        warnings.warn(f"skipped {len(skipped)} file(s):\n{lines}", SkippedFilesWarning, stacklevel=3)


def load_folder(split_dir: str | os.PathLike, size: int, classes: tuple[str, ...] | None = None,
                use_disk_cache: bool = True, progress: bool = True,
                folders: tuple[str, ...] | None = None) -> ImageSet:
    """Decode a folder of class sub-folders at `size` x `size`.

    `classes` fixes the label order (for a checkpoint): the folder may hold a subset of them, and a
    folder with an unknown class name is an error. `folders` are the folder names aligned with `classes`
    (e.g. 0..7 for named AffectNet classes; default: the class names). Unreadable and non-image files are
    skipped with a warning that names them.
    """
    split_dir = Path(split_dir)
    found = class_folders(split_dir)
    if not found:
        raise DataError(f"{split_dir} has no class sub-folders")
    if classes is None:
        classes = tuple(found)
    folders = tuple(classes) if folders is None else tuple(folders)
    if len(folders) != len(classes):
        raise DataError(f"{len(folders)} folder names for {len(classes)} classes ({', '.join(folders)} vs "
                        f"{', '.join(classes)})")
    unknown = sorted(set(found) - set(folders))
    if unknown:
        known = ", ".join(classes) if folders == tuple(classes) else \
            ", ".join(f"{f}={c}" for f, c in zip(folders, classes))
        raise DataError(f"{split_dir} has class folder(s) the model does not know: {', '.join(unknown)} "
                        f"(model classes: {known})")
    files: list[tuple[Path, int]] = []
    skipped: list[tuple[Path, str]] = []
    for name in found:
        images, others = list_files(split_dir / name)
        files += [(f, folders.index(name)) for f in images]
        skipped += [(f, "not an image file") for f in others]
    if not files:
        raise DataError(f"{split_dir} holds no images")

    key = _cache_key(files, size)
    npy, meta_path = cache_dir() / f"{key}.npy", cache_dir() / f"{key}.json"
    if use_disk_cache and npy.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        n = meta["count"]
        arr = np.load(npy, mmap_mode="c" if npy.stat().st_size > MMAP_THRESHOLD_BYTES else None)[:n]
        skipped += [(Path(p), why) for p, why in meta["skipped"]]
        _warn_skipped(skipped)
        mapped = isinstance(arr, np.memmap)
        return ImageSet(torch.from_numpy(arr if mapped else np.ascontiguousarray(arr)),
                        torch.tensor(meta["labels"], dtype=torch.long), tuple(classes), meta["paths"],
                        [tuple(s) for s in meta["sizes"]], meta["modes"], memory_mapped=mapped)

    shape = (len(files), 3, size, size)
    big = np.prod(shape) > MMAP_THRESHOLD_BYTES
    if use_disk_cache:
        cache_dir().mkdir(parents=True, exist_ok=True)
    if big and use_disk_cache:
        tmp = npy.with_suffix(".tmp.npy")
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
    else:
        arr = np.empty(shape, dtype=np.uint8)
    labels, paths, sizes, modes, bad = [], [], [], [], []
    n = 0
    for f, label in tqdm(files, desc=f"decode {split_dir.name}", disable=not progress, leave=False):
        try:
            arr[n], orig, mode = decode_image(f, size)
        except Exception as e:  # PIL raises many types for corrupt files
            bad.append((f, f"unreadable ({type(e).__name__})"))
            continue
        labels.append(label)
        paths.append(str(f))
        sizes.append(orig)
        modes.append(mode)
        n += 1
    skipped += bad
    if n == 0:
        raise DataError(f"no image in {split_dir} could be decoded")
    if use_disk_cache:
        if big:
            arr.flush()
            del arr
            os.replace(tmp, npy)
            arr = np.load(npy, mmap_mode="c")  # copy-on-write: writable view, file untouched
        else:
            np.save(npy, arr)
        meta_path.write_text(json.dumps({"count": n, "labels": labels, "paths": paths, "sizes": sizes,
                                         "modes": modes, "skipped": [(str(p), w) for p, w in bad]}))
    _warn_skipped(skipped)
    data = arr[:n]
    mapped = isinstance(data, np.memmap)
    return ImageSet(torch.from_numpy(data if mapped else np.ascontiguousarray(data)),
                    torch.tensor(labels, dtype=torch.long), tuple(classes), paths, sizes, modes, memory_mapped=mapped)
