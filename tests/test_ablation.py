import json
import warnings

import pytest

from facial_expression import ablation
from facial_expression.data import SkippedFilesWarning
from facial_expression.errors import FERError


def test_row_config_applies_the_changes_on_the_plain_model():
    cfg = ablation.row_config(["batch_norm", "label_smoothing", "gap_head"], epochs=3, seed=2)
    assert cfg.batch_norm and cfg.label_smoothing == 0.1 and cfg.head == "gap"
    assert (cfg.epochs, cfg.seed, cfg.optimizer, cfg.schedule) == (3, 2, "adam", "onecycle")
    plain = ablation.row_config([])
    assert not plain.batch_norm and plain.head == "dense" and plain.augment == "standard"
    assert ablation.row_config(["photometric", "trivial_augment"]).augment == "photometric"  # first wins
    assert ablation.row_config(["trivial_augment", "photometric"]).augment == "trivial"
    with pytest.raises(FERError, match="unknown change"):
        ablation.row_config(["more_layers"])


def test_every_change_stays_within_the_paper_budget():
    from facial_expression.models import build_model, count_parameters, model_options
    for name in ablation.CHANGES:
        cfg = ablation.row_config([name] if name != "plain" else [])
        n = count_parameters(build_model("light-vgg", 8, **model_options(cfg)))["total"]
        assert n <= ablation.PARAM_BUDGET, name


def test_rows_run_resume_and_tabulate(tiny_dataset, tmp_path, capsys):
    rows = {"plain": [], "label_smoothing": ["label_smoothing"]}
    study = tmp_path / "results" / "ablation" / "screen10"
    kw = dict(input_size=32, batch_size=8, amp="off", tune_fraction=0.25, max_batches=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFilesWarning)
        done = ablation.run_rows(rows, study, 1, seeds=(0, 1), data=str(tiny_dataset),
                                 progress=False, **kw)
        assert [d.name for d in done] == ["plain_seed0", "label_smoothing_seed0", "plain_seed1",
                                          "label_smoothing_seed1"]
        before = (done[0] / "metrics.json").stat().st_mtime_ns
        ablation.run_rows(rows, study, 1, seeds=(0,), data=str(tiny_dataset), progress=False, **kw)
    assert (done[0] / "metrics.json").stat().st_mtime_ns == before  # finished rows are not retrained
    assert "finished earlier, skipped" in capsys.readouterr().out

    metrics = json.loads((done[1] / "metrics.json").read_text())
    assert metrics["tta"] is False and set(metrics["flip_tta"]) == {"tune", "validation"}
    assert metrics["cpu_latency_ms"] > 0

    table = ablation.screening_table(study)
    assert list(table.index) == ["plain", "label_smoothing"] and table.loc["plain", "tune Δ"] == 0
    assert table.loc["label_smoothing", "tune Δ"] == pytest.approx(
        table.loc["label_smoothing", "tune acc."] - table.loc["plain", "tune acc."])
    assert ablation.helpful_changes(table, min_gain=2.0) == []

    seeds = ablation.seeds_table({"plain": [done[0], done[2]]})
    assert seeds.loc["plain", "seeds"] == "0, 1" and "±" in seeds.loc["plain", "val. acc."]
    f1 = ablation.per_class_f1({"plain": [done[0], done[2]]})
    assert list(f1.index) == ["angry", "happy", "sad"]
    markdown = ablation.ablation_markdown(tmp_path / "results")  # the screening only: no final runs yet
    assert "| `plain` | the paper's LightVGG, as in part (c) |" in markdown and "±" not in markdown
    with pytest.raises(FERError, match="no finished runs"):
        ablation.screening_table(tmp_path / "nothing")
