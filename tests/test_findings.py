"""Generated findings: every claim follows the numbers, on the course's 8 classes as on the 7-class sample."""

import re

import pandas as pd
import pytest
from prose import states

from facial_expression import findings as F

CLASSES8 = ["angry", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
CLASSES7 = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
AREA = {"border": 0.4375, "eyes_band": 0.25, "mouth_band": 0.25}


def fingerprint(classes, ffhq=0, name="affectnet_course", sizes=None, per_class=(1000, 100, 200), step=10):
    """A dataset fingerprint as runs record it (data/fingerprint.py)."""
    counts = {split: {c: n + step * i for i, c in enumerate(classes)}
              for split, n in zip(("train", "tune", "validation"), per_class)}
    return {"root": f"/data/{name}", "name": name, "classes": list(classes),
            "files": {"train": sum(counts["train"].values()) + sum(counts["tune"].values()),
                      "validation": sum(counts["validation"].values())},
            "files_sha1": "0123456789abcdef", "ffhq_files": ffhq, "counts": counts,
            "image_sizes": sizes or {"224x224": 9000, "160x160": 1000}}


def sample_fingerprint():
    """Shaped like the development sample: affectnet7, 48x48, FFHQ portraits."""
    return fingerprint(CLASSES7, ffhq=2552, name="affectnet7", sizes={"48x48": 8400}, per_class=(900, 100, 200),
                       step=0)


def split_stats(classes, train=None, sizes=None, modes=None):
    """A split_stats.json: images per class and split, totals, sizes, colour modes."""
    train = train or {c: 1000 for c in classes}
    per_class = {"train": train, "tune": {c: n // 9 for c, n in train.items()},
                 "validation": {c: 200 for c in classes}}
    return {"root": "/data/x", "classes": list(classes), "per_class": per_class,
            "totals": {s: sum(v.values()) for s, v in per_class.items()},
            "image_sizes": sizes or {"224x224": 9000}, "colour_modes": modes or {"RGB": 9000}}


def confusion(classes, pairs=None, n=200):
    """A validation confusion matrix with rows of `n`: the listed (true, predicted): count pairs, 1 in every
    other off-diagonal cell, the rest on the diagonal."""
    k = len(classes)
    cm = [[int(i != j) for j in range(k)] for i in range(k)]
    for (t, p), c in (pairs or {}).items():
        cm[classes.index(t)][classes.index(p)] = c
    for i in range(k):
        cm[i][i] = n - (sum(cm[i]) - cm[i][i])
    return cm


def metrics(classes, train=0.70, tune=0.61, val=0.60, best=20, epochs=30, f1=None, pairs=None, fp=None):
    """A metrics.json of a finished run."""
    f1 = f1 or {c: 0.5 + 0.03 * i for i, c in enumerate(classes)}
    return {"accuracy": val, "macro_f1": val - 0.01, "macro_auc": 0.9, "cohen_kappa": 0.5, "n": 200 * len(classes),
            "classes": list(classes), "confusion_matrix": confusion(classes, pairs=pairs),
            "per_class": {c: {"precision": f1[c], "recall": f1[c], "f1": f1[c], "support": 200, "auc": 0.9}
                          for c in classes},
            "best_epoch": best, "epochs_run": epochs, "wall_seconds": 600.0, "device": "cpu", "amp": None,
            "max_batches": None, "parameters": {"total": 3_744_664, "trainable": 3_744_664, "frozen": 0},
            "splits": {s: {"accuracy": a, "n": 200 * len(classes), "confusion_matrix": confusion(classes, pairs=pairs)}
                       for s, a in (("train", train), ("tune", tune), ("validation", val))},
            "dataset": fp if fp is not None else fingerprint(classes)}


def history(best, epochs=30, final=0.6):
    """A history.json whose tune accuracy rises until `best`, then falls a little; the tune loss mirrors it."""
    rows = []
    for e in range(1, epochs + 1):
        tune = final * min(e, best) / best - (0.002 * (e - best) if e > best else 0)
        loss = 1.0 + (0.03 * (e - best) if e > best else 0.5 * (best - e) / best)
        rows.append({"epoch": e, "train_loss": 1.0 - 0.01 * e, "train_accuracy": 0.3 + 0.015 * e,
                     "tune_loss": loss, "tune_accuracy": tune, "validation_loss": loss,
                     "validation_accuracy": tune - 0.005})
    return {"epochs": rows, "best_epoch": best, "best_tune_accuracy": final, "interrupted": False,
            "stopped_early": False, "device": "cpu", "amp": None, "wall_seconds": 600.0}


def regions(classes, border=0.30, eyes=0.35, mouth=0.40):
    """A cam_regions.json: region -> {class, all, area share}."""
    out = {}
    for key, v in (("border", border), ("eyes_band", eyes), ("mouth_band", mouth)):
        out[key] = {c: v + 0.01 * (i - len(classes) // 2) for i, c in enumerate(classes)}
        out[key].update({"all": v, F.AREA: AREA[key]})
    return out


def cards(light_acc=0.60, vgg_acc=None):
    """comparison.json: the two model cards of P5_c."""
    light = {"model": "LightVGG (c)", "status": "trained", "parameters": 3_744_664, "trainable": 3_744_664,
             "fp32_size_MB": 14.3, "cpu_latency_ms": 4.0, "accuracy": light_acc, "macro_f1": light_acc - 0.01}
    vgg = {"model": "VGG16 transfer (b)", "parameters": 134_293_320, "trainable": 119_578_632,
           "fp32_size_MB": 512.3, "cpu_latency_ms": 120.0}
    if vgg_acc is None:
        vgg.update(status="not run (no metrics.json in vgg16_transfer/)", accuracy="not run", macro_f1="not run")
    else:
        vgg.update(status="trained", accuracy=vgg_acc, macro_f1=vgg_acc - 0.01)
    return [light, vgg]


def screen_table(gains, plain=0.50):
    """A screening table as study.screening_table returns it (row -> tune acc., tune Δ, val. Δ, ...)."""
    rows = {"plain": 0.0, **gains}
    return pd.DataFrame({"change": {r: f"the change {r}" for r in rows},
                         "tune acc.": {r: plain + g for r, g in rows.items()},
                         "tune Δ": rows, "val. Δ": {r: g / 2 for r, g in rows.items()},
                         "tune acc. +flip": {r: plain + g + 0.005 for r, g in rows.items()}})


def every_text(fp, classes, fmt):
    """All generated paragraphs of one made-up result."""
    return [F.data_sentence(fp, fmt), F.preprocessing_findings(split_stats(classes), fmt),
            F.training_findings(metrics(classes, fp=fp), history(20), fmt), F.comparison_findings(cards(), fmt),
            F.cam_findings(regions(classes), fmt),
            F.photo_style_findings({"ffhq_other_classes": 40, "ffhq_other_predicted_happy_neutral": 0.3,
                                    "nonffhq_other_classes": 900, "nonffhq_other_predicted_happy_neutral": 0.05},
                                   fp, fmt),
            F.cam_face_findings([{"true": 0, "pred": 1, "confidence": 0.95, "correct": False,
                                  "regions": {"border": 0.3, "eyes_band": 0.2, "mouth_band": 0.5}}],
                                classes, metrics(classes), AREA, fmt),
            F.class_weight_findings(split_stats(classes)["per_class"]["train"], fmt),
            F.screening_findings(screen_table({"change_a": 0.03, "change_b": -0.05}), fmt=fmt),
            F.map_change_findings({"plain": {"border": 0.4, "ffhq_other_predicted_happy_neutral": 0.3},
                                   "delivered": {"border": 0.3, "ffhq_other_predicted_happy_neutral": 0.2}},
                                  fp, AREA, fmt)]


@pytest.mark.parametrize("fmt", ["md", "tex"])
def test_course_data_never_reads_as_the_development_sample(fmt):
    fp = fingerprint(CLASSES8)
    text = " ".join(every_text(fp, CLASSES8, fmt))
    for word in ("FFHQ", "ffhq", "development sample", "affectnet7", "Flickr"):
        assert word not in text, word
    assert "8 classes" in text and ("`contempt`" if fmt == "md" else r"\emph{contempt}") in text
    assert F.photo_style_findings({"ffhq_other_predicted_happy_neutral": 0.3}, fp, fmt) == ""
    assert not F.is_development_sample(fp) and not F.has_photo_marker(fp)


def test_the_development_sample_is_named_as_such():
    fp = sample_fingerprint()
    assert F.is_development_sample(fp)
    assert not F.is_development_sample(dict(fp, ffhq_files=0))
    assert not F.is_development_sample(dict(fp, name="my_affectnet"))  # FFHQ files elsewhere: not the sample
    text = F.data_sentence(fp)
    assert "development sample" in text and "Flickr-Faces-HQ" in text and states(text, 7, "classes"), text
    assert "48×48" in text and states(text, 6300, "train", 700, "tune", 1400, "validation"), text
    pulled = {"ffhq_other_classes": 38, "ffhq_other_predicted_happy_neutral": 0.34, "nonffhq_other_classes": 962,
              "nonffhq_other_predicted_happy_neutral": 0.04}
    rows = [{"class": "angry", "ffhq_images": 10, "other_images": 190, "accuracy_ffhq": 0.5, "accuracy_other": 0.4},
            {"class": "happy", "ffhq_images": 150, "other_images": 50, "accuracy_ffhq": 0.9, "accuracy_other": 0.7}]
    style = F.photo_style_findings(pulled, fp, style=rows)
    # the rates, the difference and its 95% interval (Wald), with the direction it shows
    assert states(style, 34.0, 38, "faces", 4.0, 962, "faces"), style
    assert states(style, "+30.0", 95, "interval", "+14.9", "+45.1"), style  # the sign is the direction
    assert "no clear effect" not in style and "pulled towards" in style  # the claim the interval allows
    # over all classes the portraits are classified better: (10 * 0.5 + 150 * 0.9) / 160 against (76 + 35) / 240,
    # and 150 of those 160 portraits (94 %) are happy
    assert states(style, 87.5, 160, "faces", 46.2) and states(style, 94, "%"), style
    same = F.photo_style_findings(dict(pulled, ffhq_other_predicted_happy_neutral=0.05), fp)
    assert states(same, +1.0, 95, "interval") and "no clear effect" in same and "pulled" not in same, same


def test_tex_output_is_escaped():
    for fp, classes in ((fingerprint(CLASSES8, name="my_data"), CLASSES8), (sample_fingerprint(), CLASSES7)):
        for text in every_text(fp, classes, "tex"):
            assert not re.search(r"(?<!\\)[%_&#]", text), text
            assert "`" not in text and "\u2192" not in text and "\u2212" not in text


def test_preprocessing_balance_and_resizing_follow_the_counts():
    balanced = F.preprocessing_findings(split_stats(CLASSES7, sizes={"48x48": 8400}))
    assert "exactly balanced" in balanced and "not needed" in balanced
    assert states(balanced, "128×128", "224×224", "upsample", "all") and "downsample" not in balanced, balanced
    train = {c: 1000 for c in CLASSES8} | {"contempt": 400}
    skewed = F.preprocessing_findings(split_stats(CLASSES8, train, sizes={"256x256": 9000}, modes={"RGB": 8000,
                                                                                                 "L": 1000}))
    assert states(skewed, 400, "contempt", 1000) and states(skewed, "ratio", 2.5), skewed  # 1,000 / 400
    assert "class weights" in skewed and states(skewed, "above", 1.5), skewed
    assert states(skewed, "128×128", "224×224", "downsample", "all") and "upsample" not in skewed, skewed
    assert states(skewed, 1000, "L"), skewed  # the grayscale images counted
    mixed = F.preprocessing_findings(split_stats(CLASSES8, sizes={"224x224": 850, "160x160": 150}))
    assert states(mixed, "VGG16", "224×224", "upsamples", 15, 85), mixed  # the 150 of 1,000 at 160x160
    assert states(mixed, "128×128", "downsamples", "all") and "Downsampling keeps" in mixed, mixed
    mild = F.preprocessing_findings(split_stats(CLASSES8, {c: 1000 for c in CLASSES8} | {"contempt": 800}))
    assert states(mild, "within", 1.5) and "no re-weighting" in mild, mild
    assert "not been computed" in F.preprocessing_findings(None)


def test_training_claims_follow_the_gaps_and_the_curve():
    over = F.training_findings(metrics(CLASSES8, train=0.85, tune=0.61, val=0.60), history(10))
    assert "overfits" in over and states(over, "gap", 25.0), over  # 85 % train against 60 % validation
    assert states(over, "epoch", 10, 30) and "tune loss rose" in over, over
    fit = F.training_findings(metrics(CLASSES8, train=0.62, tune=0.61, val=0.60, best=30), history(30))
    assert "overfits" not in fit and "no material overfitting" in fit
    assert "still improving at the last epoch" in fit and "tune loss rose" not in fit
    late = F.training_findings(metrics(CLASSES8), history(29))
    assert states(late, "epoch", 29, 30) and "still improving" not in late, late
    assert "levelled off" in late or "tune loss rose" in late  # the curve after the peak is described
    apart = F.training_findings(metrics(CLASSES8, tune=0.66, val=0.60))
    assert states(apart, 6.0, "tune higher") and "fair stand-in" not in apart, apart
    assert "fair stand-in" in F.training_findings(metrics(CLASSES8))
    assert "has not been run" in F.training_findings(None)
    assert "smoke run" in F.training_findings(dict(metrics(CLASSES8), max_batches=2))


def test_training_names_the_easiest_hardest_classes_and_top_confusions():
    f1 = {c: 0.5 for c in CLASSES8} | {"happy": 0.9, "surprise": 0.8, "contempt": 0.1, "disgust": 0.3}
    pairs = {("contempt", "neutral"): 30, ("disgust", "angry"): 20, ("fear", "surprise"): 10}
    text = F.training_findings(metrics(CLASSES8, f1=f1, pairs=pairs))
    # each class with its F1, and the three largest confusions with their counts, in order
    assert states(text, "easiest", "happy", 0.9, "surprise", 0.8), text
    assert states(text, "hardest", "contempt", 0.1, "disgust", 0.3), text
    assert states(text, "contempt", "→", "neutral", 30, 200, "disgust", "→", "angry", 20, 200,
                  "fear", "→", "surprise", 10, 200), text
    assert states(text, 60, 113, "errors"), text  # 30 + 20 + 10 of the matrix's off-diagonal sum
    assert states(text, 12.5, "guessing", 8, "classes"), text  # 1 / 8


def test_comparison_states_cost_always_and_accuracy_only_when_both_ran():
    cost_only = F.comparison_findings(cards())
    assert states(cost_only, 36, "times") and states(cost_only, 120, 4, 30, "times"), cost_only  # params, latency
    assert states(cost_only, 8.3, "faces a second", 250), cost_only  # 1000 / 120 ms and 1000 / 4 ms
    assert "accuracy cannot be compared" in cost_only and "On accuracy" not in cost_only
    vgg_better = F.comparison_findings(cards(0.60, 0.70))
    assert states(vgg_better, "VGG16", 70.0, 60.0, "light VGG", 10.0), vgg_better
    assert "more accurate" not in vgg_better and "cannot be compared" not in vgg_better  # VGG16 is the better
    light_better = F.comparison_findings(cards(0.65, 0.60))
    assert states(light_better, "VGG16", 60.0, 65.0, "light VGG", 5.0) and "more accurate" in light_better
    # 1,600 faces: the 95% interval of the difference is 1.96 * sqrt(.6 * .4 / 1600 + .61 * .39 / 1600) = 3.4 points
    close = F.comparison_findings(cards(0.60, 0.61), n_validation=1600)
    assert states(close, +1.0, "±", 3.4, 95) and "no clear effect" in close, close  # +1: VGG16 minus light VGG
    clear = F.comparison_findings(cards(0.60, 0.70), n_validation=1600)
    assert states(clear, 10.0, "±", 3.3, 95) and "no clear effect" not in clear, clear
    assert "not been compared yet" in F.comparison_findings(None)
    smoke = F.comparison_findings(cards(0.60, 0.61), n_validation=1600, smoke=True)  # random VGG16 weights
    assert states(smoke, +1.0, "±", 3.4, "no conclusion") and "no clear effect" not in smoke, smoke


def test_cam_directions_against_the_area_share():
    text = F.cam_findings(regions(CLASSES8, border=0.30, eyes=0.26, mouth=0.40))
    # each region's share of the map against its share of the area, with the direction of the difference
    assert states(text, "border", 30.0, 13.8, "below", 43.8), text
    assert states(text, "eye", 26.0, "close", 25.0) and not states(text, "eye", 26.0, 1.0), text
    assert states(text, "mouth", 40.0, 15.0, "above", 25.0), text
    assert "favour the face clearly" in text
    assert "least on the mouth band" not in text  # every class above the mouth band's area share
    spread = F.cam_findings(regions(CLASSES7, border=0.42, mouth=0.14))
    assert "only slightly" in spread and states(spread, "mouth", 14.0, 11.0, "below", 25.0), spread
    # by class: the two classes with the least on the mouth band (0.14 - 0.03 and - 0.02), named with their shares
    assert states(spread, "angry", "disgust", "least", "mouth", 11.0, 12.0, "below", 25.0), spread
    with_se = regions(CLASSES7)
    with_se["border"][F.SE] = 0.004
    assert states(F.cam_findings(with_se), "border", 30.0, "±", 0.4)
    assert "not been measured" in F.cam_findings(None)


def test_each_class_of_the_cam_grids_is_described():
    classes = ["angry", "happy", "sad"]
    on_mouth, spread = {"border": 0.40, "eyes_band": 0.20, "mouth_band": 0.40}, dict(AREA)
    picks = [{"true": 0, "pred": 0, "confidence": 0.95, "correct": True, "regions": on_mouth},
             {"true": 0, "pred": 1, "confidence": 0.97, "correct": False, "regions": on_mouth},
             {"true": 0, "pred": 2, "confidence": 0.60, "correct": False, "regions": spread},
             {"true": 2, "pred": 2, "confidence": 0.80, "correct": True, "regions": spread}]
    m = {"classes": classes, "confusion_matrix": [[150, 30, 20], [5, 190, 5], [10, 10, 180]]}
    text = F.cam_face_findings(picks, classes, m, AREA)
    lines = text.split("\n")
    angry = next(line for line in lines if line.startswith("- `angry`"))
    # one line a class: its right face, then each wrong face's class, confidence and where its map lies
    assert states(angry, "angry", "right", 0.95, "mouth", 40, "%", "wrong", "happy", 0.97, "mouth", 40, "%", "sad",
                  0.60, "spread"), angry
    assert states(angry, "angry", "→", "happy", 30, 200, "shown"), angry  # its main confusion, among the faces
    sad = next(line for line in lines if line.startswith("- `sad`"))
    assert states(sad, "sad", "right", 0.8, "spread") and "wrong" not in sad, sad
    assert not any(line.startswith("- `happy`") for line in lines)  # no face of that class in the grids
    assert states(text, "One", "wrong", "angry", "happy", 0.9), text  # 0.97: one face above 0.9
    assert "wrong faces shown" not in text  # they were picked as the most confident: no finding
    assert "have not been drawn" in F.cam_face_findings(None, classes, m, AREA)


def test_the_grids_are_read_together():
    classes = ["angry", "happy", "sad"]
    on = {k: dict(AREA) for k in ("border", "eyes_band", "mouth_band")}
    for k in on:
        on[k][k] += 0.2  # this region stands out
    right = [{"true": t, "pred": t, "confidence": 0.9, "correct": True, "regions": on[r]}
             for t, r in ((0, "eyes_band"), (1, "mouth_band"), (2, "border"), (2, "mouth_band"))]
    wrong = [{"true": t, "pred": (t + 1) % 3, "confidence": c, "correct": False, "regions": on[r]}
             for t, r, c in ((0, "border", 0.98), (1, "border", 0.92), (2, "eyes_band", 0.5))]
    text = F.cam_face_findings(right + wrong, classes, None, AREA)
    assert states(text, "eyes or the mouth", 3, 4, "right", 1, 3, "wrong", "border", 1, 2), text
    assert "lean on the border more often" in text  # 2 of 3 wrong against 1 of 4 right
    swapped = F.cam_face_findings([dict(p, regions=on["mouth_band"]) for p in wrong] + right, classes, None, AREA)
    assert "lean on the border" not in swapped and "no region" not in swapped, swapped
    assert "true class" not in text  # the maps of the true class were not measured (an older cam_samples.json)
    # the third panel of each wrong face: where the map of the class it should have been lies
    true_on_face = F.cam_face_findings(right + [dict(p, regions_true=on["eyes_band"]) for p in wrong], classes,
                                       None, AREA)
    assert states(true_on_face, "true class", "eyes or the mouth", 3, "border", 0), true_on_face
    assert "evidence for the right class as well" in true_on_face  # 3 on the face against 1 for the predicted
    true_on_border = F.cam_face_findings(right + [dict(p, regions_true=on["border"]) for p in wrong], classes,
                                         None, AREA)
    assert "less evidence for the right class" in true_on_border, true_on_border


def test_the_delivered_models_gap_is_set_against_part_c():
    def run(train, val, **extra):
        return {"accuracy": val, "splits": {"train": {"accuracy": train}}, **extra}
    part_c = run(0.70, 0.60)
    rose = F.gap_findings(run(0.85, 0.62), part_c)
    assert states(rose, "delivered", 85.0, "gap", 23.0, 10.0, "part (c)") and "still rose" in rose, rose
    assert "overfits" in F.gap_findings(run(0.85, 0.58), part_c)
    assert "more closely" not in F.gap_findings(run(0.72, 0.61), part_c)  # about the same gap: no claim
    assert F.gap_findings(run(0.85, 0.62, max_batches=2), part_c) == "" and F.gap_findings(None, part_c) == ""


def test_screening_findings_come_from_the_table():
    screen = screen_table({"change_a": 0.03, "change_b": 0.005, "change_c": -0.06})
    text = F.screening_findings(screen, 0.01, n_tune=700)
    assert states(text, 3, "changes"), text
    assert states(text, "change_a", +3.0, "tune", +1.5, "validation", "cleared"), text
    assert states(text, "change_b", "noise") and states(text, "change_c", -6.0), text
    assert not states(text, "change_b", "cleared") and not states(text, "change_c", "cleared"), text
    tex = F.screening_findings(screen, 0.01, n_tune=700, fmt="tex")
    assert states(tex, "change a", +3.0, "tune") and "change_a" not in tex  # the name as prose, not an identifier
    assert "helps every row" in text
    assert F.passed_changes(screen, 0.01) == ["change_a"]
    assert "No change cleared" in F.screening_findings(screen_table({"change_a": 0.005}), 0.01)
    assert "screening has not been run" in F.screening_findings(None)


def test_class_weights_and_map_changes():
    assert "all 1" in F.class_weight_findings({c: 900 for c in CLASSES7})
    skewed = F.class_weight_findings({c: 1000 for c in CLASSES8} | {"contempt": 250})
    assert "would change the loss" in skewed and "250 to 1,000" in skewed
    shortcuts = {"plain": {"border": 0.43, "ffhq_other_predicted_happy_neutral": 0.34},
                 "delivered": {"border": 0.30, "ffhq_other_predicted_happy_neutral": 0.42}}
    sample = F.map_change_findings(shortcuts, sample_fingerprint(), AREA)
    assert "clearly less of its map on the border" in sample and "pull of photo style grew" in sample
    assert states(sample, 30, "border", 43, 44), sample  # delivered, plain model, area
    course = F.map_change_findings(shortcuts, fingerprint(CLASSES8))
    assert "FFHQ" not in course and "photo style" not in course
    assert "not been measured" in F.map_change_findings(None)


def test_top_confusions_are_the_largest_off_diagonal_cells():
    m = {"classes": ["a", "b", "c"], "confusion_matrix": [[5, 3, 0], [1, 6, 4], [2, 0, 9]]}
    assert F.top_confusions(m, 2) == [{"true": "b", "predicted": "c", "count": 4, "of": 11},
                                             {"true": "a", "predicted": "b", "count": 3, "of": 8}]
    assert len(F.top_confusions(m)) == 4  # only the non-zero errors


def test_the_improvement_is_stated_with_its_seeds_and_never_beyond_them():
    rows = ["plain, 30 epochs (part c)", "plain, 60 epochs", "label smoothing + EMA, 60 epochs"]
    table = pd.DataFrame({"seed 0": [0.59, 0.60, 0.62], "seed 1": [0.58, 0.61, 0.60], "macro-F1": [0.58, 0.60, 0.61]},
                         index=rows)
    table["mean"] = table[["seed 0", "seed 1"]].mean(axis=1)
    table["std"] = table[["seed 0", "seed 1"]].std(axis=1)
    text = F.improvement_findings(table)
    # +2.0 and -1.0 points on the two seeds: the signs differ, so no clear effect whatever the mean
    assert states(text, "gain", +0.5, +2.0, -1.0, "seeds") and "no clear effect" in text, text
    assert states(text, "longer schedule", +2.0, "proposal", +2.5) and "short of" in text, text
    consistent = table.assign(**{"seed 1": [0.58, 0.61, 0.63]})
    consistent["mean"] = consistent[["seed 0", "seed 1"]].mean(axis=1)
    text = F.improvement_findings(consistent)  # +2.0 points on both seeds, whose results differ by 1.0
    assert "the same sign for both seeds." in text and "small effect" not in text
    noisy = table.assign(**{"seed 1": [0.58, 0.57, 0.60]})  # +2.0 and +3.0, but seeds 3.0 points apart
    noisy["mean"] = noisy[["seed 0", "seed 1"]].mean(axis=1)
    assert states(F.improvement_findings(noisy), "within", 3.0, "spread", "seeds")
    one_seed = table.assign(**{"seed 1": [0.58, float("nan"), 0.60]})
    one_seed["mean"] = one_seed[["seed 0", "seed 1"]].mean(axis=1)
    text = F.improvement_findings(one_seed)
    assert "on seed 0" in text and states(text, +2.0, "one seed", "no spread"), text
    assert "has not been tested" in F.improvement_findings(None)

