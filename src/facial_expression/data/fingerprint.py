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
from ..runs import Run
from .folders import DatasetLayout, canonical_class, list_files


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
                h.update(f"{split}/{canonical_class(name)}/{f.name}\n".encode())  # `anger` is `angry`
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
    if [canonical_class(c) for c in a["classes"]] != [canonical_class(c) for c in b["classes"]]:
        return f"classes differ ({', '.join(a['classes'])} vs {', '.join(b['classes'])})"
    if a["files_sha1"] != b["files_sha1"]:
        return f"the image files differ ({describe(a)} vs {describe(b)})"
    return None


def check_same_dataset(expected: dict | None, actual: dict | None, what: str) -> None:
    """Raise DataError with one line when `what` was made on other data than the dataset at hand."""
    why = mismatch(expected, actual)
    if why:
        raise DataError(f"{what} was trained on other data: {why}")


def _stats_fingerprint(stats: dict) -> dict:
    """What P5_a's split statistics tell of their data where it saved no fingerprint: name and classes (their
    counts are after the tune split, which runs may carve differently)."""
    return {"name": Path(stats.get("root", "dataset")).name, "classes": list(stats["classes"]),
            "image_sizes": stats.get("image_sizes", {})}


def results_fingerprints(results: str | Path) -> dict[str, dict]:
    """The data behind every run of a results folder: run folder (relative, e.g. 'light_vgg' or
    'ablation/screen10/plain_seed0') -> the fingerprint it recorded; P5_a counts as a run ('preprocessing':
    its dataset.json, else what its split statistics tell). Runs that recorded none are left out."""
    results, found = Path(results), {}
    pre = results / "preprocessing"
    if (pre / "dataset.json").exists():
        found["preprocessing"] = json.loads((pre / "dataset.json").read_text())
    elif (pre / "split_stats.json").exists():
        found["preprocessing"] = _stats_fingerprint(json.loads((pre / "split_stats.json").read_text()))
    for config in sorted(results.rglob("config.json")):
        fp = Run(config.parent).fingerprint  # metrics.json's, else config.json's; None for older runs
        if fp:
            found[config.parent.relative_to(results).as_posix()] = fp
    return found


def same_data(a: dict, b: dict) -> bool:
    """Whether two fingerprints are of one dataset: the file hash where both have one, else classes and counts."""
    if [canonical_class(c) for c in a.get("classes", [])] != [canonical_class(c) for c in b.get("classes", [])]:
        return False
    if a.get("files_sha1") and b.get("files_sha1"):
        return a["files_sha1"] == b["files_sha1"]
    return not (a.get("counts") and b.get("counts")) or a["counts"] == b["counts"]


def _short(fp: dict) -> str:
    counts = fp.get("counts") or {}
    sizes = "/".join(str(sum(c.values())) for c in counts.values()) if counts else \
        "/".join(str(n) for n in (fp.get("files") or {}).values())
    return f"{fp.get('name', '?')}, {len(fp.get('classes', []))} classes, {sizes} images"


def group_by_data(fps: dict[str, dict]) -> list[tuple[dict, list[str]]]:
    """Runs grouped by the data they saw: [(fingerprint, run folders)], the largest group first."""
    groups: list[tuple[dict, list[str]]] = []
    for run, fp in fps.items():
        group = next((g for g in groups if same_data(g[0], fp)), None)
        if group is None:
            groups.append((fp, [run]))
        else:
            group[1].append(run)
            if not group[0].get("files_sha1") and fp.get("files_sha1"):
                groups[groups.index(group)] = (fp, group[1])  # a run's full fingerprint speaks for the group
    return sorted(groups, key=lambda g: -len(g[1]))


def mixed_data(results: str | Path) -> str | None:
    """One line saying which runs of `results` saw which data when they saw different data, else None."""
    groups = group_by_data(results_fingerprints(results))
    if len(groups) < 2:
        return None
    parts = "; ".join(f"{', '.join(runs[:4])}{f' and {len(runs) - 4} more' if len(runs) > 4 else ''} on "
                      f"{_short(fp)}" for fp, runs in groups)
    return (f"{Path(results).name}/ mixes runs of different datasets ({parts}): keep one dataset's runs in a "
            "results folder")


def results_dataset(results: str | Path) -> dict | None:
    """The fingerprint of the one dataset behind a results folder (None when no run recorded one); DataError with
    one line when its runs saw different data."""
    why = mixed_data(results)
    if why:
        raise DataError(why)
    groups = group_by_data(results_fingerprints(results))
    return groups[0][0] if groups else None
