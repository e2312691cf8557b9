"""Findings as prose, generated from saved results: the one source of analysis text for notebooks and report.

Every function takes what a run saved (metrics.json, history.json, split_stats.json, comparison.json, the CAM
json files, the ablation tables) and returns a short paragraph whose every claim follows from those numbers,
for any dataset. `fmt="md"` gives Markdown for the notebooks, `fmt="tex"` LaTeX for the report (escaped,
class names in \\texttt). Missing input gives a plain "not run yet" sentence (or "" where nothing applies).
A run's settings table lives here too; the markup and the tables' rendering are in text.py.
"""

from __future__ import annotations

import math

import pandas as pd

from .config import AREA, LONG_EPOCHS, MIN_GAIN, PAPER_FPS, SE, AugmentConfig, TrainConfig
from .text import Fmt, join

DEV_SAMPLE_NAME = "affectnet7"  # the development sample that ships with the project (../shared/data/affectnet7)
OVERFIT_GAP = 0.05  # a train-validation accuracy gap above this is called overfitting
AGREE = 0.02  # tune and validation accuracies closer than this "agree"
IMBALANCE = 1.5  # max/min images per class above this is called imbalanced
REGION_TOL = 0.03  # CAM shares within this of the area share are "about the same"
FACE_MARGIN = 0.10  # a border share this far below its area share is "clearly" on the face
STYLE_TOL = 0.05  # photo-style rates within this of each other are "about the same"
TUNE_GAIN, VAL_GAIN = "tune \u0394", "val. \u0394"  # screening-table columns: accuracy gained over plain
INPUTS = {"the light VGG": 128, "VGG16": 224}  # model input sides (pixels) the images are resized to

def _compare(a: float, b: float, tol: float) -> str:
    """'more than', 'less than' or 'about the same as' for a against b."""
    if a > b + tol:
        return "more than"
    if a < b - tol:
        return "less than"
    return "about the same as"


def has_photo_marker(fp: dict | None) -> bool:
    """Whether the dataset holds FFHQ portraits (files named ffhq_*), i.e. mixes photo sources."""
    return bool(fp) and (fp.get("ffhq_files") or 0) > 0


def is_development_sample(fp: dict | None) -> bool:
    """Whether a fingerprint is the project's development sample (affectnet7 with its FFHQ portraits)."""
    return has_photo_marker(fp) and fp.get("name") == DEV_SAMPLE_NAME


def _sizes(f: Fmt, sizes: dict, total: int | None = None) -> str:
    """'48x48 (8,400 images)' for the three most common original sizes, then how many images have others
    (`total`: all images, where `sizes` lists only the most common)."""
    items = sorted(sizes.items(), key=lambda kv: -kv[1])[:3]
    shown = [f"{f.size(s)} ({f.num(n)} images)" for s, n in items]
    rest = (total or sum(sizes.values())) - sum(n for _, n in items)
    return join(shown + ([f"{f.num(rest)} images of other sizes"] if rest > 0 else []))


def data_sentence(fp: dict | None, fmt: str = "md") -> str:
    """Which data produced the numbers: name, classes, images per split, image sizes (and whether it is the
    development sample)."""
    f = Fmt(fmt)
    if not fp:
        return ("No run in this results folder records its dataset, so the data behind the numbers cannot be "
                "named; rerun them with the current code.")
    classes = fp.get("classes", [])
    if fp.get("counts"):
        splits = join([f"{f.num(sum(c.values()))} {f.t(s)}" for s, c in fp["counts"].items()]) + " images"
    else:  # files per split folder (the tune split is carved out of train/)
        splits = join([f"{f.num(n)}{' images' if i == 0 else ''} in the {f.t(s)} folder"
                        for i, (s, n) in enumerate(fp.get("files", {}).items())])
    name = "The data have" if f.tex else f"The dataset {f.code(fp.get('name', '?'))} has"  # a folder's name
    text = (f"{name} {len(classes)} classes "
            f"({f.codes(classes)})" + (f", {splits}" if splits else ""))
    if fp.get("image_sizes"):
        text += f", original sizes {_sizes(f, fp['image_sizes'], sum(fp.get('files', {}).values()) or None)}."
    else:
        text += "."
    if is_development_sample(fp):
        note = (f"This is the project's development sample, not the course's dataset: a small AffectNet subset "
                f"without {f.code('contempt')}, whose {f.code('happy')} and {f.code('neutral')} images are mostly "
                f"FFHQ portraits (Flickr-Faces-HQ; Karras, Laine and Aila, 2019; {f.num(fp['ffhq_files'])} files). "
                f"Its numbers show the method at work and do not carry over to the course's data.")
        text += f" {note}" if f.tex else f" ({note})"
    return text


def _balance(counts: dict) -> tuple[str, int, str, int, float]:
    lo, hi = min(counts, key=counts.get), max(counts, key=counts.get)
    return lo, counts[lo], hi, counts[hi], counts[hi] / max(counts[lo], 1)


def preprocessing_findings(stats: dict | None, fmt: str = "md", imbalance: float = IMBALANCE,
                           inputs: dict | None = None) -> str:
    """Class balance of the training split and whether the images are up- or downsampled to the model inputs."""
    f = Fmt(fmt)
    if not stats:
        return "The split statistics have not been computed yet: the part (a) notebook computes them."
    out = []
    train = stats["per_class"]["train"]
    lo, n_lo, hi, n_hi, ratio = _balance(train)
    if n_lo == n_hi:
        out.append(f"The training split is exactly balanced, {f.num(n_lo)} images in each of the {len(train)} "
                   f"classes, so inverse-frequency class weights would all be 1 and are not needed.")
    else:
        out.append(f"The training split has between {f.num(n_lo)} ({f.code(lo)}) and {f.num(n_hi)} ({f.code(hi)}) "
                   f"images per class, an imbalance ratio of {ratio:.2f}.")
        if ratio > imbalance:
            out.append(f"That is above {imbalance:g}, enough to bias the network towards the large classes: "
                       f"inverse-frequency class weights in the loss counter it, and macro-F1 is the fairer summary "
                       f"than accuracy.")
        else:
            out.append(f"That is within {imbalance:g}, close enough to balanced that no re-weighting is needed.")
    val = stats["per_class"].get("validation")
    if val:
        vlo, vn_lo, vhi, vn_hi, vratio = _balance(val)
        if vratio > imbalance:
            out.append(f"The validation split is imbalanced too ({f.num(vn_lo)} {f.code(vlo)} against "
                       f"{f.num(vn_hi)} {f.code(vhi)}), so its accuracy weighs the large classes more.")
    sizes = stats.get("image_sizes") or {}
    if sizes:
        out.append(_resizing(f, sizes, inputs or INPUTS))
    modes = {m: n for m, n in (stats.get("colour_modes") or {}).items() if m != "RGB"}
    if modes:
        out.append("Colour modes other than RGB (" + join([f"{f.num(n)} {f.t(m)}" for m, n in modes.items()])
                   + ") are converted to RGB.")
    return " ".join(out)


