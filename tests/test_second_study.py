"""Part (d)'s second study: its plan, selection on tune only, the budget, and a real resumable run."""

import json
import shutil
import warnings

import pandas as pd
import pytest
from test_findings import metrics

from facial_expression.data import SkippedFilesWarning
from facial_expression.errors import FERError
from facial_expression.findings import delivery_findings, study_findings
from facial_expression.study import BUDGET, SWEEP_LRS, Row, SecondStudy, best_variant, row_config, variants

CLASSES = ["angry", "happy", "sad"]


def write_run(folder, tune, val=0.5, ema=None, flip=None, changes=(), **settings):
    """A finished run: raw tune/validation accuracy, and optionally its EMA and flip-TTA (tune, validation)."""
    folder.mkdir(parents=True)
    m = metrics(CLASSES, tune=tune, val=val) | {"tta": False}
    if flip:
        m["flip_tta"] = {s: {"accuracy": a} for s, a in zip(("tune", "validation"), flip)}
    if ema:
        m["ema"] = {"no_tta": {s: {"accuracy": a} for s, a in zip(("tune", "validation"), ema)}}
    (folder / "metrics.json").write_text(json.dumps(m))
    (folder / "config.json").write_text(json.dumps(row_config(list(changes), **settings).to_dict()))


def test_a_variant_is_chosen_on_tune_and_reports_its_validation(tmp_path):
    write_run(tmp_path / "r", tune=0.50, val=0.70, ema=(0.55, 0.40), flip=(0.52, 0.90))
    assert variants(tmp_path / "r") == {"raw": {"tune": 0.50, "validation": 0.70},
                                        "raw + flip": {"tune": 0.52, "validation": 0.90},
                                        "EMA": {"tune": 0.55, "validation": 0.40}}
    assert best_variant(tmp_path / "r") == ("EMA", {"tune": 0.55, "validation": 0.40})  # validation never chooses
    # flip TTA doubles the network's passes per face (over the latency budget): shown, never selected
    write_run(tmp_path / "f", tune=0.50, ema=(0.49, 0.5), flip=(0.60, 0.9))
    assert best_variant(tmp_path / "f") == ("raw", {"tune": 0.50, "validation": 0.5})


def test_the_plan_grows_as_rows_finish_and_confirms_the_winner_on_a_second_seed(tmp_path):
    study = SecondStudy(tmp_path, long_epochs=60, sweep_epochs=10, budget=20)  # room for bn_long's seed 1
    assert [r.folder for r in study.plan()] == ["plain_long_seed0", "smoothing_long_seed0", "bn_lr0.001_seed0",
                                                "bn_lr0.003_seed0"]
    # the screening's batch-norm row (10 epochs at the plain rate, seed 0) stands in for the first sweep point
    write_run(tmp_path / "ablation" / "screen10" / "batch_norm_seed0", 0.45, changes=["batch_norm"], epochs=10)
    assert study.path(Row("bn_lr0.001", ("batch_norm",), 10, SWEEP_LRS[0], ema=False)).parent.name == "screen10"
    write_run(study.root / "bn_lr0.003_seed0", 0.48, changes=["batch_norm"], epochs=10, lr=3e-3)
    assert study.bn_row() == Row("bn_long", ("batch_norm",), 60, 3e-3)
    write_run(study.root / "plain_long_seed0", 0.55, ema=(0.57, 0.1))
    write_run(study.root / "smoothing_long_seed0", 0.565, changes=["label_smoothing"], epochs=60)
    assert study.final_row() is None  # bn_long has not run
    write_run(study.root / "bn_long_seed0", 0.60, changes=["batch_norm"], epochs=60, lr=3e-3)
    # plain_long's best tune variant is its EMA (0.57): smoothing (0.565) does not beat it, batch-norm does
    assert study.final_row() == Row("bn_long", ("batch_norm",), 60, 3e-3)
    # its second seed, then the plain row's second seed: the comparison at the same schedule (beyond the budget)
    # and part (c)'s second seed (its schedule: 30 epochs before part (c) has run), where the screening did not train it
    part_c_seed1 = Row("plain", (), 30, ema=False, seed=1)
    assert study.plan()[-3:] == [Row("bn_long", ("batch_norm",), 60, 3e-3, seed=1), Row("plain_long", seed=1),
                                 part_c_seed1]
    assert study.path(part_c_seed1) == tmp_path / "ablation" / "final30" / "plain_seed1"
    # the two seeds beyond the budget are named, and not counted in what is left of it (bn_long's seed 1: 2.8)
    text = study_findings(study)
    assert "Still to run: `bn_long_seed1`, about 2.8 plain" in text and "continues" in text, text
    assert text.endswith("needs `plain_long_seed1` and `plain_seed1`, run beyond the budget."), text
    assert study.spent() == pytest.approx(2 + 2 + 10 / 30 * 1.4 + 2 * 1.4)  # the reused screening row is free
    # the comparison: part (c)'s plain model (seeds 0 and 1, raw), then the plain and the final row at 60 epochs,
    # each with the variant its seed 0 chose on tune
    write_run(tmp_path / "light_vgg", 0.5, val=0.58)
    write_run(tmp_path / "ablation" / "final30" / "plain_seed1", 0.5, val=0.60)
    write_run(study.root / "bn_long_seed1", 0.61, val=0.62, changes=["batch_norm"], epochs=60, lr=3e-3)
    early = study.final_comparison()  # the plain row's second seed has not run: its seed 1 is NaN, not invented
    plain60 = early.loc["plain + EMA, 60 epochs"]
    assert pd.isna(plain60["seed 1"]) and pd.isna(plain60["std"])
    assert early.loc["plain + EMA, 60 epochs", "mean"] == pytest.approx(0.1)  # seed 0's EMA alone
    write_run(study.root / "plain_long_seed1", 0.5, val=0.9, ema=(0.5, 0.2))
    assert study.spent() == pytest.approx(2 + 2 + 10 / 30 * 1.4 + 2 * 2 * 1.4)  # the baseline costs nothing
    table = study.final_comparison()
    assert list(table.index) == ["plain, 30 epochs (part c)", "plain + EMA, 60 epochs", "batch-norm, 60 epochs"]
    assert table["seed 1"].tolist() == pytest.approx([0.60, 0.2, 0.62])  # plain_long's EMA, as its seed 0 chose
    assert table["mean"].tolist() == pytest.approx([0.59, 0.15, 0.56])  # bn_long_seed0 reports 0.5
    assert table["gain"].iloc[-1] == pytest.approx(0.41)  # against the plain row at the same schedule


