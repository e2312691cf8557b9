import math
import warnings

import pytest
import torch

from facial_expression.config import AugmentConfig
from facial_expression.data import (BatchLoader, SkippedFilesWarning, augmentation_counts, augmented_views,
                                    expand_offline, find_data_root, load_folder, load_splits,
                                    resolve_eval_folder, resolve_layout, split_statistics, split_train_tune,
                                    statistics_table)
from facial_expression.errors import DataError

from conftest import make_split


def load(ds, size=32, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFilesWarning)
        return load_splits(ds, size, progress=False, **kw)


def test_layout_classes_come_from_folders(tiny_dataset):
    layout = resolve_layout(tiny_dataset)
    assert layout.classes == ("angry", "happy", "sad")
    assert layout.eval_dir.name == "validation"


@pytest.mark.parametrize("name", ["val", "test"])
def test_alternative_eval_split_names(tiny_dataset, name):
    (tiny_dataset / "validation").rename(tiny_dataset / name)
    assert resolve_layout(tiny_dataset).eval_dir.name == name


def test_images_are_rgb_uint8_at_model_size_and_scale_to_unit_range(tiny_dataset):
    splits = load(tiny_dataset, size=64)
    imgs = splits.train.images
    assert imgs.dtype == torch.uint8 and imgs.shape[1:] == (3, 64, 64)
    assert set(splits.train.modes) == {"RGB", "L", "RGBA", "CMYK"}
    x, _ = next(iter(BatchLoader(splits.train, 8)))
    assert x.dtype == torch.float32 and 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.5


def test_bad_files_are_skipped_with_a_warning_naming_them(tiny_dataset):
    with pytest.warns(SkippedFilesWarning) as record:
        data = load_folder(tiny_dataset / "train", 32, use_disk_cache=False, progress=False)
    text = str(record[0].message)
    assert "skipped 3 file(s)" in text
    for name in ("broken.jpg", ".DS_Store", "notes.txt"):
        assert name in text
    assert len(data) == 36


def test_disk_cache_gives_the_same_images(tiny_dataset, tmp_path, monkeypatch):
    from facial_expression.data import cache
    monkeypatch.setenv("FER_CACHE", str(tmp_path / "cache"))  # an empty cache of this test's own
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFilesWarning)
        a = load_folder(tiny_dataset / "train", 32, progress=False)
        monkeypatch.setattr(cache, "decode_image", lambda *a, **k: pytest.fail("decoded again, cache unused"))
        b = load_folder(tiny_dataset / "train", 32, progress=False)  # from the cache: no image is decoded
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels) and a.paths == b.paths


def test_disk_cache_sees_changed_added_moved_and_removed_files(tiny_dataset, tmp_path, monkeypatch):
    """The cache key covers every file's path, class, size and modification time: any change is decoded anew."""
    import os

    import numpy as np
    from PIL import Image

    from facial_expression.data import cache
    monkeypatch.setenv("FER_CACHE", str(tmp_path / "cache"))  # an empty cache of this test's own
    split = tiny_dataset / "validation"
    target = split / "angry" / "angry_1.png"

    def write_uncompressed(value):  # the same number of bytes whatever the pixels
        Image.fromarray(np.full((32, 32), value, np.uint8)).save(target, compress_level=0)

    def entries():
        return len(list((tmp_path / "cache").glob("*.npy")))

    def decoded(data, path):
        return data.images[data.paths.index(str(path))]

    write_uncompressed(10)
    first = load_folder(split, 32, progress=False)
    assert entries() == 1 and decoded(first, target).max() == 10

    def no_decoding(*a, **k):
        raise AssertionError("decoded again although nothing changed")
    with monkeypatch.context() as m:
        m.setattr(cache, "decode_image", no_decoding)
        again = load_folder(split, 32, progress=False)  # served from the cache
    assert torch.equal(again.images, first.images) and again.paths == first.paths and entries() == 1

    # new pixels, same file size: only the modification time tells, and it is enough
    before = target.stat()
    write_uncompressed(200)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    assert target.stat().st_size == before.st_size
    changed = load_folder(split, 32, progress=False)
    assert entries() == 2 and decoded(changed, target).min() == 200
    others = [i for i, p in enumerate(changed.paths) if p != str(target)]
    assert torch.equal(changed.images[others], first.images[others])

    added = split / "sad" / "sad_new.png"
    Image.fromarray(np.full((40, 40, 3), 77, np.uint8)).save(added)
    grown = load_folder(split, 32, progress=False)
    assert len(grown) == len(first) + 1 and decoded(grown, added).float().mean() == 77
    assert grown.labels[grown.paths.index(str(added))] == 2

    moved = split / "happy" / "sad_new.png"  # the same file in another class folder: another label
    added.rename(moved)
    relabelled = load_folder(split, 32, progress=False)
    assert str(added) not in relabelled.paths and relabelled.labels[relabelled.paths.index(str(moved))] == 1

    moved.unlink()
    (split / "happy" / "happy_0.jpg").unlink()
    shrunk = load_folder(split, 32, progress=False)
    assert len(shrunk) == len(first) - 1 and str(split / "happy" / "happy_0.jpg") not in shrunk.paths
    assert shrunk.counts() == {"angry": 4, "happy": 3, "sad": 4}
    assert entries() == 5


