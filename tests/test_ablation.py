import json
import warnings

import pytest
from test_findings import fingerprint, metrics

from facial_expression import findings, readme, study
from facial_expression.config import TrainConfig
from facial_expression.data import SkippedFilesWarning
from facial_expression.errors import FERError


def test_row_config_applies_the_changes_on_the_plain_model():
    cfg = study.row_config(["batch_norm", "label_smoothing", "gap_head"], epochs=3, seed=2)
    assert cfg.batch_norm and cfg.label_smoothing == 0.1 and cfg.head == "gap"
    assert (cfg.epochs, cfg.seed, cfg.optimizer, cfg.schedule) == (3, 2, "adam", "onecycle")
    plain = study.row_config([])
    assert not plain.batch_norm and plain.head == "dense" and plain.augment == "standard"
    assert study.row_config(["photometric", "trivial_augment"]).augment == "photometric"  # first wins
    assert study.row_config(["trivial_augment", "photometric"]).augment == "trivial"
    with pytest.raises(FERError, match="unknown change"):
        study.row_config(["more_layers"])


def test_every_change_stays_within_the_paper_budget():
    from facial_expression.models import build_model, count_parameters, model_options
    for name in study.CHANGES:
        cfg = study.row_config([name] if name != "plain" else [])
        n = count_parameters(build_model("light-vgg", 8, **model_options(cfg)))["total"]
        assert n <= study.PARAM_BUDGET, name


def test_rows_run_resume_and_tabulate(tiny_dataset, tmp_path, capsys):
    rows = {"plain": [], "label_smoothing": ["label_smoothing"]}
    screen = tmp_path / "results" / "ablation" / "screen10"
    kw = dict(input_size=32, batch_size=8, amp="off", tune_fraction=0.25, max_batches=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFilesWarning)
        done = study.screening(rows, screen, 1, seeds=(0, 1)).run(str(tiny_dataset), **kw)
        assert [d.name for d in done] == ["plain_seed0", "label_smoothing_seed0", "plain_seed1",
                                          "label_smoothing_seed1"]
        before = (done[0] / "metrics.json").stat().st_mtime_ns
        study.screening(rows, screen, 1, seeds=(0,)).run(str(tiny_dataset), **kw)
    assert (done[0] / "metrics.json").stat().st_mtime_ns == before  # finished rows are not retrained
    assert "finished earlier, skipped" in capsys.readouterr().out

    metrics = json.loads((done[1] / "metrics.json").read_text())
    assert metrics["tta"] is False and set(metrics["flip_tta"]) == {"tune", "validation"}
    assert metrics["cpu_latency_ms"] > 0

    table = study.screening_table(screen)
    assert list(table.index) == ["plain", "label_smoothing"] and table.loc["plain", "tune Δ"] == 0
    assert table.loc["label_smoothing", "tune Δ"] == pytest.approx(
        table.loc["label_smoothing", "tune acc."] - table.loc["plain", "tune acc."])
    own = [json.loads((d / "metrics.json").read_text())["cpu_latency_ms"] for d in done[:2]]
    assert table["CPU ms"].tolist() == own  # nothing timed together yet: each run's own measurement
    # latencies timed together (RESULTS/latency.json): one architecture, one measurement, which the table then shows
    cache = tmp_path / "results" / "latency.json"
    latency = study.measure_row_latencies(screen, {**rows, "combined": ["label_smoothing"], "bn": ["batch_norm"]},
                                          3, smoke=True, input_size=32)
    assert latency["plain"] == latency["label_smoothing"] == latency["combined"] and latency["bn"] > 0
    assert study.screening_table(screen)["CPU ms"].tolist() == [latency["plain"]] * 2
    saved = cache.stat().st_mtime_ns
    assert study.measure_row_latencies(screen, rows, 3, True, input_size=32) == {n: latency[n] for n in rows}
    assert cache.stat().st_mtime_ns == saved  # a group covering the rows is read, not timed again
    bn = study.measure_row_latencies(screen, {**rows, "combined": ["batch_norm"]}, 3, True, input_size=32)
    assert bn["combined"] == latency["bn"] and cache.stat().st_mtime_ns == saved  # an architecture of the group
    # a `combined` of an architecture not in the group (a rerun screening chose other changes): all timed again
    again = study.measure_row_latencies(screen, {**rows, "combined": ["gap_head"]}, 3, True, input_size=32)
    assert cache.stat().st_mtime_ns != saved and again["plain"] == again["label_smoothing"] != again["combined"]
    assert study.screening_table(screen)["CPU ms"].tolist() == [again["plain"]] * 2  # the latest group
    assert study.latency_cache(tmp_path / "screen") == tmp_path / "screen" / "latency.json"  # not in a results folder
    gain = table.loc["label_smoothing", "tune Δ"]
    assert study.helpful_changes(table, min_gain=gain - 0.5) == ["label_smoothing"]
    assert study.helpful_changes(table, min_gain=gain) == []  # strictly more than min_gain

    seeds = study.seeds_table({"plain": [done[0], done[2]]})
    assert seeds.loc["plain", "seeds"] == "0, 1" and "±" in seeds.loc["plain", "val. acc."]
    markdown = readme.ablation_markdown(tmp_path / "results")  # the screening only: no final runs yet
    assert "| `plain` | the paper's light VGG, as in part (c) |" in markdown and "±" not in markdown
    with pytest.raises(FERError, match="no finished runs"):
        study.screening_table(tmp_path / "nothing")


