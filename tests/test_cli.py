import json
import re
import subprocess
import sys

import pytest
from conftest import real_subset

from facial_expression.cli import TRAIN_HELP, _config_from_args, build_parser, main
from facial_expression.config import TrainConfig


def fer(*args, env=None):
    return subprocess.run([sys.executable, "-m", "facial_expression", *map(str, args)],
                          capture_output=True, text=True, env=env)


def test_help_lists_every_command_with_defaults():
    import argparse
    from facial_expression.cli import COMMANDS
    sub, = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    registered = dict(sub.choices)  # every subcommand build_parser() registers
    assert len(registered) >= 11 and set(registered) == set(COMMANDS)  # every command has a handler, and back
    top = fer("--help")
    assert top.returncode == 0
    listed = top.stdout.split("options:")[0]
    for cmd in registered:  # each with its own help line
        assert re.search(rf"^\s+{re.escape(cmd)}\s+\S", listed, re.M), cmd
    procs = {cmd: subprocess.Popen([sys.executable, "-m", "facial_expression", cmd, "--help"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for cmd in registered}
    for cmd, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, (cmd, err)
        assert out.startswith(f"usage: {registered[cmd].prog}") and "-h, --help" in out, cmd
    assert "(default: 30)" in fer("train", "--help").stdout


def test_train_options_come_from_the_config_with_their_help():
    parser = build_parser()
    assert _config_from_args(parser.parse_args(["train"])) == TrainConfig()  # every default is the dataclass's
    train = parser._subparsers._group_actions[0].choices["train"]
    options = {a.dest: a for a in train._actions}
    for name, choices in TrainConfig.CHOICES.items():
        assert tuple(options[name].choices) == choices
    assert set(TRAIN_HELP) <= set(options) and all(options[n].help == TRAIN_HELP[n] for n in TRAIN_HELP)
    cfg = _config_from_args(parser.parse_args(["train", "--model", "vgg16", "--weights", "none", "--tta",
                                               "--patience", "3", "--input-size", "64", "--lr", "1e-4"]))
    assert (cfg.weights, cfg.tta, cfg.patience, cfg.input_size, cfg.lr) == (None, True, 3, 64, 1e-4)


def test_every_option_of_every_command_has_help():
    for sub in build_parser()._subparsers._group_actions[0].choices.values():
        assert all(a.help for a in sub._actions), sub.prog


def test_report_commands_share_the_results_option():
    parser = build_parser()
    for command in ("results", "report-tables", "report"):
        assert parser.parse_args([command, "--results", "x"]).results == "x"


def test_only_the_projects_errors_are_one_line(monkeypatch, capsys):
    from facial_expression import cli
    from facial_expression.errors import ConfigError

    def bug(args):
        raise ValueError("a bug")

    monkeypatch.setitem(cli.COMMANDS, "stats", bug)
    with pytest.raises(ValueError, match="a bug"):  # a bug keeps its traceback
        main(["stats"])

    def bad_setting(args):
        raise ConfigError("unknown mix 'blend'")

    monkeypatch.setitem(cli.COMMANDS, "stats", bad_setting)
    assert main(["stats"]) == 2
    assert capsys.readouterr().err == "fer stats: error: unknown mix 'blend'\n"


def test_expected_errors_are_one_line_without_traceback(tmp_path, capsys):
    assert main(["stats", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.strip() == (f"fer stats: error: dataset folder {tmp_path / 'missing'} does not "
                                               f"exist ({tmp_path} holds: nothing, the folder is empty)")
    # and from the command line, in a process of its own: exit status 2, one line, no traceback
    r = fer("evaluate", "--checkpoint", tmp_path / "none.pt", "--data", tmp_path, "--out", tmp_path / "o")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "does not exist" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_summary_prints_the_parameter_count(capsys):
    assert main(["summary", "--model", "light-vgg", "--num-classes", "8"]) == 0
    out = capsys.readouterr().out
    assert '"total": 3744664' in out


def test_stats_on_the_synthetic_set(tiny_dataset, tmp_path, capsys):
    assert main(["stats", str(tiny_dataset), "--json", str(tmp_path / "s.json")]) == 0
    stats = json.loads((tmp_path / "s.json").read_text())
    # 36 readable training faces (12 a class; the broken files are skipped); tune is a stratified tenth, rounded up
    # to at least one face of each class
    assert stats["totals"] == {"train": 32, "tune": 4, "validation": 12}
    tune = stats["per_class"]["tune"]
    assert set(tune) == {"angry", "happy", "sad"} and min(tune.values()) >= 1
    assert stats["per_class"]["validation"] == {"angry": 4, "happy": 4, "sad": 4}
    assert sum(stats["per_class"]["train"].values()) + sum(stats["per_class"]["tune"].values()) == 36


@pytest.mark.slow
def test_real_data_train_evaluate_cam_smoke(real_data, tmp_path):
    """One epoch of 2 batches on real faces, then evaluate and CAM the checkpoint: the sample's first 20 training
    and 20 validation files of each class, copied (decoding and evaluating all 8,400 took over a minute)."""
    real_data = real_subset(real_data, tmp_path / "sample", {"train": 20, "validation": 20})
    run = tmp_path / "run"
    assert main(["train", "--data", str(real_data), "--epochs", "1", "--max-batches", "2",
                 "--out", str(run)]) == 0
    for name in ("config.json", "history.json", "metrics.json", "best.pt", "last.pt", "split_stats.json",
                 "figures/history.png", "figures/roc_validation.png", "figures/confusion.png",
                 "figures/confusion.pdf"):
        assert (run / name).exists(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"accuracy", "macro_f1", "macro_auc", "classes", "confusion_matrix", "per_class"} <= set(metrics)
    assert len(metrics["classes"]) == 7 and metrics["splits"]["train"]["n"] > 0
    assert main(["evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(real_data),
                 "--out", str(tmp_path / "eval"), "--batch-size", "64", "--max-batches", "1"]) == 0
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["n"] == 64  # one batch of the 140
    assert main(["cam", "--checkpoint", str(run / "best.pt"), "--data", str(real_data),
                 "--out", str(tmp_path / "cam"), "--max-batches", "2"]) == 0
    assert (tmp_path / "cam" / "cam_correct.png").exists() and (tmp_path / "cam" / "cam_wrong.png").exists()


@pytest.mark.filterwarnings("ignore::facial_expression.data.SkippedFilesWarning")
def test_ablation_command_screens_and_combines(tiny_dataset, tmp_path, capsys):
    common = ["--data", str(tiny_dataset), "--epochs", "1", "--max-batches", "1", "--batch-size", "8"]
    # tiny 32x32 images: the model is still built at 128, the images are resized up on decoding
    assert main(["ablation", "--out", str(tmp_path / "screen"), "--rows", "plain", "gap_head", *common]) == 0
    assert "tune Δ" in capsys.readouterr().out
    assert main(["ablation", "--out", str(tmp_path / "final"), "--combine", "best", "gap_head,label_smoothing",
                 "--deliver", str(tmp_path / "delivered"), *common]) == 0
    assert json.loads((tmp_path / "delivered" / "config.json").read_text())["head"] == "gap"
    assert "best" in capsys.readouterr().out
    assert main(["ablation", "--out", str(tmp_path / "x"), "--rows", "wider"]) == 2
    assert main(["ablation", "--out", str(tmp_path / "big"), "--rows", "plain", "--batch-size", "512",
                 "--data", str(tiny_dataset), "--epochs", "1"]) == 2  # fewer images than one batch