def _resizing(f: Fmt, sizes: dict, inputs: dict) -> str:
    """Which share of the images each model's input size upsamples, downsamples or leaves as it is."""
    dims = [(tuple(int(v) for v in s.split("x")), n) for s, n in sizes.items()]
    total = sum(n for _, n in dims)
    parts, first, wholes = [], None, []
    for model, side in inputs.items():
        share = {"up": sum(n for (w, h), n in dims if max(w, h) <= side and (w, h) != (side, side)) / total,
                 "down": sum(n for (w, h), n in dims if min(w, h) >= side and (w, h) != (side, side)) / total,
                 "kept": sum(n for (w, h), n in dims if (w, h) == (side, side)) / total}
        share["mixed"] = max(0.0, 1 - sum(share.values()))
        first = first or share
        words = {"up": "upsamples {}", "down": "downsamples {}", "kept": "keeps {} at their size",
                 "mixed": "stretches {} (one side up, one down)"}
        size = f.size(f"{side}x{side}")
        whole = [k for k, v in share.items() if v > 0.999]
        wholes.append(whole[0] if whole else None)
        if whole:
            parts.append(f"{model}'s {size} " + words[whole[0]].format("all of them"))
        else:
            parts.append(f"{model}'s {size} " + join([words[k].format(f.pct(v, 0)) for k, v in share.items()
                                                      if v >= 0.005]))
    if len(set(wholes)) == 1 and wholes[0] is not None and len(wholes) > 1:  # every model resizes them alike
        sides = join([f.size(f"{side}x{side}") for side in inputs.values()])
        parts = ["the inputs of both models (" + sides + ") " + words[wholes[0]].replace("s {}", " {}")
                 .format("all of them")]
    text = f"The original images are {_sizes(f, sizes)}: {'; '.join(parts)}."
    if first["up"] >= 0.5:
        text += (" Upsampling adds no detail, so geometric augmentation is kept mild: shrinking or cropping the face "
                 "would remove information the network never gets back.")
    elif first["down"] >= 0.5:
        text += " Downsampling keeps all the detail a network of that input size can use."
    return text


def class_weight_findings(counts: dict | None, fmt: str = "md") -> str:
    """Whether a class-balanced loss would differ from the plain one, from the training images per class."""
    f = Fmt(fmt)
    if not counts:
        return f"The training counts per class are not available yet: run {f.code('P5_c')}."
    n = list(counts.values())
    w = [sum(n) / (len(n) * max(v, 1)) for v in n]
    w = [v / (sum(w) / len(w)) for v in w]  # normalised to mean 1, as training.class_weights does
    if min(n) == max(n):
        return (f"The class-balanced loss is no row of the screening: the training split has exactly "
                f"{f.num(n[0])} images per class, so its inverse-frequency weights are all 1 and that run would "
                f"repeat {f.code('plain')}.")
    return (f"The class-balanced loss is no row of the screening, but here it would change the loss: the "
            f"training split has {f.num(min(n))} to {f.num(max(n))} images per class, so the inverse-frequency "
            f"weights range from {min(w):.2f} to {max(w):.2f}. Train it separately "
            f"({f.code('fer train --class-weights')}) and compare it on tune like the other rows.")


def _epochs(history) -> list[dict]:
    if history is None:
        return []
    return history.get("epochs", []) if isinstance(history, dict) else list(history)


def top_confusions(metrics: dict, n: int = 5) -> list[dict]:
    """The `n` most frequent errors in one split's metrics, most frequent first: the true class, the
    predicted class, how many faces, and how many faces of that true class there are."""
    cm, names = metrics["confusion_matrix"], metrics["classes"]
    pairs = sorted(((cm[i][j], i, j) for i in range(len(cm)) for j in range(len(cm)) if i != j and cm[i][j] > 0),
                   key=lambda p: -p[0])
    return [{"true": names[i], "predicted": names[j], "count": c, "of": sum(cm[i])} for c, i, j in pairs[:n]]


def training_findings(metrics: dict | None, history=None, fmt: str = "md", name: str = "the light VGG",
                      overfit_gap: float = OVERFIT_GAP, agree: float = AGREE) -> str:
    """Gaps between train, tune and validation, when tune accuracy stopped improving, easiest and hardest
    classes and the most frequent confusions, from one run's metrics.json (and history.json)."""
    f = Fmt(fmt)
    if not metrics:
        return f"{name[0].upper() + name[1:]} has not been run on this data yet."
    if metrics.get("max_batches"):
        return (f"This run of {name} is a smoke run ({metrics['max_batches']} batches per epoch): its numbers only "
                f"show that the code runs, and no finding is drawn from them.")
    out = []
    k = len(metrics["classes"])
    val = metrics["accuracy"]
    support = {c: v["support"] for c, v in metrics["per_class"].items() if c in metrics["classes"]}
    majority = max(support.values()) / max(sum(support.values()), 1)
    chance = (f"{f.pct(1 / k)} for guessing among {k} balanced classes" if majority - 1 / k < 0.005 else
              f"{f.pct(1 / k)} for guessing among {k} classes and {f.pct(majority)} for always answering the "
              f"largest class")
    out.append(f"The chance level is {chance}." if f.tex else  # the report states the accuracy just above
               f"{name[0].upper() + name[1:]} reaches {f.pct(val)} validation accuracy (macro-F1 "
               f"{f.pct(metrics['macro_f1'])}), against {chance}.")
    splits = metrics.get("splits", {})
    if "train" in splits and "tune" in splits:
        train, tune = splits["train"]["accuracy"], splits["tune"]["accuracy"]
        gap = train - val
        text = (f"At the selected epoch ({metrics['best_epoch']} of {metrics['epochs_run']}) the accuracy is "
                f"{f.pct(train)} on the un-augmented training images, {f.pct(tune)} on tune and {f.pct(val)} on "
                f"validation. ")
        if gap > overfit_gap:
            text += f"The train–validation gap of {f.pt(gap)} points shows that the network overfits the training set."
        elif gap < -overfit_gap:
            text += (f"Validation is {f.pt(gap)} points above training accuracy, beyond the "
                     f"{100 * overfit_gap:g}-point threshold: the training images are the harder ones here.")
        else:
            text += (f"The train–validation gap of {f.pts(gap)} points is small: no material overfitting at this "
                     f"epoch.")
        text += (f" Tune and validation agree within {100 * agree:g} points, so the tune split is a fair stand-in "
                 f"for validation." if abs(tune - val) <= agree else
                 f" Tune and validation differ by {f.pt(tune - val)} points ({'tune' if tune > val else 'validation'} "
                 f"higher), more than {100 * agree:g}, so the epoch chosen on tune is not necessarily the best on "
                 f"validation.")
        out.append(text)
    epochs = _epochs(history)
    if epochs:
        n, best = len(epochs), max(epochs, key=lambda e: e["tune_accuracy"])["epoch"]
        last = epochs[-1]
        if best == epochs[-1]["epoch"]:
            text = (f"Tune accuracy was still improving at the last epoch ({n}), so a longer schedule would "
                    f"probably help.")
        elif best == metrics.get("best_epoch"):
            text = ""  # the selected epoch, already named
        else:
            text = f"Tune accuracy peaked at epoch {best} of {n}."
        if "tune_loss" in last and "train_accuracy" in last:
            low = min(epochs, key=lambda e: e["tune_loss"])
            if low["epoch"] < last["epoch"] and last["tune_loss"] > 1.05 * low["tune_loss"]:
                text += (f" The tune loss rose from its minimum of {low['tune_loss']:.3f} (epoch {low['epoch']}) "
                         f"to {last['tune_loss']:.3f}, the usual sign of overfitting.")
            elif best != last["epoch"]:
                flat = epochs[-1]  # the first epoch from which the tune loss stays within 3 % of its minimum
                for e in reversed(epochs):
                    if e["tune_loss"] > 1.03 * low["tune_loss"]:
                        break
                    flat = e
                falling = "train_loss" in flat and last.get("train_loss", 1e9) < 0.95 * flat["train_loss"]
                unit = r"\,\%" if f.tex else "%"
                text += (f" The tune loss has stayed within 3{unit} of its minimum "
                         f"({low['tune_loss']:.3f}) since epoch {flat['epoch']}"
                         + (", while the training loss kept falling" if falling else "")
                         + ": the run has levelled off, but its schedule (one-cycle, as every run here) takes the "
                           "learning rate close to zero at the end, so this does not show that a longer schedule "
                           "would not help.")
        if text:
            out.append(text.strip())
    f1 = sorted(((c, v["f1"]) for c, v in metrics["per_class"].items() if c in metrics["classes"]),
                key=lambda cv: -cv[1])
    m = 2 if k >= 5 else 1
    fmt_f1 = lambda items: join([f"{f.code(c)} ({v:.3f})" for c, v in items])  # noqa: E731
    out.append(f"By validation F1 the easiest {'classes are' if m > 1 else 'class is'} {fmt_f1(f1[:m])} and the "
               f"hardest {fmt_f1(f1[::-1][:m])}" + (f", a spread of {f1[0][1] - f1[-1][1]:.2f}." if k > 1 else "."))
    if metrics.get("confusion_matrix"):
        cm = metrics["confusion_matrix"]
        pairs = top_confusions(metrics, 3)
        errors = sum(sum(row) for row in cm) - sum(cm[i][i] for i in range(k))
        if pairs:
            listed = join([f"{f.code(p['true'])} {f.arrow()} {f.code(p['predicted'])} ({p['count']} of "
                            f"{p['of']} {f.code(p['true'])} faces)" for p in pairs])
            these = {1: "this one accounts", 2: "these two account", 3: "these three account"}[len(pairs)]
            out.append(f"The most frequent confusions (true {f.arrow()} predicted) are {listed}; {these} for "
                       f"{sum(p['count'] for p in pairs)} of the {errors} validation errors.")
    return " ".join(out)


