"""Dataset layouts students receive: split aliases, test splits, numeric classes, nesting, zips, CSVs, search."""

import re
import subprocess
import sys
import warnings
import zipfile

import pytest

from facial_expression.config import cache_dir
from facial_expression.data import (find_data_root, load_splits, resolve_eval_folder, resolve_layout,
                                    split_statistics, statistics_table)
from facial_expression.data import folders as folders_mod
from facial_expression.errors import DataError

from conftest import make_split

CLASSES = ["angry", "happy", "sad"]


def dataset(root, splits=("train", "validation"), classes=CLASSES, per_class=2):
    """A tiny dataset: each split folder with `per_class` 32x32 images per class."""
    for i, name in enumerate(splits):
        make_split(root / name, classes, per_class, seed=i)
    return root


def quiet_layout(root, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return resolve_layout(root, **kw)


@pytest.mark.parametrize("train, evaluation", [("Train", "Validation"), ("training", "valid"), ("TRAIN", "val"),
                                               ("train", "VALIDATION")])
def test_split_aliases_in_any_case(tmp_path, train, evaluation):
    layout = resolve_layout(dataset(tmp_path / "ds", (train, evaluation)))
    assert (layout.train_dir.name, layout.eval_dir.name, layout.test_dir) == (train, evaluation, None)
    assert layout.classes == layout.folders == tuple(CLASSES)


@pytest.mark.parametrize("train, test", [("Train", "Test"), ("training", "testing")])
def test_a_lone_test_folder_is_the_validation_split(tmp_path, train, test):
    with pytest.warns(UserWarning, match=f"{test}/ is the evaluation"):
        layout = resolve_layout(dataset(tmp_path / "ds", (train, test)))
    assert layout.eval_dir.name == test and layout.test_dir is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_layout(tmp_path / "ds").eval_dir.name == test  # said once, not at every load


def test_validation_and_test_give_a_separate_test_split(tmp_path):
    root = dataset(tmp_path / "ds", ("train", "val", "test"), per_class=4)
    layout = resolve_layout(root)
    assert (layout.eval_dir.name, layout.test_dir.name) == ("val", "test")
    splits = load_splits(root, 32, tune_fraction=0.25, progress=False)
    assert [name for name, _ in splits.items()] == ["train", "tune", "validation", "test"]
    assert splits.test.counts() == {c: 4 for c in CLASSES}
    stats = split_statistics(splits)
    assert set(stats) == {"root", "classes", "per_class", "totals", "image_sizes", "colour_modes"}
    assert stats["totals"]["test"] == 12 and list(statistics_table(stats).columns)[-2:] == ["test", "all"]
    assert resolve_eval_folder(root) == root / "val"


def test_numeric_folders_with_the_affectnet_preset(tmp_path, capsys):
    names = folders_mod.CLASS_PRESETS["affectnet"]
    root = dataset(tmp_path / "ds", classes=[str(i) for i in range(8)], per_class=1)
    layout = resolve_layout(root, classes="affectnet")
    assert layout.folders == tuple("01234567") and layout.classes == names
    assert capsys.readouterr().out.count("\n") == 1  # one line naming the mapping
    with pytest.raises(DataError, match="8 names but .* 3 class folders"):
        resolve_layout(dataset(tmp_path / "three", classes=["0", "1", "2"]), classes="AffectNet")


def test_numeric_folders_are_decoded_under_their_names(tmp_path):
    root = dataset(tmp_path / "ds", classes=["0", "1", "2"], per_class=4)
    splits = load_splits(root, 32, tune_fraction=0.25, progress=False, classes="neutral, happy, sad")
    assert splits.classes == ("neutral", "happy", "sad") and splits.layout.folders == ("0", "1", "2")
    assert splits.validation.counts() == {"neutral": 4, "happy": 4, "sad": 4}
    assert all(f"/{label}/" in path for label, path in zip(splits.validation.labels.tolist(), splits.validation.paths))


def test_classes_txt_names_numeric_folders(tmp_path):
    root = dataset(tmp_path / "ds", classes=["0", "1", "2"])
    (root / "classes.txt").write_text("neutral\nhappy\nsad\n")
    assert resolve_layout(root).classes == ("neutral", "happy", "sad")
    (root / "classes.txt").write_text("neutral\nhappy\n")
    with pytest.raises(DataError, match="2 names but .* 3 class folders"):
        resolve_layout(root)


def test_a_map_of_the_wrong_length_is_an_error(tmp_path):
    root = dataset(tmp_path / "ds", classes=["0", "1", "2"])
    with pytest.raises(DataError, match=r"has 4 names but .* 3 class folders \(0, 1, 2\)"):
        resolve_layout(root, classes=["a", "b", "c", "d"])


def test_numeric_folders_sort_numerically_and_warn_without_a_map(tmp_path):
    root = dataset(tmp_path / "ds", classes=[str(i) for i in range(12)], per_class=1)
    with pytest.warns(UserWarning, match="--classes affectnet"):
        layout = resolve_layout(root)
    assert layout.folders == tuple(str(i) for i in range(12))


def test_named_folders_take_a_map_only_as_a_label_order(tmp_path):
    root = dataset(tmp_path / "ds")
    assert resolve_layout(root, classes=["sad", "angry", "happy"]).classes == ("sad", "angry", "happy")
    with pytest.raises(DataError, match="already named"):
        resolve_layout(root, classes="a,b,c")


@pytest.mark.parametrize("depth", [2, 4])
def test_nested_datasets_are_found(tmp_path, depth):
    root = dataset(tmp_path.joinpath(*["level"] * depth))
    assert find_data_root(tmp_path) == root


def test_five_levels_down_is_not_found(tmp_path):
    dataset(tmp_path.joinpath(*["level"] * 5))
    with pytest.raises(DataError, match=r"no dataset .* 4 levels below .*found: level/"):
        find_data_root(tmp_path)


def test_several_nested_datasets_are_listed(tmp_path):
    a, b = dataset(tmp_path / "a"), dataset(tmp_path / "b" / "inner")
    with pytest.raises(DataError, match=f"several datasets .*{a}.*{b}"):
        find_data_root(tmp_path)


def test_a_split_or_class_folder_passed_asks_did_you_mean(tmp_path):
    root = dataset(tmp_path / "ds")
    for wrong in (root / "train", root / "validation" / "happy"):
        with pytest.raises(DataError, match=f"did you mean {root}\\?"):
            resolve_layout(wrong)


def test_a_missing_path_lists_its_parent(tmp_path):
    dataset(tmp_path / "affectnet")
    with pytest.raises(DataError, match=r"does not exist .*holds: affectnet/"):
        find_data_root(tmp_path / "afectnet")


def test_layout_errors_list_what_was_found(tmp_path):
    root = tmp_path / "ds"
    make_split(root / "Train", CLASSES, 1)
    (root / "labels.txt").write_text("x")
    with pytest.raises(DataError, match=r"no validation/ .*found: Train/, labels.txt"):
        resolve_layout(root)
    make_split(root / "Test", ["angry"], 1)
    with pytest.raises(DataError, match=r"missing from Test/: happy, sad.*Test/ has angry"):
        quiet_layout(root)
    for name in ("Happy", "Sad"):  # the same classes, capitalised in one split only
        make_split(root / "Test", [name], 1)
    (root / "Test" / "angry").rename(root / "Test" / "Angry")
    with pytest.raises(DataError, match=r"differ only in case \(angry, happy, sad against Angry, Happy, Sad\)"):
        quiet_layout(root)
    (root / "val").mkdir()
    (root / "Val").mkdir()
    if len({d.name for d in root.iterdir()}) == 5:  # a case-sensitive file system
        with pytest.raises(DataError, match=r"several validation folders: Val/, val/"):
            resolve_layout(root)


def test_a_zip_with_a_top_folder_is_unpacked_into_the_cache(tmp_path, capsys):
    src = dataset(tmp_path / "src" / "AffectNet")
    archive = tmp_path / "data" / "affectnet.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(src.rglob("*")):
            z.write(f, f.relative_to(src.parent))
    archive.parent.chmod(0o555)  # the data folder may be read-only
    try:
        root = find_data_root(archive)
        assert root.name == "AffectNet" and root.is_relative_to(cache_dir() / "unzipped")
        assert "unpacked" in capsys.readouterr().out
        assert resolve_layout(archive).classes == tuple(CLASSES)  # the second time: from the cache
        assert "before" in capsys.readouterr().out
        assert sorted(p.name for p in archive.parent.iterdir()) == ["affectnet.zip"]
    finally:
        archive.parent.chmod(0o755)


def test_a_corrupt_zip_says_how_to_unpack_it_by_hand(tmp_path):
    bad = tmp_path / "affectnet.zip"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match=f"unzip -q {bad} -d "):
        find_data_root(bad)