def test_tune_split_is_stratified_disjoint_and_seeded(tiny_dataset):
    splits = load(tiny_dataset)
    full = len(splits.train) + len(splits.tune)
    assert len(splits.tune) == round(0.1 * full) or len(splits.tune) == int(0.1 * full) + 1
    assert not set(splits.train.paths) & set(splits.tune.paths)
    assert set(splits.tune.counts().values()) <= {1, 2}  # stratified: every class represented
    again = load(tiny_dataset)
    assert again.tune.paths == splits.tune.paths
    other = split_train_tune(load_folder(tiny_dataset / "validation", 32, progress=False), 0.25, seed=5)[1]
    assert sorted(other.counts().values()) == [1, 1, 1]


def test_split_statistics_table_and_json(tiny_dataset):
    stats = split_statistics(load(tiny_dataset))
    assert stats["totals"]["validation"] == 12
    assert stats["totals"]["train"] + stats["totals"]["tune"] == 36
    assert stats["image_sizes"] == {"32x32": 48}
    table = statistics_table(stats)
    assert table.loc["total", "all"] == 48 and list(table.columns) == ["train", "tune", "validation", "all"]


def test_missing_class_in_one_split_is_an_error(tiny_dataset):
    import shutil
    shutil.rmtree(tiny_dataset / "validation" / "sad")
    with pytest.raises(DataError, match="missing from validation/: sad"):
        resolve_layout(tiny_dataset)


def test_different_class_sets_are_an_error(tiny_dataset):
    (tiny_dataset / "validation" / "sad").rename(tiny_dataset / "validation" / "contempt")
    with pytest.raises(DataError, match="class folders differ"):
        resolve_layout(tiny_dataset)


def test_empty_class_is_an_error(tiny_dataset):
    for f in (tiny_dataset / "validation" / "happy").iterdir():
        f.unlink()
    with pytest.raises(DataError, match="holds no images"):
        resolve_layout(tiny_dataset)


def test_empty_split_and_missing_split_are_errors(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "validation").mkdir()
    with pytest.raises(DataError, match="is empty"):
        resolve_layout(tmp_path)
    with pytest.raises(DataError, match="no validation"):
        resolve_layout(make_split(tmp_path / "x" / "train", ["a", "b"], 2).parent)
    with pytest.raises(DataError, match="does not exist"):
        find_data_root(tmp_path / "nowhere")


def test_data_root_from_environment(tiny_dataset, monkeypatch):
    monkeypatch.setenv("FER_DATA", str(tiny_dataset))
    assert find_data_root() == tiny_dataset


def test_eval_folder_matches_classes_by_name(tiny_dataset):
    import shutil
    shutil.rmtree(tiny_dataset / "validation" / "angry")  # a subset is fine
    folder = resolve_eval_folder(tiny_dataset / "validation")
    data = load_folder(folder, 32, classes=("angry", "happy", "sad"), progress=False)
    assert set(data.labels.tolist()) == {1, 2}
    (tiny_dataset / "validation" / "sad").rename(tiny_dataset / "validation" / "bored")
    with pytest.raises(DataError, match="does not know: bored"):
        load_folder(folder, 32, classes=("angry", "happy", "sad"), progress=False)