def vgg_not_run(fmt: str = "md") -> str:
    """Part (b) where it has not run (its ImageNet weights need a download)."""
    return ("VGG16 was not trained for this report: the part (b) notebook, which downloads its ImageNet weights, "
            "has no results here, so its curves, ROC curves and confusion matrices are missing and only its size "
            "and speed are compared below.")


def _card(cards, tag: str, word: str) -> dict | None:
    return next((c for c in cards if tag in c.get("model", "")), None) or next(
        (c for c in cards if word.lower() in c.get("model", "").lower()), None)


def card_ran(card: dict | None) -> bool:
    """Whether a model card (comparison.json) is of a trained model."""
    return bool(card) and isinstance(card.get("accuracy"), (int, float))


def _per_second(ms: float) -> str:
    """Faces a second at `ms` per face, with the digits its size needs: '111', '4.3', '0.4'."""
    fps = 1000 / ms
    return f"{fps:,.0f}" if fps >= 10 else f"{fps:.1f}"


def comparison_findings(cards: list[dict] | None, fmt: str = "md", n_validation: int | None = None,
                        smoke: bool = False) -> str:
    """LightVGG (c) against VGG16 transfer (b): size and speed always, accuracy where both ran, with the 95 %
    interval of the difference (two independent binomial errors over `n_validation` faces: an upper bound for
    paired predictions on the same faces); no claim from `smoke` runs."""
    f = Fmt(fmt)
    if not cards:
        return "The two models have not been compared yet: the part (c) notebook compares them."
    light, vgg = _card(cards, "(c)", "light"), _card(cards, "(b)", "vgg16")
    if not light or "parameters" not in light or not vgg or "parameters" not in vgg:
        return "The comparison lacks one of the two models' sizes: rerun the comparison cell of the part (c) notebook."
    ratio = vgg["parameters"] / light["parameters"]
    out = [f"VGG16 has {f.num(vgg['parameters'])} parameters ({f.num(vgg['trainable'])} of them trainable in (b)) "
           f"against {f.num(light['parameters'])} for the light VGG, {ratio:.0f} times as many, and its weights "
           f"take {vgg['fp32_size_MB']:g} MiB against {light['fp32_size_MB']:g} MiB in fp32."]
    if light.get("cpu_latency_ms") and vgg.get("cpu_latency_ms"):
        lat = vgg["cpu_latency_ms"] / light["cpu_latency_ms"]
        out.append(f"One face takes {vgg['cpu_latency_ms']:.4g} ms against {light['cpu_latency_ms']:.4g} ms on the "
                   f"CPU that timed both together, {lat:.0f} times as long: about "
                   f"{_per_second(vgg['cpu_latency_ms'])} faces a second against "
                   f"{_per_second(light['cpu_latency_ms'])}.")
    if card_ran(vgg) and card_ran(light):
        d = vgg["accuracy"] - light["accuracy"]
        text = (f"On accuracy, VGG16 transfer reaches {f.pct(vgg['accuracy'])} on validation against "
                f"{f.pct(light['accuracy'])} for the light VGG")
        if isinstance(vgg.get("macro_f1"), (int, float)) and isinstance(light.get("macro_f1"), (int, float)):
            text += f" (macro-F1 {f.pct(vgg['macro_f1'])} against {f.pct(light['macro_f1'])})"
        n = n_validation or vgg.get("n") or light.get("n")
        se = math.sqrt(sum(c["accuracy"] * (1 - c["accuracy"]) for c in (vgg, light)) / n) if n else None
        unit = r"\,\%" if f.tex else "%"
        unc = f" (± {f.pt(1.96 * se)} at 95{unit} confidence)" if se else ""
        if smoke:  # a few batches (and VGG16's random weights): numbers, no conclusion
            text += f": a difference of {f.pts(d)} points{unc}; these are smoke runs, so no conclusion is drawn."
        elif se is not None and abs(d) <= 1.96 * se:
            text += (f": a difference of {f.pts(d)} points{unc}, no clear effect, so the light VGG matches the "
                     f"pretrained network with {ratio:.0f} times fewer parameters.")
        elif d > 0:
            text += (f": the light VGG gives up {f.pt(d)} points{unc} for a model {ratio:.0f} times smaller. "
                     f"Features learnt on a million ImageNet photos transfer to faces, and a few thousand faces "
                     f"are not enough for the light VGG to learn as good ones from scratch.")
        else:
            text += (f": the light VGG is both smaller and more accurate, by {f.pt(d)} points{unc}. Its filters are "
                     f"learnt on faces at the resolution of these data, while VGG16's frozen convolutions were "
                     f"learnt on other objects.")
        out.append(text)
    elif card_ran(light):
        out.append("VGG16 has not been trained on these data, so accuracy cannot be compared; the size and "
                   "speed above are those of its architecture, which do not depend on its weights.")
    else:
        out.append("Neither model has been trained on these data yet, so accuracy cannot be compared.")
    return " ".join(out)


def mib(megabytes: float) -> float:
    """MB of 10^6 bytes (tradeoff.json's sizes) in MiB, the unit of the model cards (comparison.json)."""
    return megabytes * 1e6 / 2 ** 20


def tradeoff_findings(rows: list[dict], fmt: str = "md") -> str:
    """The light VGG exported for a phone: int8 against fp32 in size, accuracy (with the 95 % interval of the
    change) and single-thread latency, all timed in one call (tradeoff.json's rows of part (c)'s network)."""
    f = Fmt(fmt)
    light = {r["form"]: r for r in rows if "LightVGG" in r["network"] and "accuracy" in r}
    if not {"PyTorch fp32", "ONNX int8"} <= set(light):
        return ""
    fp32, int8 = light["PyTorch fp32"], light["ONNX int8"]
    d = _diff(int8["accuracy"], fp32["accuracy"])
    change = _effect(f, d, _interval(int8["accuracy"], int8["n"], fp32["accuracy"], fp32["n"]))
    return (f"For a phone we also exported the light VGG to ONNX and quantised it to 8-bit integers, calibrated "
            f"on tune faces: it shrinks from {mib(fp32['size_MB']):.1f} MiB to {mib(int8['size_MB']):.1f} MiB, its "
            f"validation accuracy changes by {change}"
            f" (an interval for independent samples; on the same faces the true one is narrower), and one face takes "
            f"{int8['ratio_1_thread']:.2f}{f.times()} the time of fp32 PyTorch on one CPU thread, both timed "
            f"together.")


# What the paper's abstract reports (Hewitt and Gunes 2018, arXiv:1807.08775); its per-model table is not
# reproduced here.
PAPER_ACCURACY = 0.58  # eight-class accuracy on AffectNet's own validation set, best of the three networks


