"""Shared fixtures: a tiny synthetic ImageFolder with awkward files, and the real sample."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

PROJ_ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("FER_DATA", PROJ_ROOT.parent / "shared" / "data" / "affectnet7"))


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Decoded-image caches go to a temporary folder, never to ~/.cache or the data folder."""
    old = os.environ.get("FER_CACHE")
    os.environ["FER_CACHE"] = str(tmp_path_factory.mktemp("fer-cache"))
    os.environ.setdefault("MPLBACKEND", "Agg")
    yield
    if old is None:
        os.environ.pop("FER_CACHE", None)
    else:
        os.environ["FER_CACHE"] = old


def _image(rng, size: int, label: int) -> np.ndarray:
    """A random RGB image whose mean colour depends on the class, so that it can be learned."""
    base = np.zeros((size, size, 3), np.float32)
    base[..., label % 3] = 160
    return np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)


def make_split(root: Path, classes, per_class: int, size: int = 32, seed: int = 0, awkward: bool = False):
    """One split folder: JPEG and PNG, in RGB, L, RGBA and CMYK (and a corrupt file, a .DS_Store)."""
    rng = np.random.default_rng(seed)
    modes = ["RGB", "L", "RGBA", "CMYK"]
    for c, name in enumerate(classes):
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            im = Image.fromarray(_image(rng, size, c)).convert(modes[i % len(modes)])
            ext = "png" if im.mode in ("RGBA", "L") else "jpg"
            im.save(d / f"{name}_{i}.{ext}")
    if awkward:
        (root / classes[0] / "broken.jpg").write_bytes(b"not really a jpeg")
        (root / classes[0] / ".DS_Store").write_bytes(b"\x00\x01")
        (root / classes[-1] / "notes.txt").write_text("hello")
    return root


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    """<root>/train and <root>/validation with 3 classes of 32x32 images and a few bad files."""
    classes = ["angry", "happy", "sad"]
    make_split(tmp_path / "ds" / "train", classes, per_class=12, seed=0, awkward=True)
    make_split(tmp_path / "ds" / "validation", classes, per_class=4, seed=1)
    return tmp_path / "ds"


@pytest.fixture
def real_data() -> Path:
    if not (REAL_DATA / "train").is_dir():
        pytest.skip(f"real sample not found at {REAL_DATA} (set FER_DATA)")
    return REAL_DATA