def write_screen_run(root, name, tune, fp, val=0.6):
    """A finished seed-0 screening run (metrics.json and config.json) with the given tune accuracy."""
    classes = fp["classes"]
    out = root / f"{name}_seed0"
    out.mkdir(parents=True)
    m = metrics(classes, tune=tune, val=val, fp=fp) | {"cpu_latency_ms": 4.0, "tta": False}
    (out / "metrics.json").write_text(json.dumps(m))
    (out / "config.json").write_text(json.dumps(TrainConfig(model="light-vgg").to_dict() | {"dataset": fp}))
    return out


def test_helpful_changes_are_those_that_beat_plain_by_more_than_min_gain_largest_first(tmp_path, capsys):
    classes = ["angry", "happy", "sad"]
    fp = fingerprint(classes)
    tune = {"plain": 0.50, "batch_norm": 0.53, "gap_head": 0.58, "label_smoothing": 0.505, "class_weights": 0.47,
            "mixup_cutmix": 0.545, "wider": 0.70}  # "wider" is no change of the study
    for name, acc in tune.items():
        write_screen_run(tmp_path, name, acc, fp)
    other = fingerprint(["angry", "happy", "sad"], name="other_data")
    other["files_sha1"] = "fedcba9876543210"
    write_screen_run(tmp_path, "trivial_augment", 0.90, other)  # trained on other data: never compared

    table = study.screening_table(tmp_path)
    assert "left out" in capsys.readouterr().out and "trivial_augment" not in table.index
    assert table.index[0] == "plain"
    assert table.loc["gap_head", "tune Δ"] == pytest.approx(0.08)
    assert table.loc["class_weights", "tune Δ"] == pytest.approx(-0.03)
    assert list(table["tune Δ"].iloc[1:]) == sorted(table["tune Δ"].iloc[1:], reverse=True)

    chosen = study.helpful_changes(table, min_gain=0.01)
    assert chosen == ["gap_head", "mixup_cutmix", "batch_norm"]  # largest gain first; +0.5 and -3 points fail
    assert study.helpful_changes(table, min_gain=0.04) == ["gap_head", "mixup_cutmix"]
    assert study.helpful_changes(table, min_gain=0.0) == ["gap_head", "mixup_cutmix", "batch_norm",
                                                          "label_smoothing"]
    assert study.helpful_changes(table, min_gain=0.2) == []
    # the report's selection (findings.passed_changes) agrees with the notebook's on the study's changes
    assert [r for r in findings.passed_changes(table, 0.01) if r in study.CHANGES] == chosen
    # the chosen changes combine into one config, the larger gain first
    cfg = study.row_config(chosen)
    assert cfg.head == "gap" and cfg.batch_norm and cfg.mix == "both"