def paper_models_findings(cards: list[dict] | None, fmt: str = "md") -> str:
    """The three light networks of the paper side by side: size, latency and accuracy, against the paper."""
    f = Fmt(fmt)
    if not cards:
        return f"The paper's three networks have not been compared yet: run the last section of {f.code('P5_c')}."
    ran = [c for c in cards if card_ran(c)]
    out = [join([f"{c['model']} has {f.num(c['parameters'])} parameters ({c['fp32_size_MB']:g} MB) and takes "
                  f"{c['cpu_latency_ms']:.1f} ms per face" for c in cards]) + " on the CPU that measured them."]
    fastest = min(cards, key=lambda c: c["cpu_latency_ms"])
    out.append(f"{fastest['model']} is the fastest here; the latency ranking need not follow the FLOPs, since "
               f"depthwise convolutions run far below a CPU's peak.")
    if len(ran) >= 2:
        best = max(ran, key=lambda c: c["accuracy"])
        out.append("On validation, " + join([f"{c['model']} reaches {f.pct(c['accuracy'])} (macro-F1 "
                                               f"{f.pct(c['macro_f1'])}, macro-AUC {c['macro_auc']:.3f})"
                                               for c in ran]) + f"; {best['model']} is the most accurate.")
    missing = [c["model"] for c in cards if not card_ran(c)]
    if missing:
        out.append(f"Not trained on this data yet: {join(missing)} (its row gives the architecture's size and "
                   f"latency only).")
    out.append(f"The paper reports {f.pct(PAPER_ACCURACY, 0)} eight-class accuracy for its best network and about "
               f"{PAPER_FPS} faces a second on an iPhone 6S; it trained on AffectNet's full training set (some "
               f"290,000 faces), so accuracies on a subset of a few thousand faces are expected to be lower, and "
               f"the same recipe for all three networks favours none of them.")
    return " ".join(out)


_REGION_NAMES = {"border": "the outer border ring", "eyes_band": "the eye band", "mouth_band": "the mouth band"}


def cam_findings(regions: dict | None, fmt: str = "md", tol: float = REGION_TOL) -> str:
    """Where the Grad-CAM mass lies (border, eyes, mouth) against the share of the image each region covers, with
    the standard error of each mean over the faces where it was saved."""
    f = Fmt(fmt)
    if not regions or "border" not in regions:
        return "The class activation maps have not been measured yet: the part (d) notebook measures them."
    parts = []
    for key in ("border", "eyes_band", "mouth_band"):
        r = regions.get(key, {})
        if "all" in r and AREA in r:
            se = f" (± {f.pt(r[SE], 1)})" if SE in r else ""
            d = r["all"] - r[AREA]
            what = " of the map of the predicted class" if not parts else ""
            parts.append(f"{_REGION_NAMES[key]} holds {f.pct(r['all'])}{se}{what}, "
                         + (f"{f.pt(d)} points {'above' if d > 0 else 'below'} its {f.pct(r[AREA])} share of the "
                            "area" if abs(d) > tol else f"close to its {f.pct(r[AREA])} share of the area"))
    out = ["Over all validation faces, " + "; ".join(parts) + "."]
    b = regions["border"]
    if "all" in b and AREA in b:
        d = b[AREA] - b["all"]
        out.append(f"A map that ignored the face would put {f.pct(b[AREA])} on the border ring, so the maps favour "
                   f"the face {'only slightly' if d <= FACE_MARGIN else 'clearly'}"
                   + (", and much of the evidence still comes from the outer ring of the crop (hair, background, "
                      "frame and the outline of the face)." if d <= FACE_MARGIN else
                      ": most of the evidence lies on the face."))
    mouth = {c: v for c, v in regions.get("mouth_band", {}).items() if c not in ("all", SE, AREA)}
    low = [c for c in sorted(mouth, key=mouth.get)[:2] if mouth[c] < regions["mouth_band"].get(AREA, 0) - tol]
    if low:  # the classes read least from the mouth, as a person would read them
        out.append(f"By class, {f.codes(low)} put the least on the mouth band "
                   f"({join([f.pct(mouth[c]) for c in low])}, below its {f.pct(regions['mouth_band'][AREA])} share "
                   f"of the area): the network tells {'this class' if len(low) == 1 else 'these classes'} apart "
                   f"with little weight on the mouth.")
    return " ".join(out)


def _where(f: Fmt, regions: dict | None, area: dict, tol: float = REGION_TOL) -> str:
    """Where one face's map lies: the region most above its area share ('mouth 49%'), or 'spread'."""
    if not regions:
        return "not measured"
    excess = {k: regions[k] - area[k] for k in ("mouth_band", "eyes_band", "border") if k in regions and k in area}
    key = max(excess, key=excess.get) if excess else None
    if key is None or excess[key] <= tol:
        return "spread"
    return f"{_SHORT[key]} {f.pct(regions[key], 0)}"


_SHORT = {"border": "border", "eyes_band": "eyes", "mouth_band": "mouth"}


def cam_face_findings(picks: list[dict] | None, classes: list[str], metrics: dict | None, area: dict | None,
                      fmt: str = "md", sure: float = 0.9) -> str:
    """One or two sentences per class on its right and wrong faces of the CAM grids (cam_samples.json): their
    confidence, where each map lies, and the class's main confusion; then the wrong faces called happy with
    high confidence and a map on the mouth, which a smile explains and a label may not."""
    f = Fmt(fmt)
    if not picks:
        return "The maps of single faces have not been drawn yet: the part (d) notebook draws them."
    area = area or {}
    confusions = {}
    for c in top_confusions(metrics, n=10 ** 6) if metrics and metrics.get("confusion_matrix") else []:
        confusions.setdefault(c["true"], c)
    items = []
    for i, name in enumerate(classes):
        right = [p for p in picks if p["true"] == i and p["correct"]]
        wrong = [p for p in picks if p["true"] == i and not p["correct"]]
        if not right and not wrong:
            continue
        text = f"{f.code(name)}: " + (f"right ({'; '.join(_face(f, p, area) for p in right)})" if right else
                                      "no right face")
        if wrong:
            text += "; wrong, called " + join([f"{f.code(classes[p['pred']])} ({_face(f, p, area)})" for p in wrong])
        main = confusions.get(name)
        if main:
            hits = sum(classes[p["pred"]] == main["predicted"] for p in wrong)
            text += (f". Main confusion {f.code(name)} {f.arrow()} {f.code(main['predicted'])} ({main['count']} of "
                     f"{main['of']})" + (f", shown by {'both' if hits == 2 == len(wrong) else 'one'} of the wrong "
                                         f"faces" if hits else ""))
        items.append(text + ".")
    tail = _faces_read_together(f, picks, area)
    smile = [p for p in picks if not p["correct"] and classes[p["pred"]] == "happy" and p["confidence"] >= sure
             and _where(f, p.get("regions"), area).startswith(_SHORT["mouth_band"])]
    if smile:
        tail += (f" {'One wrong face' if len(smile) == 1 else f'{len(smile)} wrong faces'} ("
                + join([f"labelled {f.code(classes[p['true']])}" for p in smile])
                + f") {'is' if len(smile) == 1 else 'are'} called {f.code('happy')} with a confidence of at least "
                  f"{sure:g} and a map on the mouth: the network sees a smile there, and a smiling face under that "
                  f"label is as likely a wrong label as a wrong prediction.")
    if f.tex:
        return (r"\begin{itemize}\setlength\itemsep{0pt}" + "".join(rf"\item {t}" for t in items)
                + r"\end{itemize}" + tail.strip())
    return "\n".join(f"- {t}" for t in items) + ("\n\n" + tail.strip() if tail else "")