@pytest.mark.parametrize("split", [False, True])
def test_a_csv_layout_is_refused_with_a_recipe_that_works(tmp_path, monkeypatch, split):
    root = tmp_path / "kaggle"
    make_split(root, ["images"], 12)
    monkeypatch.chdir(tmp_path)  # the copy goes here, not beside the (maybe read-only) data
    rows = [f"images/images_{i}.{'png' if i % 4 in (1, 2) else 'jpg'},{CLASSES[i % 3]}"
            + (f",{'Test' if i >= 9 else 'Train'}" if split else "") for i in range(12)]
    (root / "labels.csv").write_text("pth,label" + (",split" if split else "") + "\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"labels.csv, columns: pth, label.*python -c") as err:
        find_data_root(root)
    message = str(err.value)
    assert "\n" not in message and "found: images/, labels.csv" in message
    assert ("by its split column" if split else "every 10th image") in message
    command = re.search(r'with: (python -c ".*?") and pass', message).group(1)
    subprocess.run(sys.executable + command[len("python"):], shell=True, check=True)
    out = tmp_path / "kaggle-by-class"
    assert resolve_layout(out).classes == tuple(CLASSES)
    validation = sorted(p.name for p in (out / "validation").rglob("*.*"))
    # the CSV's test rows (9, 10, 11) are the validation split; without a split column, each label's 1st image
    assert validation == sorted(f"images_{i}.{'png' if i % 4 in (1, 2) else 'jpg'}"
                                for i in ((9, 10, 11) if split else (0, 1, 2))), validation


@pytest.fixture
def cloud(tmp_path, monkeypatch):
    """Nothing given: no path, no FER_DATA, no data/affectnet; two fake cloud search roots."""
    roots = (tmp_path / "content", tmp_path / "kaggle" / "input")
    monkeypatch.setattr(folders_mod, "SEARCH_ROOTS", roots)
    monkeypatch.setattr(folders_mod, "DEFAULT_DATA_DIR", tmp_path / "repo" / "data" / "affectnet")
    monkeypatch.delenv("FER_DATA", raising=False)
    return roots


def test_cloud_search_finds_a_nested_dataset(cloud):
    cloud[1].mkdir(parents=True)
    root = dataset(cloud[1] / "affectnet-course" / "AffectNet")
    assert find_data_root() == root


def test_cloud_search_error_says_where_it_looked(cloud):
    cloud[0].mkdir()
    for name in ("affectnet.zip", "affectnet-copy.zip"):
        (cloud[0] / name).write_bytes(b"")
    with pytest.raises(DataError, match=f"no dataset found.*{cloud[0]}, {cloud[1]}.*zip files seen"):
        find_data_root()


def test_cloud_search_uses_the_one_dataset_zip_it_finds(cloud, tmp_path, capsys):
    """Colab with only affectnet.zip on Drive and `data = None`: that zip is used, and said; a run's own zip
    (fer_results.zip) is no dataset."""
    import shutil as sh
    src = dataset(tmp_path / "src" / "affectnet")
    (cloud[0] / "drive" / "MyDrive").mkdir(parents=True)
    sh.make_archive(str(cloud[0] / "drive" / "MyDrive" / "affectnet"), "zip", src.parent, "affectnet")
    (cloud[0] / "drive" / "MyDrive" / "fer_results.zip").write_bytes(b"")
    root = find_data_root()
    assert (root / "train").is_dir() and "affectnet.zip, the one zip found" in capsys.readouterr().out


def test_relative_fer_data_is_read_from_the_current_directory(tmp_path, monkeypatch):
    root = dataset(tmp_path / "ds")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FER_DATA", "ds")
    assert find_data_root() == root
    monkeypatch.setenv("FER_DATA", "nowhere")
    with pytest.raises(DataError, match=f"relative paths are read from {tmp_path}.*holds: ds/"):
        find_data_root()