def test_an_interrupted_run_is_not_done(tmp_path):
    study = SecondStudy(tmp_path)
    write_run(study.root / "plain_long_seed0", 0.55)
    assert study.done(Row("plain_long"))
    path = study.root / "plain_long_seed0" / "metrics.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | {"interrupted": True}))  # Ctrl-C: it resumes
    assert not study.done(Row("plain_long")) and study.todo()[0].folder == "plain_long_seed0"


def test_two_winners_are_combined_where_the_budget_can_confirm_it(tmp_path):
    study = SecondStudy(tmp_path, long_epochs=60, sweep_epochs=10, budget=100)
    for lr in SWEEP_LRS:
        write_run(study.root / f"bn_lr{lr:g}_seed0", 0.4 + lr, changes=["batch_norm"], epochs=10, lr=lr)
    write_run(study.root / "plain_long_seed0", 0.50)
    write_run(study.root / "smoothing_long_seed0", 0.53)
    write_run(study.root / "bn_long_seed0", 0.56)
    assert study.final_row() == Row("combined_long", ("label_smoothing", "batch_norm"), 60, 3e-3)
    assert study.passed_over() == []
    # spent: 2 + 2 + 2 * 10/30 * 1.4 + 2.8 = 7.73. The combination's two seeds (5.6) and bn_long's seed 1 (2.8)
    # overrun a budget of 10; smoothing_long's seed 1 (2) fits: the best candidate the budget can confirm
    study.budget = 10
    assert study.final_row() == Row("smoothing_long", ("label_smoothing",), 60)
    assert [r.name for r in study.passed_over()] == ["combined_long", "bn_long"]  # what the report says it skipped
    study.budget = 9  # none fits: the first candidate, which the budget then refuses
    assert study.final_row().name == "combined_long" and study.passed_over() == []


def test_a_row_that_would_overrun_the_budget_is_not_started(tmp_path):
    study = SecondStudy(tmp_path, budget=1.0)
    assert study.run(data="/nowhere") == []  # plain_long alone costs 2 plain 30-epoch runs
    assert study_findings(study) == (  # the rows known: 2 + 2 + 2 * 10/30 * 1.4 (no screening row to reuse here)
        "No run of the second study exists for this data yet. `fer ablation --study long --budget 5` runs it; "
        "the rows known so far need 4.9 plain 30-epoch runs, more than the budget of 1.")
    write_run(study.root / "plain_long_seed0", 0.55)
    assert study_findings(study).startswith("The study has spent 2.0 of its 1 plain 30-epoch runs. Still to run: "
                                            "`smoothing_long_seed0`, `bn_lr0.001_seed0` and `bn_lr0.003_seed0`, "
                                            "about 2.9 ")
    assert study_findings(study).endswith("beyond the budget; `fer ablation --study long --budget 5` covers them "
                                          "from where it stopped.")
    assert BUDGET == 10