def _faces_read_together(f: Fmt, picks: list[dict], area: dict) -> str:
    """The grids read as a whole: where the maps of the right and of the wrong faces lie. (How sure the wrong
    answers are says nothing here: the grids show the most confident ones by design.)"""
    def where(faces, key="regions"):
        kinds = [_where(f, p.get(key), area).split(" ")[0] for p in faces]
        face = sum(k in ("eyes", "mouth") for k in kinds)
        return face, kinds.count("border"), len(faces) - face - kinds.count("border")

    right, wrong = [p for p in picks if p["correct"]], [p for p in picks if not p["correct"]]
    if not right or not wrong:
        return ""
    (rf, rb, rs), (wf, wb, ws) = where(right), where(wrong)
    spread = f" and on no region for {rs} and {ws}" if rs or ws else ""
    text = (f"Read together, the maps stand out on the eyes or the mouth for {rf} of the {len(right)} right faces "
            f"and {wf} of the {len(wrong)} wrong ones, and on the border for {rb} and {wb}{spread}.")
    if wb / len(wrong) > rb / len(right):
        text += (" Among these faces the wrong answers lean on the border more often than the right ones: on the "
                 "outer ring of the crop rather than on the expression.")
    if all("regions_true" in p for p in wrong):  # the third panel of each wrong face
        tf, tb, _ = where(wrong, "regions_true")
        text += (f" For the wrong faces the map of the true class stands out on the eyes or the mouth for {tf} and "
                 f"on the border for {tb}" + (
                     ": the faces hold evidence for the right class as well, and the network weighed it against the "
                     "wrong one, which points to confusable expressions or doubtful labels more than to a shortcut."
                     if tf >= wf else
                     ": the network finds less evidence for the right class on the face than for its wrong answer."))
    return text


def _face(f: Fmt, p: dict, area: dict) -> str:
    """One face of the grids: its confidence and where its map lies ('0.96, mouth 49%')."""
    return f"{p['confidence']:.2f}, {_where(f, p.get('regions'), area)}"


def _interval(a: float, n_a: int, b: float, n_b: int) -> float:
    """Half-width of the 95 % interval of the difference of two independent proportions (Wald)."""
    return 1.96 * math.sqrt(a * (1 - a) / max(n_a, 1) + b * (1 - b) / max(n_b, 1))


def _effect(f: Fmt, d: float, half: float) -> str:
    """'+32.0 points (95 % interval +17.1 to +46.9)', or the same with 'no clear effect' where it covers 0."""
    unit = r"\,\%" if f.tex else "%"
    text = f"{f.pts(d)} points (95{unit} interval {f.pts(d - half)} to {f.pts(d + half)})"
    return text + (", no clear effect" if d - half <= 0 <= d + half else "")


def photo_style_findings(summary: dict | None, fp: dict | None, fmt: str = "md",
                         style: list[dict] | None = None) -> str:
    """Whether FFHQ photo style pulls faces towards happy/neutral, with the 95 % interval of the difference, and
    how the portraits fare overall (photo_style.json's rows); "" for data without FFHQ portraits."""
    f = Fmt(fmt)
    if not has_photo_marker(fp):
        return ""
    hn = f"{f.code('happy')} or {f.code('neutral')}"
    intro = (f"In these data {f.code('happy')} and {f.code('neutral')} are mostly FFHQ portraits, so photo style "
             f"could stand in for the expression. ")
    if not summary or summary.get("ffhq_other_predicted_happy_neutral") is None:
        if summary and summary.get("ffhq_other_classes") == 0:
            return intro + (f"No FFHQ portrait of the validation split belongs to a class other than {hn}, so the "
                            f"photo-style check has nothing to measure.")
        return intro + "The photo-style check has not been run yet: the part (d) notebook runs it."
    a, b = summary["ffhq_other_predicted_happy_neutral"], summary["nonffhq_other_predicted_happy_neutral"] or 0.0
    n_a, n_b = summary["ffhq_other_classes"], summary["nonffhq_other_classes"]
    text = intro + (f"Portraits of the other classes are predicted {hn} {f.pct(a)} of the time ({n_a} faces), "
                    f"other faces of those classes {f.pct(b)} ({f.num(n_b)} faces): "
                    f"{_effect(f, a - b, _interval(a, n_a, b, n_b))}.")
    if a - b - _interval(a, n_a, b, n_b) > 0:
        text += " A portrait of another class is thus pulled towards those two classes, as a photo-style cue would do."
    if style:
        n_p = sum(r["ffhq_images"] for r in style)
        n_o = sum(r["other_images"] for r in style)
        acc_p = sum(r["ffhq_images"] * (r["accuracy_ffhq"] or 0) for r in style if r["ffhq_images"]) / max(n_p, 1)
        acc_o = sum(r["other_images"] * (r["accuracy_other"] or 0) for r in style if r["other_images"]) / max(n_o, 1)
        easy = sum(r["ffhq_images"] for r in style if r["class"] in ("happy", "neutral")) / max(n_p, 1)
        text += (f" Over all classes the portraits are classified correctly {f.pct(acc_p)} of the time "
                 f"({f.num(n_p)} faces) against {f.pct(acc_o)} for the others ({f.num(n_o)}), but {f.pct(easy, 0)} "
                 f"of them are {hn} faces, so that gap mixes photo source with class. A cue of photo style would "
                 f"not carry over to photos of another source; the check does not show how much the network "
                 f"relies on it.")
    return text


def screening_findings(t, min_gain: float = MIN_GAIN, n_tune: int | None = None, fmt: str = "md",
                       baseline: str = "plain") -> str:
    """Which changes cleared the tune bar in the screening, which are within noise, which lost."""
    f = Fmt(fmt)
    if t is None or len(t) == 0 or TUNE_GAIN not in t.columns or baseline not in t.index:
        return "The screening has not been run on these data yet: the part (d) notebook runs it."
    rows = t.drop(index=baseline)
    p = float(t.loc[baseline, "tune acc."])
    gains = {r: float(g) for r, g in rows[TUNE_GAIN].items()}
    passed = passed_changes(t, min_gain, baseline)
    se = math.sqrt(p * (1 - p) / n_tune) if n_tune else None
    out = [f"The screening tried {len(rows)} change{'s' * (len(rows) != 1)} against the plain model's {f.pct(p)} "
           f"tune accuracy."]
    if passed:
        out.append(("Only " if len(passed) == 1 else "The changes ")
                   + join([f"{_row(f, r)} ({f.pts(gains[r])} points on tune, {f.pts(float(rows.loc[r, VAL_GAIN]))} "
                            f"on validation)" for r in passed])
                   + f" cleared the bar of {_points(min_gain)} of tune accuracy.")
    else:
        out.append(f"No change cleared the bar of {_points(min_gain)} of tune accuracy.")
    rest = {r: g for r, g in gains.items() if r not in passed}
    weak = [r for r in passed if se is not None and abs(gains[r]) <= se]
    if weak:
        out.append(f"Clearing the bar is not evidence by itself: {_rows(f, weak)} gained no more than one standard "
                   f"error of the tune accuracy (given below), the size of the changes that are within noise, so "
                   f"only the full schedule with two seeds can confirm {'it' if len(weak) == 1 else 'them'}.")
    if se is not None:
        noise = [r for r, g in rest.items() if abs(g) <= se]
        lost = sorted((r for r, g in rest.items() if g < -se), key=lambda r: rest[r])
        out.append(f"With {f.num(n_tune)} tune faces one standard error of that accuracy is about "
                   f"{100 * se:.1f} points" + (f", so {_rows(f, noise)} "
                                               f"{'is' if len(noise) == 1 else 'are'} within the noise of one seed"
                                               if noise else "") + ".")
    else:
        lost = sorted((r for r, g in rest.items() if g < 0), key=lambda r: rest[r])
    if lost:
        out.append("Lost accuracy on tune: " + join([f"{_row(f, r)} ({f.pts(rest[r])})" for r in lost]) + ".")
    if "tune acc. +flip" in t.columns and not f.tex:  # the report's table has no tune-flip column
        d = (t["tune acc. +flip"].astype(float) - t["tune acc."].astype(float)).dropna()
        if len(d):
            verdict = ("helps every row" if (d > 0).all() else "hurts every row" if (d < 0).all() else
                       "helps some rows and hurts others")
            out.append(f"Flip test-time augmentation {verdict} on tune ({f.pts(d.min())} to {f.pts(d.max())} "
                       f"points).")
    return " ".join(out)


