"""The `fer` command: train, evaluate, explain and report (`fer --help` lists every subcommand)."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from dataclasses import fields
from pathlib import Path

from .config import TrainConfig
from .errors import FERError, error_line


def _none_or_int(s: str) -> int | None:
    return None if s.lower() in ("none", "0") else int(s)


# `fer train`'s options in --help order: TrainConfig field -> help text. The option's default, its choices
# (TrainConfig.CHOICES) and its type come from the dataclass; a bool field is a switch. Fields not listed
# here (betas, eval_batch_size) have no option.
TRAIN_HELP = {
    "model": "the network",
    "data": "dataset root (default: $FER_DATA, then data/affectnet)",
    "out": "output folder (default: results/<model>)",
    "classes": "names for numeric class folders 0..K-1: 'a,b,...' or 'affectnet' (default: classes.txt)",
    "epochs": "epochs",
    "batch_size": "batch size",
    "lr": "learning rate (the peak of onecycle and cosine)",
    "optimizer": "optimizer",
    "weight_decay": "weight decay",
    "momentum": "SGD momentum",
    "schedule": "learning-rate schedule",
    "warmup_epochs": "linear warm-up of cosine",
    "label_smoothing": "label smoothing",
    "class_weights": "inverse-frequency class weights",
    "mix": "batch-level MixUp/CutMix (both: one of the two per batch)",
    "mix_alpha": "Beta(alpha, alpha) of MixUp/CutMix",
    "tta": "report metrics with flip test-time augmentation",
    "patience": "early-stopping patience (epochs)",
    "ema": "decay per optimiser step of an EMA of the weights, saved as ema.pt (0: off)",
    "augment": "augmentation policy",
    "augment_backend": "auto: batched, except TrivialAugment (v2) and a resumed run (its own); v2: torchvision per "
                       "image; batched: whole batches on the training device (BatchAugment)",
    "tune_fraction": "share of train carved out as the tune split",
    "input_size": "default: 128 LightVGG, 224 VGG16",
    "batch_norm": "LightVGG: batch-norm after each layer",
    "dropout": "LightVGG: dropout after dense layers",
    "gaussian_dropout": "LightVGG: Gaussian dropout after each pool",
    "head": "LightVGG: the paper's dense head or global average pooling",
    "mask": "LightVGG: multiply the input by a soft face ellipse",
    "weights": "VGG16: imagenet | none | PATH to a .pth file",
    "freeze": "VGG16: the layers kept frozen",
    "head_lr_mult": "VGG16: the new head's learning rate over the body's",
    "seed": "seed",
    "device": "auto | cpu | cuda | mps",
    "amp": "mixed precision",
    "max_batches": "smoke runs: batches per epoch",
}
# how a command-line string becomes each field type (TrainConfig's annotations are strings)
PARSERS = {"int": int, "float": float, "str": str, "str | None": str, "int | None": _none_or_int}


def _add_train_args(p: argparse.ArgumentParser) -> None:
    d, types = TrainConfig(), {f.name: f.type for f in fields(TrainConfig)}
    for name, help_text in TRAIN_HELP.items():
        flag, default = "--" + name.replace("_", "-"), getattr(d, name)
        if types[name] == "bool":
            p.add_argument(flag, action="store_true", help=help_text)
        elif name in TrainConfig.CHOICES:
            p.add_argument(flag, choices=TrainConfig.CHOICES[name], default=default, help=help_text)
        else:
            p.add_argument(flag, type=PARSERS[types[name]], default=default, help=help_text)
    p.add_argument("--no-resume", action="store_true", help="start over even if OUT/last.pt exists")


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in --help, except where the help text already says what the default is, or there is none."""

    def _get_help_string(self, action):
        if "(default:" in (action.help or "") or action.default is None or action.default is False \
                or action.default == argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The `fer` parser; every option has a help text, so --help shows every default."""
    parser = argparse.ArgumentParser(prog="fer", description=__doc__, formatter_class=_Help)
    sub = parser.add_subparsers(dest="command", required=True,
                                parser_class=functools.partial(argparse.ArgumentParser, formatter_class=_Help))
    results = argparse.ArgumentParser(add_help=False)  # --results of `results`, `report-tables` and `report`
    results.add_argument("--results", default=None,
                         help="results folder to read (default: $FER_RESULTS or results/; the development "
                              "sample's: examples/affectnet7_sample)")

    p = sub.add_parser("stats", help="split statistics of a dataset")
    p.add_argument("data", nargs="?", default=None, help="dataset root (default: $FER_DATA)")
    p.add_argument("--tune-fraction", type=float, default=TrainConfig.tune_fraction, help=TRAIN_HELP["tune_fraction"])
    p.add_argument("--seed", type=int, default=0, help="seed of the tune split")
    p.add_argument("--json", default=None, help="also write the statistics to this JSON file")

    p = sub.add_parser("train", help="train a model and evaluate it on every split")
    _add_train_args(p)

    p = sub.add_parser("evaluate", help="evaluate a checkpoint on a folder of class folders")
    p.add_argument("--checkpoint", required=True, help="a best.pt, last.pt or ema.pt, or an .onnx from fer export")
    p.add_argument("--data", required=True, help="a dataset root (its validation split) or a class-folder dir")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--batch-size", type=int, default=256, help="batch size")
    p.add_argument("--max-batches", type=_none_or_int, default=None, help="smoke runs: batches evaluated")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")

    p = sub.add_parser("cam", help="Grad-CAM grids of right and wrong validation faces")
    p.add_argument("--checkpoint", required=True, help="a best.pt, last.pt or ema.pt")
    p.add_argument("--data", default=None, help="dataset root or class-folder dir (default: $FER_DATA)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--per-class", type=int, default=2, help="correct and wrong faces per class")
    p.add_argument("--max-batches", type=_none_or_int, default=None, help="smoke runs: batches predicted")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")

    p = sub.add_parser("predict", help="find the faces in photos and classify their expressions")
    p.add_argument("path", help="an image file or a folder of images")
    p.add_argument("--checkpoint", required=True, help="a best.pt, last.pt or ema.pt, or an .onnx from fer export")
    p.add_argument("--out", default="predictions", help="folder for the annotated images and predictions.json")
    p.add_argument("--cam", action="store_true", help="also write each face's Grad-CAM overlay")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")

    p = sub.add_parser("export", help="a checkpoint as an ONNX model (and an int8 one), checked against PyTorch")
    p.add_argument("--checkpoint", required=True, help="a best.pt, last.pt or ema.pt")
    p.add_argument("--out", required=True, help="folder for model.onnx, model.int8.onnx and export.json")
    p.add_argument("--int8", action="store_true",
                   help="also write the int8 model, statically quantised on tune faces (never validation)")
    p.add_argument("--data", default=None,
                   help="dataset root whose tune split gives the check and calibration faces (default: $FER_DATA, "
                        "then the data the checkpoint was trained on)")

    p = sub.add_parser("summary", help="torchinfo summary and parameter counts")
    p.add_argument("--model", choices=("light-vgg", "vgg16"), default="light-vgg", help="the network")
    p.add_argument("--num-classes", type=int, default=8, help="width of the output layer")
    p.add_argument("--input-size", type=int, default=None, help="default: the model's own")
    p.add_argument("--batch-norm", action="store_true", help="LightVGG: batch-norm after each layer")

    p = sub.add_parser("ablation", help="part (d): train ablation rows of LightVGG, then print the table")
    p.add_argument("--study", choices=("screen", "long"), default="screen",
                   help="screen: the first study (rows of changes, --rows or --combine); long: the second study, "
                        "full-schedule rows chosen on tune within --budget (study.py), resumable")
    p.add_argument("--out", default=None, help="folder of the study; runs go to OUT/<row>_seed<seed>/ "
                                               "(default for --study long: RESULTS/ablation/long60)")
    p.add_argument("--results", default=None, help="--study long: the results folder that holds part (c)'s "
                                                   "runs and the screening (default: $FER_RESULTS or results/)")
    p.add_argument("--budget", type=float, default=None,
                   help="--study long: plain 30-epoch runs it may spend (default: 10)")
    p.add_argument("--workers", type=int, default=1,
                   help="rows trained at the same time, each in its own process (a large GPU)")
    p.add_argument("--rows", nargs="*", default=None,
                   help="changes to try one at a time on the plain model (default: all; 'plain' is the baseline)")
    p.add_argument("--combine", nargs=2, metavar=("NAME", "CHANGES"), default=None,
                   help="instead of --rows, one row NAME with the comma-separated CHANGES together")
    p.add_argument("--deliver", default=None,
                   help="with --combine: the seed-0 run goes to this folder (e.g. results/light_vgg_combined)")
    p.add_argument("--epochs", type=int, default=30, help="epochs of each run")
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size, help="batch size")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per row and seed")
    p.add_argument("--data", default=None, help="dataset root (default: $FER_DATA)")
    p.add_argument("--max-batches", type=_none_or_int, default=None, help="smoke runs: batches per epoch")
    p.add_argument("--table", action="store_true", help="only print the table of the finished runs")

    p = sub.add_parser("notebooks", help="execute the P5 notebooks in order with papermill")
    p.add_argument("--smoke", action="store_true",
                   help="1 epoch, 2 batches, random VGG16 allowed; writes into --output-dir or a temp folder")
    p.add_argument("--demo", action="store_true",
                   help="no dataset needed: the four notebooks in smoke mode on a generated course-shaped set, into "
                        "--output-dir (default: fer-demo/), zipped as a cloud run's; notebooks/ and results/ are "
                        "untouched and every number means nothing")
    p.add_argument("--only", nargs="*", default=None, help="notebook names (default: all four)")
    p.add_argument("--output-dir", default=None,
                   help="with --smoke: folder for the executed copies and results (default: a temporary one)")
    p.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="a notebook parameter, e.g. -p epochs 30 -p data /path (values parsed as JSON if they can be)")
    p.add_argument("--report", action="store_true",
                   help="then build report/report.pdf from the same results (TeX is checked before any notebook runs)")
    p.add_argument("--zip", default=None, metavar="FILE",
                   help="then zip the results folder and the executed notebooks into FILE, for download")

    p = sub.add_parser("results", help="the README's results table from results/*/metrics.json", parents=[results])
    p.add_argument("--readme", action="store_true",
                   help="also write the tables into README.md, between its results:start/end markers")
    sub.add_parser("report-tables", help="LaTeX tables, macros and figures for report/ from results/",
                   parents=[results])
    sub.add_parser("report", help="report-tables, then build report/report.pdf with latexmk and check it",
                   parents=[results])
    p = sub.add_parser("badges", help="write the repository's Open-in-Colab badges into README and the notebooks")
    p.add_argument("--repo-url", default=None,
                   help="your repository, e.g. https://github.com/<user>/<repo> (default: pyproject.toml's)")
    p = sub.add_parser("submission", help="check the project against its results ($FER_RESULTS or results/) and "
                                          "build dist/<StudentID>_HW04.zip")
    p.add_argument("--from", dest="source", nargs="+", default=None, metavar="ZIP_OR_FOLDER",
                   help="a cloud run: the zip of `fer notebooks --zip`, Kaggle's Output or a results folder from "
                        "Drive (and the notebooks downloaded beside it); put in place, then the report from its "
                        "results alone (no dataset needed), then the zip")
    allow_help = {"placeholder": "accept the placeholder identity (CI only)",
                  "other_data": "hand in notebooks executed on other data or into another results folder",
                  "sample": "hand in the development sample's notebooks or results",
                  "smoke": "hand in smoke runs (a few batches an epoch)",
                  "interrupted": "hand in runs stopped before their last epoch",
                  "mixed": "hand in a results folder whose runs saw different data"}
    for name, help_text in allow_help.items():  # submission.Allow's fields (not imported here: --help stays fast)
        p.add_argument("--allow-" + name.replace("_", "-"), dest=f"allow_{name}", action="store_true", help=help_text)
    p.add_argument("--skip-rerun", action="store_true", help="do not rerun the zip's notebooks in smoke mode")
    p.add_argument("--data", default=None, help="dataset for the smoke rerun (default: $FER_DATA, else a small "
                                                "generated one)")
    p.add_argument("--out", default=None, help="output folder (default: dist/)")
    return parser


def _config_from_args(args) -> TrainConfig:
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in names})


def _results_dir(args) -> Path:
    from .config import RESULTS_DIR
    return Path(args.results) if args.results else RESULTS_DIR


def cmd_stats(args) -> None:
    from .data import load_splits, split_statistics, statistics_table
    from .evaluation import save_json
    # decoded at the light VGG's input size, as P5_a and training do: one cached copy serves all three
    splits = load_splits(args.data, TrainConfig().resolved_input_size(), args.tune_fraction, args.seed)
    stats = split_statistics(splits)
    print(f"dataset: {stats['root']}")
    print(statistics_table(stats).to_string())
    print(f"image sizes: {stats['image_sizes']}")
    print(f"colour modes: {stats['colour_modes']}")
    if args.json:
        print(f"wrote {save_json(stats, Path(args.json))}")


def cmd_train(args) -> None:
    """Train and evaluate one run; under torchrun (`torchrun --nproc_per_node=2 -m facial_expression train ...`)
    every process trains and rank 0 alone evaluates, writes and prints the summary."""
    from .experiment import run_experiment
    from .runtime import end_distributed
    cfg = _config_from_args(args)
    try:
        result = run_experiment(cfg, resume=not args.no_resume)
    finally:
        end_distributed()
    if result.metrics:  # rank 0 alone
        m, state = result.metrics["validation"], " (interrupted)" if result.history.interrupted else ""
        print(f"validation{state}: accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  "
              f"macro-AUC {m['macro_auc']:.4f}  (best tune epoch {result.history.best_epoch})")
        print(f"wrote {result.out_dir}/ (config.json, history.json, metrics.json, best.pt, last.pt, figures/)")
    if result.history.interrupted:
        raise SystemExit(130)


def cmd_evaluate(args) -> None:
    from .experiment import evaluate_checkpoint
    m = evaluate_checkpoint(args.checkpoint, args.data, args.out, args.batch_size, args.max_batches, args.device)
    print(f"{m['n']} images: accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  "
          f"macro-AUC {m['macro_auc'] if m['macro_auc'] is None else round(m['macro_auc'], 4)}")
    print(f"wrote {args.out}/ (metrics.json, predictions.npz, classification_report.txt, figures/)")


def cmd_cam(args) -> None:
    from .cam import cam_report
    if Path(args.checkpoint).suffix.lower() == ".onnx":
        raise FERError("Grad-CAM needs the PyTorch checkpoint (.pt): an ONNX model gives no gradients")
    paths = cam_report(args.checkpoint, args.data, args.out, args.per_class, args.max_batches, args.device)
    print("wrote " + ", ".join(str(p) for p in paths))


def cmd_predict(args) -> None:
    from .predict import predict_path
    faces = predict_path(args.path, args.checkpoint, args.out, args.cam, args.device)
    for f in faces:
        print(f"{f['file']} face {f['face']} {f['box']}: {f['label']} {f['confidence']:.2f}")
    n = len({f["file"] for f in faces})
    print(f"wrote {args.out}/ ({n} annotated image{'' if n == 1 else 's'}, predictions.json"
          f"{', Grad-CAM overlays' if args.cam and faces else ''})")


def cmd_export(args) -> None:
    from .export import export_checkpoint
    export_checkpoint(args.checkpoint, args.out, args.data, args.int8)
    print(f"wrote {args.out}/ ({'model.onnx, model.int8.onnx' if args.int8 else 'model.onnx'}, export.json)")


def cmd_summary(args) -> None:
    from .models import build_model, count_parameters, summary
    opts = {"input_size": args.input_size} if args.input_size else {}
    if args.model == "vgg16":
        opts["weights"] = None  # architecture only: no download needed
    else:
        opts["batch_norm"] = args.batch_norm
    model = build_model(args.model, args.num_classes, **opts)
    print(summary(model))
    print(json.dumps(count_parameters(model)))


def cmd_ablation(args) -> None:
    from .study import CHANGES, screening, screening_table, seeds_table
    if args.study == "long":
        return _second_study(args)
    if not args.out:
        raise FERError("--out is needed for --study screen")
    dirs = {}
    if args.combine:
        name, changes = args.combine
        rows = {name: [c.strip() for c in changes.split(",") if c.strip()]}
        if args.deliver:
            dirs[f"{name}_seed0"] = args.deliver
    else:
        names = args.rows or list(CHANGES)
        unknown = [n for n in names if n not in CHANGES]
        if unknown:
            raise FERError(f"unknown rows {', '.join(unknown)}; choose from {', '.join(CHANGES)}")
        rows = {n: [] if n == "plain" else [n] for n in names}
    study = screening(rows, args.out, args.epochs, tuple(args.seeds), dirs)
    if not args.table:
        study.run(args.data, max_batches=args.max_batches, workers=args.workers, batch_size=args.batch_size)
    if args.combine:
        print(seeds_table({name: [study.path(r) for r in study.plan()]}).to_string())
    else:
        print(screening_table(args.out).to_string(float_format=lambda v: f"{v:.4f}"))


def _second_study(args) -> None:
    from .findings import study_findings
    from .study import BUDGET, SecondStudy
    study = SecondStudy(_results_dir(args), args.out, BUDGET if args.budget is None else args.budget)
    if not args.table:
        study.run(args.data, max_batches=args.max_batches, workers=args.workers, batch_size=args.batch_size)
    print(study.table().to_string(float_format=lambda v: f"{v:.4f}"))
    final = study.final_comparison()
    if final is not None:
        print(final.to_string())
    print(study_findings(study))
    if not args.table and (delivered := study.deliver(args.data)) is not None:
        print(f"delivered: {delivered}")


def cmd_notebooks(args) -> None:
    from .config import RESULTS_DIR
    from .notebooks import NOTEBOOKS, run_notebooks, zip_outputs
    from .report import missing_tex
    params = {}
    for name, value in args.param:
        try:
            params[name] = json.loads(value)
        except json.JSONDecodeError:
            params[name] = value
    if args.demo:
        from .notebooks import run_demo
        if args.param or args.report or args.zip or args.only:
            raise FERError("--demo takes only --output-dir: it runs all four notebooks on its own generated set")
        written, zipped = run_demo(args.output_dir or "fer-demo")
        print(f"wrote {', '.join(str(p) for p in written)} and {zipped} (the hand-in path from a cloud run: "
              f"`fer submission --from {zipped} --allow-smoke` puts them in notebooks/ and results/)")
        return
    if args.report and missing_tex():  # say so now, not after hours of training
        raise FERError(missing_tex())
    written = run_notebooks(args.only or NOTEBOOKS, params, args.smoke, args.output_dir)
    print("wrote " + ", ".join(str(p) for p in written))
    results = (Path(params["results"]).resolve() if params.get("results")
               else Path(written[0]).parent / "results" if args.smoke else RESULTS_DIR)
    if args.report:
        from .report import build_report
        print(f"wrote {build_report(results)}")
    if args.zip:
        print(f"wrote {zip_outputs(results, written, args.zip)}")
    if not args.smoke:  # what the hand-in would refuse, said now rather than at `fer submission`
        from .submission import results_problems
        problems, notes = results_problems(results)
        for line in problems + notes:
            print(f"note: {line}")


def cmd_results(args) -> None:
    from .readme import results_section, write_results
    print(results_section(_results_dir(args)))
    if args.readme:
        print(f"wrote {write_results(_results_dir(args))}")


def cmd_report_tables(args) -> None:
    # the first half of report.build_report, which goes on to build the PDF
    from .report import write_analytic_figures, write_report_inputs
    results = _results_dir(args)
    written = write_report_inputs(results) + write_analytic_figures()
    print(f"wrote {len(written)} files under report/ (generated/ and figures/) from {results}")


def cmd_report(args) -> None:
    from .report import build_report
    print(f"wrote {build_report(_results_dir(args))}")


def cmd_badges(args) -> None:
    from .notebooks import write_badges, write_environment_cells
    written = write_badges(args.repo_url) + write_environment_cells()
    print("wrote " + ", ".join(str(p) for p in dict.fromkeys(written)))


def cmd_submission(args) -> None:
    from .submission import Allow, build_submission, submission_from
    allow = Allow(**{f.name: getattr(args, f"allow_{f.name}") for f in fields(Allow)})
    if args.source:
        submission_from([Path(s) for s in args.source], allow=allow, out_dir=args.out, rerun=not args.skip_rerun,
                        data=args.data)
    else:
        build_submission(out_dir=args.out, allow=allow, rerun=not args.skip_rerun, data=args.data)


COMMANDS = {"stats": cmd_stats, "train": cmd_train, "evaluate": cmd_evaluate, "cam": cmd_cam, "summary": cmd_summary,
            "ablation": cmd_ablation, "notebooks": cmd_notebooks, "results": cmd_results,
            "report-tables": cmd_report_tables, "report": cmd_report, "badges": cmd_badges,
            "submission": cmd_submission, "predict": cmd_predict, "export": cmd_export}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except FERError as e:  # the errors a user can fix; any other exception is a bug and keeps its traceback
        print(error_line(e, args.command), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fer {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