@pytest.mark.parametrize("policy", ["none", "standard", "strong", "photometric", "trivial"])
def test_augmented_views_shape_range_and_no_side_effect(tiny_dataset, policy):
    data = load(tiny_dataset).validation
    before = data.images.clone()
    views = augmented_views(data.images[:4], policy, n_views=3, seed=1)
    assert views.shape == (4, 3, 3, 32, 32) and views.dtype == torch.float32
    assert 0 <= views.min() and views.max() <= 1
    assert torch.equal(data.images, before)
    assert torch.equal(views, augmented_views(data.images[:4], policy, n_views=3, seed=1))
    if policy != "none":
        assert not torch.equal(views[:, 0], views[:, 1])


def test_unknown_policy_is_an_error():
    with pytest.raises(ValueError, match="unknown augmentation policy"):
        AugmentConfig.preset("wild")


def test_augmentation_counts_and_offline_expansion(tiny_dataset):
    counts = augmentation_counts(6300, 30, "standard", offline_factor=2)
    assert counts["distinct_samples_seen_over_run"] == 189_000
    assert counts["stored_after_offline_expansion"] == 18_900
    assert augmentation_counts(100, 30, "none")["distinct_samples_seen_over_run"] == 100
    data = load(tiny_dataset).validation
    imgs, labels = expand_offline(data.images, data.labels, "standard", factor=2)
    assert len(imgs) == 3 * len(data) and imgs.dtype == torch.uint8
    assert torch.equal(labels[len(data):len(data) + 2], data.labels[:1].repeat(2))


def test_loader_is_seeded_per_epoch_and_eval_never_shuffles(tiny_dataset):
    data = load(tiny_dataset).train
    from facial_expression.runtime import seed_epoch
    loader = BatchLoader(data, 8, shuffle=True, augment="standard", seed=3)
    passes = []
    for epoch in (1, 1, 2):
        loader.set_epoch(epoch)
        seed_epoch(3, epoch)  # the augmentation draws, as the training loop seeds them
        passes.append([(x, y) for x, y in loader])
    (a, b, c) = passes
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))
    assert not torch.equal(torch.cat([y for _, y in a]), torch.cat([y for _, y in c]))  # another order
    ys = torch.cat([y for _, y in BatchLoader(data, 8)])
    assert torch.equal(ys, data.labels)
    assert len(BatchLoader(data, 8, max_batches=2)) == 2


@pytest.mark.parametrize("policy", ["standard", "strong", "photometric"])
def test_batched_augmentation_draws_per_image_and_keeps_the_input(policy):
    from facial_expression.data import BatchAugment
    torch.manual_seed(0)
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    same = x[:1].repeat(8, 1, 1, 1)
    before = same.clone()
    out = BatchAugment(policy)(same)
    assert out.shape == (8, 3, 32, 32) and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1
    assert torch.equal(same, before)
    assert len({tuple(o.flatten()[:50].tolist()) for o in out}) == 8  # each image its own draw


def test_batched_augmentation_with_nothing_to_do_is_the_identity():
    from facial_expression.data import BatchAugment
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    assert torch.allclose(BatchAugment("none")(x), x.float() / 255, atol=1e-5)
    flip_only = AugmentConfig.preset("none")
    flip_only.hflip = 1.0
    assert torch.allclose(BatchAugment(flip_only)(x), x.flip(-1).float() / 255, atol=1e-5)


def test_loader_batched_backend(tiny_dataset):
    from facial_expression.data import BatchAugment
    data = load(tiny_dataset).train
    loader = BatchLoader(data, 8, shuffle=True, augment="standard", backend="batched")
    assert loader.backend == "batched" and isinstance(loader.transform, BatchAugment)  # whole batches, not v2
    x, _ = next(iter(loader))
    assert x.shape == (8, 3, 32, 32) and 0 <= x.min() and x.max() <= 1
    assert BatchLoader(data, 8, augment="standard", backend="v2").backend == "v2"
    with pytest.raises(ValueError, match="backend"):
        BatchLoader(data, 8, augment="standard", backend="gpu-magic")


def test_large_caches_are_memory_mapped_files(tiny_dataset, monkeypatch):
    """Above the threshold the decoded cache is a .npy on disk, read through a memory map."""
    import os
    from pathlib import Path
    from facial_expression.data import cache
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFilesWarning)
        in_memory = load_folder(tiny_dataset / "validation", 32, use_disk_cache=False, progress=False)
        monkeypatch.setattr(cache, "MMAP_THRESHOLD_BYTES", 1000)
        first = load_folder(tiny_dataset / "validation", 32, progress=False)   # decoded into the memmap
        again = load_folder(tiny_dataset / "validation", 32, progress=False)   # read back from disk
    for data in (first, again):
        assert data.memory_mapped
        assert torch.equal(data.images, in_memory.images)
    assert not in_memory.memory_mapped
    assert not list(Path(os.environ["FER_CACHE"]).glob("*.tmp.npy"))