ROW_NAMES = {  # the studies' rows in the report's prose
    "batch_norm": "batch-norm", "gaussian_dropout": "Gaussian dropout", "class_weights": "class weights",
    "label_smoothing": "label smoothing", "trivial_augment": "TrivialAugment", "mixup_cutmix": "MixUp/CutMix",
    "adamw_cosine": "AdamW with a cosine schedule", "gap_head": "the global-average-pooling head",
    "face_mask": "the face mask", "photometric": "strong colour jitter", "plain_long": f"plain, {LONG_EPOCHS} epochs",
    "smoothing_long": f"label smoothing + EMA, {LONG_EPOCHS} epochs", "bn_long": f"batch-norm, {LONG_EPOCHS} epochs",
    "bn_lr0.001": "batch-norm, lr 0.001", "bn_lr0.003": "batch-norm, lr 0.003"}


def row_name(name: str) -> str:
    """A study row's name as prose ('batch-norm', 'label smoothing + EMA, 60 epochs')."""
    return ROW_NAMES.get(str(name), str(name).replace("_", " "))


CAM_ROWS = ("face_mask", "photometric", "gap_head")  # the screening's changes aimed at what the maps show


def cam_fix_findings(t, min_gain: float = MIN_GAIN, fmt: str = "md") -> str:
    """Whether the screening's changes aimed at the maps' findings (frame, photo style, position) raised tune
    accuracy; "" before the screening."""
    f = Fmt(fmt)
    if t is None or TUNE_GAIN not in getattr(t, "columns", ()):
        return ""
    gains = {r: float(t.loc[r, TUNE_GAIN]) for r in CAM_ROWS if r in t.index}
    if not gains:
        return ""
    helped = [r for r, g in gains.items() if g > min_gain]
    rest = [f"{_row(f, r)} ({f.pts(g)} points)" for r, g in gains.items() if g <= min_gain]
    text = "In the screening, of the changes aimed at what the maps show, "
    if helped:
        text += join([f"{_row(f, r)} ({f.pts(gains[r])} points)" for r in helped]) + " raised tune accuracy"
        text += f", while {join(rest)} did not." if rest else "."
    else:
        text += join(rest) + " did not raise tune accuracy."
    return text


def _row(f: Fmt, name: str) -> str:
    """A study row's name: as code in Markdown (what the CLI and the folders call it), as prose in the report."""
    return f.t(row_name(name)) if f.tex else f.code(name)


def _rows(f: Fmt, names) -> str:
    return join([_row(f, n) for n in names])


def _points(v: float) -> str:
    """'1 point', '2.5 points' for an accuracy difference v."""
    return f"{100 * v:g} point" + ("" if round(100 * v, 6) == 1 else "s")


def passed_changes(t, min_gain: float = MIN_GAIN, baseline: str = "plain") -> list[str] | None:
    """The rows whose tune gain over the baseline exceeds `min_gain`, largest first; None without a table."""
    if t is None or TUNE_GAIN not in t.columns:
        return None
    gains = t[TUNE_GAIN].sort_values(ascending=False)
    return [r for r, g in gains.items() if r != baseline and float(g) > min_gain]


def map_change_findings(shortcuts: dict | None, fp: dict | None = None, area: dict | None = None, fmt: str = "md",
                        tol: float = REGION_TOL) -> str:
    """How the maps (and photo-style pull) of the delivered model differ from those of part (c)'s model (the keys
    "delivered" and "plain" of shortcuts.json: `SplitMaps.compare` sets the delivered model against P5_c's)."""
    f, model = Fmt(fmt), "delivered"
    if not shortcuts or "plain" not in shortcuts or model not in shortcuts:
        return f"The maps of the {model} model have not been measured yet ({f.code('P5_d')}, after the ablation)."
    p, i = shortcuts["plain"], shortcuts[model]
    keys = [k for k in ("border", "eyes_band", "mouth_band") if k in p and k in i]
    parts = [f"{f.pct(i[k], 0)} on {_REGION_NAMES[k]} (part (c)'s model {f.pct(p[k], 0)}"
             + (f", area {f.pct(area[k], 0)})" if area and k in area else ")") for k in keys]
    out = [f"Over the whole validation split the {model} model's maps put " + join(parts) + "." if parts else ""]
    b = _compare(i.get("border", 0), p.get("border", 0), tol)
    if "border" in p and "border" in i:
        out.append({"less than": f"The {model} model puts clearly less of its map on the border.",
                    "more than": f"The {model} model puts clearly more of its map on the border.",
                    "about the same as": "On the border the two models hardly differ."}[b])
    if has_photo_marker(fp) and p.get("ffhq_other_predicted_happy_neutral") is not None \
            and i.get("ffhq_other_predicted_happy_neutral") is not None:
        a, c = p["ffhq_other_predicted_happy_neutral"], i["ffhq_other_predicted_happy_neutral"]
        trend = {"more than": "grew", "less than": "shrank", "about the same as": "stayed about the same"}[
            _compare(c, a, STYLE_TOL)]
        out.append(f"FFHQ portraits of the other classes are predicted {f.code('happy')} or {f.code('neutral')} "
                   f"{f.pct(a, 0)} of the time by part (c)'s model and {f.pct(c, 0)} by the {model} one: the pull "
                   f"of photo style {trend}.")
    return " ".join(s for s in out if s)


def protocol(rules: dict) -> str:
    """The second study's rules (`SecondStudy.rules`), fixed before any run, as a numbered Markdown list."""
    r = rules
    items = [
        f"Every kept row is trained on the full schedule ({r['long_epochs']} epochs); batch-norm's learning rate "
        f"comes from a {r['sweep_epochs']}-epoch sweep on tune.",
        f"Each long run records an exponential moving average of its weights (decay {r['ema_decay']} per step) and "
        "is evaluated with and without flip test-time augmentation, so one run answers the longer schedule, EMA "
        "and TTA.",
        "Rows, and the raw or EMA weights, are selected on the tune split only; validation/ is evaluated every "
        "epoch for the curves, and no choice reads it.",
        f"The delivered model keeps the paper's budget: at most {r['param_budget'] / 1e6:g}M parameters at 128×128 "
        f"and a CPU latency at most {r['max_latency']:g}× the plain model's, measured in the same run. Flip "
        "test-time augmentation runs the network twice per face, so its variants are measured and shown but never "
        "selected.",
        "The final row is the best candidate on tune that the budget left can confirm on a second seed: the "
        f"combination of the rows that beat the plain {r['long_epochs']}-epoch row by more than "
        f"{_points(r['min_gain'])} on tune (two new seeds), else each such row in order of tune accuracy, else the "
        f"plain {r['long_epochs']}-epoch row.",
        "The final comparison is mean ± std over seeds 0 and 1 against the plain LightVGG of part (c) (its second "
        f"seed is trained beyond the budget where it is missing); the target is a gain of at least "
        f"{100 * r['target']:.0f} points of validation accuracy.",
        f"Budget: at most {r['budget']:g} plain 30-epoch runs, a batch-norm step counted as {r['bn_step_cost']:g} "
        "plain steps; runs that already exist cost nothing."]
    return "\n".join(f"{i}. {item}" for i, item in enumerate(items, 1))


