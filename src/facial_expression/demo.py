"""A small dataset shaped like the course's AffectNet subset, generated: for `fer notebooks --demo`, the hand-in's
smoke rerun where no dataset is at hand, and the tests.

8 classes with `contempt`, `train/` and `validation/`, face-sized crops of 96x96 and 224x224 in JPEG and PNG, a few
of them grayscale. The images are synthetic (a class-dependent colour and noise, so that a model can learn
something) unless `faces_from` names a dataset with class folders whose faces are used instead (resized).
Nothing learned from it means anything.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

COURSE_CLASSES = ("angry", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise")
# the folder of a `faces_from` dataset that stands in for each course class (one without contempt: neutral faces)
FACE_FOLDER = {"angry": "angry", "contempt": "neutral", "disgust": "disgust", "fear": "fear", "happy": "happy",
               "neutral": "neutral", "sad": "sad", "surprise": "surprise"}


def _faces(split: str, name: str, n: int, rng, faces_from: Path | None) -> list[Image.Image]:
    """`n` faces of `faces_from`'s matching class, or synthetic ones."""
    folder = Path(faces_from) / ("train" if split == "train" else "validation") / FACE_FOLDER[name] \
        if faces_from else None
    files = sorted(p for p in folder.glob("*") if not p.name.startswith("ffhq")) if folder and folder.is_dir() else []
    if len(files) >= 2 * n:  # contempt and neutral draw from the same folder: keep their files apart
        start = n if name == "neutral" else 0
        return [Image.open(f).convert("RGB") for f in files[start:start + n]]
    c = COURSE_CLASSES.index(name)
    base = np.zeros((48, 48, 3), np.float32)
    base[..., c % 3] = 60 + 25 * c
    return [Image.fromarray(np.clip(base + rng.normal(0, 30, base.shape), 0, 255).astype(np.uint8))
            for _ in range(n)]


def make_course_dataset(root: str | Path, per_class: int = 24, val_per_class: int = 6, seed: int = 0,
                        faces_from: str | Path | None = None) -> Path:
    """Write <root>/train/<class>/ and <root>/validation/<class>/ for the 8 course classes and return root."""
    root, rng = Path(root), np.random.default_rng(seed)
    for split, n in (("train", per_class), ("validation", val_per_class)):
        for name in COURSE_CLASSES:
            out = root / split / name
            out.mkdir(parents=True, exist_ok=True)
            for i, face in enumerate(_faces(split, name, n, rng, faces_from)):
                size = 224 if i % 3 == 0 else 96
                im = face.resize((size, size), Image.BILINEAR)
                if i % 5 == 4:
                    im = im.convert("L")  # a few grayscale crops, as in the real set
                ext = "png" if i % 2 else "jpg"
                im.save(out / f"{split}_{name}_{i:04d}.{ext}")
    return root