def test_batched_grayscale_and_saturation():
    from facial_expression.data import BatchAugment
    x = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8)
    policy = AugmentConfig.preset("none")
    policy.grayscale = 1.0
    out = BatchAugment(policy)(x)
    assert torch.allclose(out[:, 0], out[:, 1]) and torch.allclose(out[:, 1], out[:, 2])
    policy.grayscale, policy.saturation = 0.0, 0.5
    out = BatchAugment(policy)(x)
    assert 0 <= out.min() and out.max() <= 1 and not torch.allclose(out, x.float() / 255)


def test_trivial_augment_needs_the_per_image_backend():
    from facial_expression.data import BatchAugment
    with pytest.raises(ValueError, match="v2 backend"):
        BatchAugment("trivial")


# ------------------------------------------------- the batched backend draws what the v2 policy draws
def _only(**field) -> "AugmentConfig":
    from facial_expression.config import AugmentConfig
    none = dict(hflip=0.0, rotation=0.0, translate=0.0, scale=(1.0, 1.0), brightness=0.0, contrast=0.0)
    return AugmentConfig(name="probe", **{**none, **field})


def _blob(n: int = 64) -> torch.Tensor:
    """A grey image with an elongated bright blob, brighter on its left: orientation, centre, size and side
    can all be read back from its moments."""
    yy, xx = torch.meshgrid(torch.arange(n) - (n - 1) / 2, torch.arange(n) - (n - 1) / 2, indexing="ij")
    blob = torch.exp(-(xx / 10) ** 2 - (yy / 4) ** 2) * (1 + 0.5 * (xx < 0))
    return (60 + 120 * blob / blob.max()).round().to(torch.uint8).expand(3, n, n).contiguous()


def _moments(img: torch.Tensor) -> dict[str, float]:
    g = img.mean(0) - img.mean(0).min()
    n = g.shape[0]
    yy, xx = torch.meshgrid(torch.arange(n, dtype=torch.float32), torch.arange(n, dtype=torch.float32),
                            indexing="ij")
    m = g.sum()
    cx, cy = (g * xx).sum() / m, (g * yy).sum() / m
    mu20, mu02 = (g * (xx - cx) ** 2).sum() / m, (g * (yy - cy) ** 2).sum() / m
    mu11 = (g * (xx - cx) * (yy - cy)).sum() / m
    left = g[:, : n // 2].sum() > g[:, n // 2:].sum()
    return {"angle": math.degrees(0.5 * math.atan2(2 * mu11, mu20 - mu02)), "x": float(cx), "size": float(mu20 + mu02),
            "left": float(left), "brightness": float(img.mean()), "contrast": float(img.std())}


@pytest.mark.parametrize("field, value, stat, relative", [
    ("hflip", 0.5, "left", False), ("rotation", 10.0, "angle", False), ("translate", 0.08, "x", False),
    ("scale", (0.9, 1.1), "size", True), ("brightness", 0.2, "brightness", True), ("contrast", 0.2, "contrast", True),
])
def test_batched_augmentation_draws_from_the_distribution_of_the_v2_policy(field, value, stat, relative):
    from facial_expression.data import BatchAugment, build_augmentation
    torch.manual_seed(0)
    policy, img, n = _only(**{field: value}), _blob(), 400
    v2_stats = torch.tensor([_moments(build_augmentation(policy)(img) * 255)[stat] for _ in range(n)])
    batched = BatchAugment(policy)(img.expand(n, -1, -1, -1).contiguous())
    b_stats = torch.tensor([_moments((x * 255).round())[stat] for x in batched])
    if relative:  # scale and the photometric factors act on the value itself
        ref = _moments(img.float())[stat]
        v2_stats, b_stats = v2_stats / ref, b_stats / ref
    assert v2_stats.std() > 0  # the component does something
    se = (v2_stats.var() / n + b_stats.var() / n).sqrt()
    assert abs(v2_stats.mean() - b_stats.mean()) < 4 * se + 1e-3, (v2_stats.mean(), b_stats.mean())
    assert 0.8 < b_stats.std() / v2_stats.std() < 1.25, (v2_stats.std(), b_stats.std())