def study_findings(study, fmt: str = "md") -> str:
    """Where part (d)'s second study (a `study.SecondStudy`) stands: nothing run, partly run (what is left, in plain
    30-epoch runs, and the --budget that fits it), or done, with its final comparison (`improvement_findings`)."""
    f, extra = Fmt(fmt), study.extra()  # rows run beyond the budget, for the final comparison
    pending = study.todo()
    rows, beyond = [r for r in pending if r not in extra], [r.folder for r in pending if r in extra]
    todo, left, spent, budget = [r.folder for r in rows], sum(r.cost() for r in rows), study.spent(), study.budget
    final = study.final_comparison()
    over = spent + left > budget + 1e-9
    command = f.code("fer ablation --study long" + (f" --budget {math.ceil(spent + left)}" if over else ""))
    if not spent and todo and final is None:
        text = f"No run of the second study exists for this data yet. {command} runs it"
        text += (f"; the rows known so far need {left:.1f} plain 30-epoch runs, more than the budget of {budget:g}."
                 if over else f", within {budget:g} plain 30-epoch runs, and resumes where it stops.")
        return text
    text = f"The study has spent {spent:.1f} of its {budget:g} plain 30-epoch runs."
    if todo and f.tex:
        text += " Some of its runs have not finished yet."
    elif todo:
        text += (f" Still to run: {_rows(f, todo)}, about {left:.1f} plain 30-epoch runs (the rows known so far; "
                 "later rows follow from their results)")
        text += (f", beyond the budget; {command} covers them" if over else f"; {command} continues")
        text += " from where it stopped."
    if beyond and not f.tex:
        text += f" The final comparison also needs {_rows(f, beyond)}, run beyond the budget."
    if final is not None:
        text += " " + improvement_findings(final, study.target, fmt)
    return text


def _diff(a: float, b: float) -> float:
    """a - b of two fractions as the report prints them (0.1 %), so that a stated gain matches its table."""
    return (round(1000 * a) - round(1000 * b)) / 1000


def improvement_findings(t, target: float = 0.03, fmt: str = "md") -> str:
    """The final comparison (`study.SecondStudy.final_comparison`): the improved model against the plain one at
    the same schedule and seeds, the gain of each seed and whether it is clear, then against part (c)'s model."""
    f = Fmt(fmt)
    if t is None or len(t) < 2:
        return ("The proposal has not been tested on the full schedule yet: the second study of the part (d) "
                "notebook tests it.")
    part_c, names, epochs = t.iloc[0], list(t.index), t.attrs.get("part_c_epochs", 30)
    plain, best = t.loc[names[-2]], t.loc[names[-1]]
    per_seed = [_diff(best[s], plain[s]) for s in ("seed 0", "seed 1") if not pd.isna(plain[s])]
    gain = _diff(best["mean"], plain["mean"])
    clear = len(per_seed) == 2 and (all(g > 0 for g in per_seed) or all(g < 0 for g in per_seed))
    spread = max((abs(_diff(r["seed 0"], r["seed 1"])) for _, r in t.iterrows() if not pd.isna(r["seed 1"])),
                 default=0.0)  # the largest gap between the two seeds of one model
    out = []
    if len(t) > 2 and len(per_seed) == 1:  # the plain row's second seed has not run yet
        out.append(f"At the same schedule, on seed 0 (the plain row's second seed has not finished training), "
                   f"{f.t(names[-1])} reaches {f.pct(best['seed 0'])} validation accuracy against "
                   f"{f.pct(plain['seed 0'])} for {f.t(names[-2])}: {f.pts(per_seed[0])} points, one seed, so no "
                   f"spread can be given; its own second seed reaches {f.pct(best['seed 1'])}. Macro-F1 moves from "
                   f"{f.pct(plain['macro-F1'])} to {f.pct(best['macro-F1'])}.")
        out.append(f"Against part (c)'s {epochs}-epoch model ({f.pct(part_c['mean'])} ± {f.pt(part_c['std'])} over "
                   f"two seeds), the proposal reaches {f.pct(best['mean'])} ± {f.pt(best['std'])}: "
                   f"{f.pts(_diff(best['mean'], part_c['mean']))} points, "
                   + ("which meets" if _diff(best["mean"], part_c["mean"]) >= target else "short of")
                   + f" the {f.pt(target, 0)} points we aimed for; how much of it the longer schedule "
                     f"alone gives, the plain row's seed 0 suggests: {f.pts(_diff(plain['seed 0'], part_c['seed 0']))} "
                     "points on seed 0.")
    elif len(t) > 2:
        out.append(f"At the same schedule and seeds, {f.t(names[-1])} reaches {f.pct(best['mean'])} (± "
                   f"{f.pt(best['std'])}, mean ± std over seeds 0 and 1) validation accuracy against "
                   f"{f.pct(plain['mean'])} (± {f.pt(plain['std'])}) for {f.t(names[-2])}: a gain of {f.pts(gain)} "
                   f"points ({join([f.pts(g) for g in per_seed])} for the two seeds)"
                   + (f", positive for both seeds but within the {f.pt(spread)}-point spread between the two seeds "
                      f"of one model, so a small effect at best." if clear and gain > 0 and abs(gain) < spread else
                      ", the same sign for both seeds." if clear else
                      "; the seeds disagree in sign, so there is no clear effect.")
                   + f" Macro-F1 moves from {f.pct(plain['macro-F1'])} to {f.pct(best['macro-F1'])}.")
        whole, longer = _diff(best["mean"], part_c["mean"]), _diff(plain["mean"], part_c["mean"])
        out.append(f"Against part (c)'s {epochs}-epoch model ({f.pct(part_c['mean'])} ± {f.pt(part_c['std'])}, mean "
                   f"± std over two seeds), the longer schedule alone gives {f.pts(longer)} "
                   f"points and the whole proposal {f.pts(whole)}"
                   + ("." if f.tex else f", {'which meets' if whole >= target else 'short of'} the "
                                        f"{f.pt(target, 0)}-point target."))
    else:
        out.append(f"No change beat the plain model on tune, so the plain model on the longer schedule is the final "
                   f"one: {f.pct(best['mean'])} (± {f.pt(best['std'])}) against part (c)'s {f.pct(part_c['mean'])} "
                   f"(± {f.pt(part_c['std'])}), {f.pts(_diff(best['mean'], part_c['mean']))} points.")
    return " ".join(out)


def gpu_findings(bench: dict, fmt: str = "md") -> str:
    """What a GPU benchmark (results/benchmarks/<gpu>.json) measured about augmentation and the second study's
    `--workers`, as prose ("" when it measured neither)."""
    f, aug = Fmt(fmt), bench.get("augment_backend_same_run")
    if not aug:
        return ""
    v2, batched, x = aug["v2_epoch_s"][-1], aug["batched_epoch_s"][-1], f.times()
    text = (f"On the {bench['device']} ({aug['precision']}), one LightVGG epoch, tune and validation evaluation "
            f"included, took {v2:.1f} s with per-image v2 augmentation (then the default) and {batched:.1f} s with "
            f"{f.code('--augment-backend batched')}, one after the other in the same session "
            f"({v2 / batched:.1f}{x}, epoch {len(aug['v2_epoch_s'])}): per-image augmentation bounds the speed there.")
    if rows := bench.get("second_study_workers", {}).get("epoch_s_per_row"):
        each = sum(rows.values()) / len(rows)
        text += (f" With {f.code('--workers')}, {len(rows)} second-study rows (each also evaluating its EMA every "
                 f"epoch) trained side by side at about {each:.0f} s an epoch each.")
    return text


def delivered_name(metrics: dict, fmt: str = "md") -> str:
    """The delivered model's source (its metrics.json's delivered_from): 'row, seed N, with its EMA weights'."""
    src = metrics["delivered_from"]
    row, _, seed = src["run"].rsplit("/", 1)[-1].rpartition("_seed")
    return f"{_row(Fmt(fmt), row)}, seed {seed}, with its {src['variant']} weights"