def test_the_study_runs_resumes_and_compares_on_real_images(tiny_dataset, tmp_path, capsys):
    """Every step for real at a tiny size: rows, EMA and TTA measured in each long run, selection, seed 1."""
    kw = dict(input_size=32, batch_size=8, amp="off", tune_fraction=0.25)
    study = SecondStudy(tmp_path, long_epochs=1, sweep_epochs=1, budget=100, part_c_epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFilesWarning)
        done = study.run(str(tiny_dataset), max_batches=1, **kw)
        final = study.final_row()
        names = {p.name for p in done}
        assert final is not None and f"{final.name}_seed1" in names
        assert "plain_long_seed1" in names  # the final row's second seed, or the baseline at the same schedule
        assert "plain_seed1" in names  # part (c)'s second seed, for the final comparison
        m = json.loads((study.root / "plain_long_seed0" / "metrics.json").read_text())
        assert set(m["ema"]) == {"no_tta", "flip_tta"} and m["ema"]["flip_tta"]["tune"]["accuracy"] >= 0
        assert set(variants(study.root / "plain_long_seed0")) == {"raw", "raw + flip", "EMA", "EMA + flip"}
        before = {p: (p / "metrics.json").stat().st_mtime_ns for p in done}
        assert study.run(str(tiny_dataset), max_batches=1, **kw) == done  # nothing left: nothing retrained
        # workers=2 (a large GPU): rows side by side in their own processes, the same plan and the same numbers
        twin = SecondStudy(tmp_path / "twin", long_epochs=1, sweep_epochs=1, budget=100, part_c_epochs=1)
        shutil.copytree(study.path(study.part_c_seed1), twin.path(twin.part_c_seed1))  # not the study's own row
        twin.run(str(tiny_dataset), max_batches=1, workers=2, **kw)
    assert {p: (p / "metrics.json").stat().st_mtime_ns for p in done} == before
    table = study.table()
    assert list(table["row"][:2]) == ["plain_long", "smoothing_long"] and table["cost"].sum() == pytest.approx(
        study.spent())
    assert twin.plan() == study.plan() and not twin.todo()
    same = [c for c in table if c.startswith(("tune", "validation")) or c in ("row", "seed", "selected")]
    pd.testing.assert_frame_equal(twin.table()[same], table[same])
    assert study.final_comparison() is None  # part (c)'s seed-0 run is not in this results folder
    assert study_findings(study) == f"The study has spent {study.spent():.1f} of its 100 plain 30-epoch runs."
    assert study.deliver(str(tiny_dataset)) is None and delivery_findings(study).startswith("No model is delivered")

    # delivery: the final row's seed-0 model in the variant tune chose, checked against the paper's budget
    shutil.copytree(tmp_path / "ablation" / "final30" / "plain_seed1", tmp_path / "light_vgg")  # part (c)'s
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFilesWarning)
        out = study.deliver(str(tiny_dataset))
    variant, acc = best_variant(study.path(final))
    m = json.loads((out / "metrics.json").read_text())
    assert out == tmp_path / "light_vgg_final" and (out / "best.pt").exists()
    assert (out / "figures" / "roc_tune.png").exists() and (out / "figures" / "history.png").exists()
    assert {k: m["delivered_from"][k] for k in ("run", "variant")} == {"run": f"ablation/long1/{final.folder}",
                                                                         "variant": variant}
    assert m["accuracy"] == pytest.approx(acc["validation"])  # the same weights, data and split as the row's
    b = m["budget"]
    # both ratios timed in one call; their order is left to an idle machine (a smoke run times a few passes)
    assert b["parameters"] == m["parameters"]["total"] and b["flip_latency_ratio"] > 0 and b["latency_ratio"] > 0
    assert b["parameters"] < 3_750_000 and b["input_size"] == 32 and b["within"] is (b["latency_ratio"] <= 1.5)
    written = (out / "metrics.json").stat().st_mtime_ns
    assert study.deliver(str(tiny_dataset)) == out and (out / "metrics.json").stat().st_mtime_ns == written  # kept
    history = tmp_path / "light_vgg" / "history.json"
    history.write_text(history.read_text() + "\n")  # part (c)'s model trained again: delivered again
    (out / "cam").mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFilesWarning)
        assert study.deliver(str(tiny_dataset)) == out and not (out / "cam").exists()  # replaced whole
    # the budget's latencies were read from the group timed for the first delivery (RESULTS/latency.json)
    assert json.loads((out / "metrics.json").read_text())["budget"] == b
    assert len(json.loads((tmp_path / "latency.json").read_text())["groups"]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFilesWarning)
        (tmp_path / "light_vgg" / "best.pt").unlink()
        history.write_text(history.read_text() + "\n")
        with pytest.raises(FERError, match="light_vgg/best.pt is missing"):
            study.deliver(str(tiny_dataset))
    assert (out / "best.pt").exists() and not (tmp_path / ".light_vgg_final.partial").exists()  # left as it was
    text = delivery_findings(study)
    assert text.startswith(f"The delivered model is `{final.name}`, seed 0, with its {variant} weights, "
                           f"saved in `light_vgg_final/`: {100 * m['accuracy']:.1f}% validation")



def test_the_protocol_is_said_from_the_study_s_own_numbers(tmp_path):
    from facial_expression.findings import protocol
    study = SecondStudy(tmp_path, budget=7.5, long_epochs=45)
    text = protocol(study.rules())
    assert text.count("\n") == 6 and text.startswith("1. Every kept row is trained on the full schedule (45 epochs)")
    assert "at most 7.5 plain 30-epoch runs" in text and "beat the plain 45-epoch row by more than 1 point" in text
    assert "at most 3.75M parameters" in text and "1.5× the plain model's" in text and "at least 3 points" in text
