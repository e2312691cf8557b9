"""Dataset fingerprints: recorded by every run, and runs on other data are never mixed."""

import json
import shutil

import pytest

from facial_expression.study import same_data_runs, seeds_table
from facial_expression.data import resolve_layout
from facial_expression.data.fingerprint import check_same_dataset, dataset_fingerprint, describe, mismatch
from facial_expression.errors import DataError


def test_fingerprint_names_the_data_and_ignores_where_it_is_mounted(tiny_dataset, tmp_path):
    fp = dataset_fingerprint(resolve_layout(tiny_dataset))
    # listed files, the corrupt one too
    assert fp["classes"] == ["angry", "happy", "sad"] and fp["files"] == {"train": 37, "validation": 12}
    assert fp["ffhq_files"] == 0 and "3 classes" in describe(fp)
    moved = shutil.copytree(tiny_dataset, tmp_path / "elsewhere")
    assert mismatch(fp, dataset_fingerprint(resolve_layout(moved))) is None
    (moved / "train" / "sad" / "sad_0.jpg").rename(moved / "train" / "sad" / "ffhq_0.jpg")
    changed = dataset_fingerprint(resolve_layout(moved))
    assert changed["ffhq_files"] == 1 and "image files differ" in mismatch(fp, changed)
    with pytest.raises(DataError, match="the model was trained on other data"):
        check_same_dataset(fp, changed, "the model")
    assert "classes differ" in mismatch(fp, dict(fp, classes=["a", "b"]))
    assert "no dataset fingerprint" in mismatch(fp, None) and mismatch(None, None) is None


def _run(path, seed, fp, acc):
    path.mkdir(parents=True)
    m = {"accuracy": acc, "macro_f1": acc, "macro_auc": 0.8, "epochs_run": 2, "best_epoch": 2,
         "parameters": {"total": 10}, "cpu_latency_ms": 1.0, "wall_seconds": 60.0, "dataset": fp,
         "splits": {"tune": {"accuracy": acc}}, "per_class": {"a": {"f1": acc}}}
    (path / "metrics.json").write_text(json.dumps(m))
    (path / "config.json").write_text(json.dumps({"seed": seed, "dataset": fp}))
    return path


def test_runs_on_other_data_are_left_out_with_one_line(tmp_path, capsys):
    mine = {"classes": ["a", "b"], "files_sha1": "1", "files": {"train": 2}, "name": "course"}
    sample = {"classes": ["a", "c"], "files_sha1": "2", "files": {"train": 2}, "name": "affectnet7"}
    runs = [_run(tmp_path / "p0", 0, mine, 0.5), _run(tmp_path / "p1", 1, sample, 0.9),
            _run(tmp_path / "p2", 2, mine, 0.7)]
    assert same_data_runs(runs) == [runs[0], runs[2]]
    assert "left out" in capsys.readouterr().out
    table = seeds_table({"plain": runs})
    assert table.loc["plain", "seeds"] == "0, 2" and table.loc["plain", "val. acc. mean"] == pytest.approx(0.6)


def test_p5_d_refuses_a_model_of_other_data_and_trains_a_missing_one(tiny_dataset, tmp_path, capsys):
    from facial_expression.config import TrainConfig
    from facial_expression.experiment import trained_model
    cfg = TrainConfig(data=str(tiny_dataset), out=str(tmp_path / "light_vgg"), epochs=1, batch_size=8,
                      input_size=32, max_batches=1, amp="off")
    model, ckpt = trained_model(cfg, "P5_c's LightVGG", progress=False)  # missing: trained first
    assert "training it now" in capsys.readouterr().out and ckpt["classes"] == ["angry", "happy", "sad"]
    trained_model(cfg, "P5_c's LightVGG", progress=False)
    assert "using P5_c's LightVGG" in capsys.readouterr().out
    other = shutil.copytree(tiny_dataset, tmp_path / "other")  # the same class names, other faces
    (other / "validation" / "sad" / "sad_0.jpg").unlink()
    with pytest.raises(DataError, match="P5_c's LightVGG in .* was trained on other data: the image files differ"):
        trained_model(TrainConfig(**{**cfg.to_dict(), "data": str(other)}), "P5_c's LightVGG", progress=False)