def delivery_findings(study, fmt: str = "md") -> str:
    """The model that part (d)'s second study delivers (`study.SecondStudy.deliver`): its source, validation accuracy
    and the paper's budget, with the latency measured in the same call as the plain model's."""
    f, m, folder = Fmt(fmt), study.delivered.result, f"{study.delivered.path.name}/"
    where = "" if f.tex else f" in {f.code(folder)}"
    if m is None:
        return f"No model is delivered yet: it is written{where} once the study's final comparison exists."
    b = m["budget"]
    side, x = b["input_size"], f.times()
    within = lambda ok: "within" if ok else "above"  # noqa: E731
    same = abs(b["latency_ratio"] - 1) < 0.1  # the plain network's architecture: its speed is the plain one's
    speed = ("" if same and f.tex else
             f" and a CPU latency of {b['latency_ratio']:.2f}{x} the plain model's, both timed together "
             f"({within(b['latency_ratio'] <= b['max_latency_ratio'])} the limit of {b['max_latency_ratio']:g}{x})")
    return (f"The delivered model is {delivered_name(m, fmt)}, saved"
            f"{where}: {f.pct(m['accuracy'])} validation accuracy with {b['parameters'] / 1e6:.2f}M parameters at "
            f"{f.size(f'{side}x{side}')} ({within(b['parameters'] <= b['max_parameters'])} the "
            f"paper's {b['max_parameters'] / 1e6:g}M){speed}." + ("" if f.tex else
            f" Flip test-time augmentation would take {b['flip_latency_ratio']:.2f}{x} as long per face."))


def gap_findings(delivered: dict | None, part_c: dict | None, fmt: str = "md") -> str:
    """How closely the delivered model fits its training images against part (c)'s model: the train–validation
    gaps of the two (each run's metrics.json)."""
    f = Fmt(fmt)
    gaps = [m["splits"]["train"]["accuracy"] - m["accuracy"] if m and "train" in m.get("splits", {}) else None
            for m in (delivered, part_c)]
    if None in gaps or delivered.get("max_batches") or part_c.get("max_batches"):  # a smoke run: no finding
        return ""
    text = (f"On its un-augmented training images the delivered model reaches "
            f"{f.pct(delivered['splits']['train']['accuracy'])}, a train–validation gap of {f.pt(gaps[0])} points "
            f"against {f.pt(gaps[1])} for part (c)'s model")
    if gaps[0] - gaps[1] > OVERFIT_GAP:
        more = delivered["accuracy"] >= part_c["accuracy"]
        return text + (": the longer schedule fits the training set more closely" + (
            ", and validation accuracy still rose." if more else ", and validation accuracy fell: it overfits."))
    return text + "."


MODEL_TITLES = {"light-vgg": "light VGG of Hewitt and Gunes (2018), trained from scratch",
                "vgg16": "VGG16 (Simonyan and Zisserman 2015), ImageNet weights"}


def describe_augmentation(name: str) -> str:
    """An augmentation policy in words, from its AugmentConfig."""
    a = AugmentConfig.preset(name)
    parts = [f"horizontal flip (p = {a.hflip:g})" if a.hflip else "",
             f"rotation ±{a.rotation:g}°" if a.rotation else "",
             f"shift ±{100 * a.translate:g} %" if a.translate else "",
             f"scale {a.scale[0]:g}–{a.scale[1]:g}" if a.scale != (1.0, 1.0) else "",
             f"brightness and contrast ±{100 * a.brightness:g} %" if a.brightness else "",
             f"saturation ±{100 * a.saturation:g} %" if a.saturation else "",
             f"grey-scale (p = {a.grayscale:g})" if a.grayscale else "",
             "TrivialAugmentWide" if a.trivial else "",
             f"random erasing (p = {a.erasing:g})" if a.erasing else ""]
    return f"{name}: " + (", ".join(p for p in parts if p) or "none")


def settings_table(cfg: TrainConfig, stats: dict | None = None, params: dict | None = None,
                   history=None) -> pd.DataFrame:
    """Every setting of a run as one two-column table, for the notebook and the report."""
    opt = {"adam": f"Adam (β = {tuple(cfg.betas)}, weight decay {cfg.weight_decay:g})",
           "adamw": f"AdamW (β = {tuple(cfg.betas)}, weight decay {cfg.weight_decay:g})",
           "sgd": f"SGD (momentum {cfg.momentum}, Nesterov, weight decay {cfg.weight_decay:g})"}[cfg.optimizer]
    sched = {"onecycle": f"one-cycle (PyTorch's defaults): cosine rise from {cfg.lr / 25:.2g} to the peak {cfg.lr:g} "
                         f"over the first 30 % of the steps, then cosine decay to {cfg.lr / 25e4:.2g}; Adam's β₁ "
                         f"cycled 0.95 → 0.85 → 0.95",
             "none": f"constant {cfg.lr:g}",
             "cosine": f"cosine, {cfg.warmup_epochs:g} warm-up epochs, peak {cfg.lr:g}"}[cfg.schedule]
    size = cfg.resolved_input_size()
    rows = {
        "model": MODEL_TITLES.get(cfg.model, cfg.model),
        "loss": "cross-entropy" + (f", label smoothing {cfg.label_smoothing}" if cfg.label_smoothing else "")
                + (", inverse-frequency class weights" if cfg.class_weights else ""),
        "optimizer": opt,
        "learning rate / schedule": sched + (f"; new head ×{cfg.head_lr_mult:g}" if cfg.model == "vgg16" else ""),
        "epochs (max) / early stopping": f"{cfg.epochs} / " + (f"patience {cfg.patience}" if cfg.patience
                                                                else "none; the best tune epoch is kept"),
        "batch size": cfg.batch_size,
        "input": f"RGB {size}×{size}, pixels scaled to [0, 1]" + (", then ImageNet mean and standard deviation"
                                                                  if cfg.model == "vgg16" else ""),
        "augmentation (on-line)": describe_augmentation(cfg.augment),
        "seed": cfg.seed,
        "mixed precision": {"auto": "automatic", "off": "off (fp32)"}.get(cfg.amp, cfg.amp)
                           + ("" if history is None else f" ({history.precision or 'fp32'} used)"),
    }
    if cfg.model == "vgg16":
        weights = ("ImageNet" if cfg.weights == "imagenet" else "random (smoke runs only)" if cfg.weights in
                   (None, "none") else "ImageNet, from a local file")
        rows["weights / frozen layers"] = (f"{weights} / "
                                           + {"features": "all 13 convolutions", "none": "none",
                                              "all-but-last-block": "all but the last convolutional block"}
                                           .get(cfg.freeze, cfg.freeze))
    else:
        extras = ["batch-norm" if cfg.batch_norm else "", f"dropout {cfg.dropout:g}" if cfg.dropout else "",
                  f"Gaussian dropout {cfg.gaussian_dropout:g}" if cfg.gaussian_dropout else "",
                  "global-average-pooling head" if cfg.head == "gap" else "", "face mask" if cfg.mask else ""]
        rows["additions to the paper's layers"] = ", ".join(e for e in extras if e) or "none (the paper's network)"
    if params:
        rows["parameters (total / trainable)"] = f"{params['total']:,} / {params['trainable']:,}"
    if stats:
        t = stats["totals"]
        rows["images per split"] = ", ".join(f"{s} {n:,}" for s, n in t.items())
        steps = math.ceil(t["train"] / cfg.batch_size)
        if cfg.max_batches:
            steps = min(steps, cfg.max_batches)
        rows["optimisation steps"] = (f"{steps:,} per epoch × {cfg.epochs} epoch{'s' if cfg.epochs != 1 else ''} = "
                                      f"{steps * cfg.epochs:,} (max)")
    if history is not None:
        rows["epochs run / best tune epoch"] = f"{len(history.epochs)} / {history.best_epoch}"
        rows["hardware / wall time"] = f"{history.hardware} / {history.wall_seconds / 60:.1f} min"
    if cfg.max_batches:
        rows["batches per epoch (smoke run)"] = cfg.max_batches
    return pd.DataFrame({"setting": list(rows), "value": [str(v) for v in rows.values()]}).set_index("setting")
