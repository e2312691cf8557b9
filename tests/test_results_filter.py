"""Which metrics.json files are results: one rule (runs.is_training_result) for README, report and zip;
a run stopped early is one, marked as such."""

import json

import pytest

from facial_expression.readme import results_markdown
from facial_expression.runs import is_smoke_run, is_training_result
from facial_expression.submission import report_number_problems

FINISHED = {"model": "light-vgg", "epochs_run": 3, "best_epoch": 2, "max_batches": None, "accuracy": 0.5,
            "macro_f1": 0.4, "macro_auc": 0.7, "parameters": {"total": 1000}, "wall_seconds": 60, "device": "cpu"}
SMOKE = {**FINISHED, "max_batches": 2, "accuracy": 0.25}
STOPPED = {**FINISHED, "epochs_run": 2, "interrupted": True}  # Ctrl-C in epoch 3: the best of 2 epochs
EVALUATION = {"model": "light-vgg", "checkpoint": "best.pt", "accuracy": 0.75}  # `fer evaluate`: no epochs_run


@pytest.mark.parametrize("metrics,finished,smoke", [(FINISHED, True, False), (STOPPED, True, False),
                                                    (SMOKE, False, True), (EVALUATION, False, False)])
def test_finished_runs_are_training_runs_that_are_no_smoke_runs(metrics, finished, smoke):
    assert is_training_result(metrics) is finished and is_smoke_run(metrics) is smoke


def _results(tmp_path):
    for name, m in (("real", FINISHED), ("stopped", STOPPED), ("smoke", SMOKE), ("evaluation", EVALUATION)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(m))
    return tmp_path


def test_readme_table_and_report_check_skip_the_same_runs(tmp_path):
    results = _results(tmp_path)
    table = results_markdown(results)
    assert "`real`" in table and "`smoke`" not in table and "`evaluation`" not in table
    assert "| `real` | light-vgg | 3 (2) |" in table and "| `stopped` | light-vgg | 2 (2), interrupted |" in table
    # the hand-in checks the runs whose accuracy the report states, parts (b) and (c), with the same rule
    reported = tmp_path / "reported"
    for name, m in (("light_vgg", FINISHED), ("vgg16_transfer", SMOKE)):
        (reported / name).mkdir(parents=True)
        (reported / name / "metrics.json").write_text(json.dumps(m))
    problems = report_number_problems(["nothing of note"], reported)
    assert len(problems) == 1 and "light_vgg's accuracy 50.0 %" in problems[0]  # the smoke run is no result
    assert report_number_problems(["accuracy 50.0 %"], reported) == []
