import copy
import dataclasses
import json
import math
import warnings

import pytest
import torch
from torch import nn

from facial_expression import training
from facial_expression.checkpoint import load_checkpoint
from facial_expression.config import TrainConfig
from facial_expression.data import SkippedFilesWarning, load_splits
from facial_expression.errors import NonFiniteLossError
from facial_expression.models import build_model, model_options
from facial_expression.training import class_weights, evaluate, fit, make_ema, make_optimizer, make_scheduler


def tiny_run(ds, **kw):
    """(config, splits, model, model options) of a 2-epoch LightVGG run on 32 x 32 images."""
    cfg = TrainConfig(**{"model": "light-vgg", "input_size": 32, "epochs": 2, "batch_size": 8, "lr": 1e-3,
                         "amp": "off", "augment": "standard", "tune_fraction": 0.25, "seed": 1, **kw})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFilesWarning)
        splits = load_splits(ds, 32, cfg.tune_fraction, cfg.seed, progress=False)
    torch.manual_seed(cfg.seed)
    opts = model_options(cfg)
    return cfg, splits, build_model("light-vgg", len(splits.classes), **opts), opts


def record_weights_per_epoch(monkeypatch, model) -> list[dict]:
    """Patch train_one_epoch to keep a copy of the model's weights after each epoch."""
    snapshots, original = [], training.train_one_epoch

    def train_and_snapshot(*a, **k):
        out = original(*a, **k)
        snapshots.append(copy.deepcopy(model.state_dict()))
        return out
    monkeypatch.setattr(training, "train_one_epoch", train_and_snapshot)
    return snapshots


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fit_writes_every_artefact(tiny_dataset, tmp_path, monkeypatch):
    cfg, splits, model, opts = tiny_run(tiny_dataset)
    snapshots = record_weights_per_epoch(monkeypatch, model)
    history = fit(model, splits, cfg, tmp_path / "run", opts, progress=False)
    for name in ("config.json", "history.json", "last.pt", "best.pt"):
        assert (tmp_path / "run" / name).exists()
    assert not (tmp_path / "run" / "ema.pt").exists()  # EMA is off by default
    assert [r["epoch"] for r in history.epochs] == [1, 2]
    assert set(history.epochs[0]) >= {"train_loss", "tune_accuracy", "validation_accuracy", "lr", "seconds"}
    assert "ema_tune_accuracy" not in history.epochs[0]
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg.augment_backend == "auto" and saved["augment_backend"] == "batched"  # recorded as resolved
    assert TrainConfig.from_dict(saved) == TrainConfig(**{**cfg.to_dict(), "augment_backend": "batched"})
    assert saved["world_size"] == 1

    rebuilt, ckpt = load_checkpoint(tmp_path / "run" / "best.pt")
    assert ckpt["classes"] == list(splits.classes) and ckpt["model_name"] == "light-vgg"
    assert ckpt["epoch"] == history.best_epoch and "optimizer" not in ckpt
    assert same_weights(ckpt["state_dict"], snapshots[history.best_epoch - 1])  # whichever epoch won
    x = torch.rand(2, 3, 32, 32)
    model.load_state_dict(snapshots[history.best_epoch - 1])
    model.eval()
    with torch.inference_mode():
        assert torch.allclose(rebuilt(x), model(x))
    last, last_ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last_ckpt["epoch"] == 2 and same_weights(last_ckpt["state_dict"], snapshots[-1])


def test_non_finite_loss_stops_the_run(tiny_dataset, tmp_path):
    cfg, splits, model, opts = tiny_run(tiny_dataset)
    with torch.no_grad():
        model.classifier[-1].weight.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match="loss became nan"):
        fit(model, splits, cfg, tmp_path / "nan", opts, progress=False)


def test_early_stopping_counts_epochs_since_the_best(tiny_dataset, tmp_path, monkeypatch):
    cfg, splits, model, opts = tiny_run(tiny_dataset, patience=2, schedule="cosine", optimizer="sgd",
                                        class_weights=True, label_smoothing=0.1)
    cfg.epochs = 6
    tune_accuracy = iter([0.5, 0.7, 0.6, 0.7, 0.9, 0.9])  # best at epoch 2; epochs 3 and 4 do not beat it
    original = training.evaluate

    def scripted(model, data, *a, **k):
        out = original(model, data, *a, **k)
        return {**out, "accuracy": next(tune_accuracy)} if data is splits.tune else out
    monkeypatch.setattr(training, "evaluate", scripted)
    h = fit(model, splits, cfg, tmp_path / "early", opts, progress=False)
    assert h.stopped_early and [r["epoch"] for r in h.epochs] == [1, 2, 3, 4]
    assert h.best_epoch == 2 and h.best_tune_accuracy == 0.7
    assert torch.load(tmp_path / "early" / "best.pt", weights_only=False)["epoch"] == 2
    # the recorded lr is the cosine schedule's after each epoch's last step (warm-up: the first epoch)
    steps = len(splits.train) // cfg.batch_size
    total, warm = cfg.epochs * steps, steps
    expected = [cfg.lr * 0.5 * (1 + math.cos(math.pi * (e * steps - warm) / (total - warm))) for e in range(1, 5)]
    assert [r["lr"] for r in h.epochs] == pytest.approx(expected)


def test_no_selection_reads_the_validation_labels(tiny_dataset, tmp_path):
    """validation/ is evaluated every epoch for the curves; the epoch kept is chosen on tune alone: with the
    validation labels scrambled, the same epochs are run, the same one is kept, with the same weights."""
    runs = []
    for scramble in (False, True):
        cfg, splits, model, opts = tiny_run(tiny_dataset)
        if scramble:
            v = splits.validation
            splits.validation = dataclasses.replace(v, labels=(v.labels + 1) % len(splits.classes))
        history = fit(model, splits, cfg, tmp_path / f"run{int(scramble)}", opts, progress=False)
        runs.append((history, torch.load(tmp_path / f"run{int(scramble)}" / "best.pt", weights_only=False)))
    (plain, best), (scrambled, best_scrambled) = runs
    # the loss: a tiny model that predicts one class keeps its accuracy when balanced labels are shifted
    assert [e["validation_loss"] for e in plain.epochs] != [e["validation_loss"] for e in scrambled.epochs]
    assert [e["tune_accuracy"] for e in plain.epochs] == [e["tune_accuracy"] for e in scrambled.epochs]
    assert plain.best_epoch == scrambled.best_epoch and best["epoch"] == best_scrambled["epoch"]
    assert same_weights(best["state_dict"], best_scrambled["state_dict"])


def test_class_weights_are_inverse_frequency():
    w = class_weights({"a": 100, "b": 300})
    assert torch.allclose(w, torch.tensor([1.5, 0.5]))


def drawn_mix(x, mixed):
    """(kind, lambda) of one MixUp/CutMix batch, read back from the images alone: MixUp blends every image with the
    one before it, lambda x + (1 - lambda) x_prev; CutMix pastes a box of x_prev, lambda = the share not pasted."""
    prev = x.roll(1, 0)
    if torch.equal(mixed, x):
        return "none", 1.0
    pasted = (mixed == prev) & (mixed != x)
    kept = mixed == x
    if bool((pasted | kept).all()):  # every pixel is one of the two images: a pasted box
        share = pasted.all(1).float().mean(dim=(1, 2))  # the same box in every image and channel
        assert torch.allclose(share, share[0]) and bool((pasted.any(1) == pasted.all(1)).all())
        return "cutmix", 1 - float(share[0])
    lam = float(((mixed - prev) * (x - prev)).sum() / ((x - prev) ** 2).sum())
    torch.testing.assert_close(mixed, lam * x + (1 - lam) * prev)
    return "mixup", lam


@pytest.mark.parametrize("mix", ["mixup", "cutmix", "both"])
def test_mix_trains_on_soft_labels(tiny_dataset, tmp_path, monkeypatch, mix):
    cfg, splits, model, opts = tiny_run(tiny_dataset, mix=mix, label_smoothing=0.1)
    mixer = training.make_mixer(cfg, len(splits.classes))
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 1])  # every image differs in class from the one before
    onehot = nn.functional.one_hot(y, 3).float()
    torch.manual_seed(0)
    kinds = set()
    for _ in range(12):
        mixed, soft = mixer(x, y)
        kind, lam = drawn_mix(x, mixed)
        kinds.add(kind)
        assert soft.shape == (4, 3) and torch.allclose(soft.sum(1), torch.ones(4))
        torch.testing.assert_close(soft, lam * onehot + (1 - lam) * onehot.roll(1, 0))  # the drawn lambda's labels
    assert kinds - {"none"} == ({"mixup", "cutmix"} if mix == "both" else {mix})

    # train_one_epoch's loss is taken on the mixer's soft labels: lambda CE(y) + (1 - lambda) CE(y_prev)
    seen, losses = [], []

    def spy_mixer(images, labels):
        out = mixer(images, labels)
        seen.append((images, *out))
        return out

    loss_fn = training.make_loss(cfg, splits.train.counts(), torch.device("cpu"))

    def spy_loss(logits, target):
        loss = loss_fn(logits, target)
        losses.append((logits.detach(), target, loss.item()))
        return loss

    torch.manual_seed(3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    out = training.train_one_epoch(model, [(x, y)], spy_loss, optimizer, progress=False, mixer=spy_mixer)
    (images, mixed, soft), (logits, target, loss) = seen[0], losses[0]
    assert target is soft and not torch.equal(target, onehot)
    kind, lam = drawn_mix(images, mixed)
    assert 0 < lam < 1, "seed 3 draws a real mix"
    soft_ce = [nn.functional.cross_entropy(logits, t, label_smoothing=0.1) for t in (y, y.roll(1))]
    assert loss == pytest.approx(lam * soft_ce[0].item() + (1 - lam) * soft_ce[1].item(), rel=1e-5)
    assert out["loss"] == pytest.approx(loss, rel=1e-6)
    assert out["accuracy"] == (logits.argmax(1) == soft.argmax(1)).float().mean().item()  # the dominant label

    # fit hands the configured mixer to every epoch (one batch of one epoch here: the checks above are the test)
    cfg.epochs, cfg.max_batches = 1, 1
    mixers, original = [], training.train_one_epoch

    def recording(*a, **k):
        mixers.append(k.get("mixer"))
        return original(*a, **k)
    monkeypatch.setattr(training, "train_one_epoch", recording)
    history = fit(model, splits, cfg, tmp_path / "run", opts, progress=False)
    assert all(math.isfinite(r["train_loss"]) for r in history.epochs)
    assert len(mixers) == 1 and type(mixers[0]) is type(mixer)
    with pytest.raises(training.FERError, match="unknown mix"):
        training.make_mixer(TrainConfig(mix="blend"), 3)


def test_flip_tta_averages_the_image_and_its_mirror(tiny_dataset):
    from facial_expression.data import BatchLoader
    from facial_expression.evaluation import predict
    cfg, splits, model, _ = tiny_run(tiny_dataset)
    model.eval()
    probs, labels = predict(model, splits.validation)
    tta, same_labels = predict(model, splits.validation, tta=True)
    x = torch.cat([b for b, _ in BatchLoader(splits.validation, 256)])
    with torch.inference_mode():
        mirrored = torch.softmax(model(x.flip(-1)), 1).numpy()
    assert (labels == same_labels).all()
    assert torch.allclose(torch.from_numpy(tta), torch.from_numpy((probs + mirrored) / 2), atol=1e-6)


def test_evaluate_is_cross_entropy_over_predict(tiny_dataset):
    from facial_expression.data import BatchLoader
    from facial_expression.evaluation import predict
    cfg, splits, model, _ = tiny_run(tiny_dataset)
    x, y = (torch.cat(t) for t in zip(*BatchLoader(splits.validation, 5)))
    model.eval()
    with torch.inference_mode():
        logits = model(x)
    m = evaluate(model, splits.validation, batch_size=5)
    assert m["loss"] == pytest.approx(nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    assert m["accuracy"] == pytest.approx((logits.argmax(1) == y).float().mean().item())
    probs, labels = predict(model, splits.validation, tta=True)
    assert evaluate(model, splits.validation, tta=True)["accuracy"] == pytest.approx((probs.argmax(1) == labels).mean())
    weighted = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 3.0]), label_smoothing=0.1)
    assert evaluate(model, splits.validation, weighted)["loss"] == pytest.approx(weighted(logits, y).item(), rel=1e-5)


def _lrs(cfg: TrainConfig, steps_per_epoch: int = 10) -> list[float]:
    """The learning rate of the first parameter group before each step of a whole run."""
    optimizer = make_optimizer(nn.Linear(2, 2), cfg)
    scheduler = make_scheduler(optimizer, cfg, steps_per_epoch)
    lrs = []
    for _ in range(cfg.epochs * steps_per_epoch):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return lrs


def _rises_then_falls(lrs: list[float], peak: int) -> bool:
    return (all(a < b for a, b in zip(lrs[:peak], lrs[1:peak + 1]))
            and all(a > b for a, b in zip(lrs[peak:], lrs[peak + 1:])))


def test_onecycle_warms_up_for_30_percent_then_decays():
    lrs = _lrs(TrainConfig(schedule="onecycle", epochs=5, lr=1e-2))
    peak = max(range(len(lrs)), key=lrs.__getitem__)
    assert peak == pytest.approx(0.3 * len(lrs), abs=1) and lrs[peak] == pytest.approx(1e-2)
    assert lrs[0] == pytest.approx(1e-2 / 25) and lrs[-1] < lrs[0] / 100  # torch's div_factor, final_div_factor
    assert _rises_then_falls(lrs, peak)


def test_cosine_warms_up_linearly_then_decays_to_zero():
    lrs = _lrs(TrainConfig(schedule="cosine", epochs=5, warmup_epochs=1.0, lr=1e-2))
    warm = 10  # one epoch of 10 steps
    assert lrs[:warm + 1] == pytest.approx([1e-2 * (k + 1) / (warm + 1) for k in range(warm)] + [1e-2])
    assert _rises_then_falls(lrs, warm)
    assert lrs[-1] == pytest.approx(1e-2 * 0.5 * (1 + math.cos(math.pi * 39 / 40)))  # close to 0


def test_no_schedule_keeps_the_learning_rate():
    cfg = TrainConfig(schedule="none")
    assert make_scheduler(make_optimizer(nn.Linear(2, 2), cfg), cfg, 10) is None
    assert set(_lrs(TrainConfig(schedule="none", epochs=2, lr=3e-4))) == {3e-4}
    with pytest.raises(training.FERError, match="unknown schedule"):
        _lrs(TrainConfig(schedule="step"))


def test_vgg16_head_gets_ten_times_the_body_lr():
    model = build_model("vgg16", 3, weights=None)  # freeze="features": the body is the classifier's first layers
    optimizer = make_optimizer(model, TrainConfig(model="vgg16", lr=1e-4, head_lr_mult=10.0))
    body, head = optimizer.param_groups
    assert [id(p) for p in head["params"]] == [id(p) for p in model.head_parameters()]
    assert head["lr"] == pytest.approx(10 * body["lr"]) and body["lr"] == pytest.approx(1e-4)
    frozen = {id(p) for p in model.features.parameters()}
    assert not frozen & {id(p) for p in body["params"]}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for g in optimizer.param_groups for p in g["params"]} == trainable


def _cpu_bf16_autocast() -> bool:
    if not torch.amp.is_autocast_available("cpu"):
        return False
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    except RuntimeError:
        return False


@pytest.mark.skipif(not _cpu_bf16_autocast(), reason="this torch has no bf16 autocast on the CPU")
def test_one_training_step_under_bf16_autocast(tiny_dataset):
    cfg, splits, model, _ = tiny_run(tiny_dataset)
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    before = copy.deepcopy(model.state_dict())
    optimizer = make_optimizer(model, cfg)
    out = training.train_one_epoch(model, [(x, y)], nn.CrossEntropyLoss(), optimizer, dtype=torch.bfloat16,
                                   progress=False)
    assert math.isfinite(out["loss"])
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast keeps fp32 master weights
    assert not same_weights(before, model.state_dict())
    with torch.inference_mode(), training.autocast(torch.device("cpu"), torch.bfloat16):
        assert model.eval()(x).dtype == torch.bfloat16
    assert math.isfinite(evaluate(model, splits.validation, dtype=torch.bfloat16)["loss"])


def test_ema_with_decay_one_half_after_two_steps():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    ema = make_ema(model, 0.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    states = []
    for _ in range(2):
        batch = [(torch.randn(6, 4), torch.randint(0, 3, (6,)))]
        training.train_one_epoch(model, batch, nn.CrossEntropyLoss(), optimizer, progress=False, ema=ema)
        states.append(copy.deepcopy(model.state_dict()))
    averaged = ema.module.state_dict()
    assert int(ema.n_averaged) == 2
    for name, value in averaged.items():
        if value.is_floating_point():  # weights, biases and BatchNorm's running statistics
            # torch's EMA starts at the first step's weights: W1, then 0.5 * W1 + 0.5 * W2
            assert torch.allclose(value, 0.5 * states[0][name] + 0.5 * states[1][name]), name
    assert not torch.allclose(averaged["0.weight"], states[1]["0.weight"])
    assert make_ema(model, 0.0) is None


def test_fit_with_ema_logs_it_and_saves_the_final_average(tiny_dataset, tmp_path):
    cfg, splits, model, opts = tiny_run(tiny_dataset, ema=0.9)
    history = fit(model, splits, cfg, tmp_path / "run", opts, progress=False)
    assert all({"ema_tune_accuracy", "ema_tune_loss"} <= set(r) for r in history.epochs)
    ema_model, ckpt = load_checkpoint(tmp_path / "run" / "ema.pt")
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    steps = len(splits.train) // cfg.batch_size
    assert ckpt["epoch"] == 2 and ckpt["ema_steps"] == 2 * steps == int(last["ema"]["n_averaged"])
    averaged = {k.removeprefix("module."): v for k, v in last["ema"].items() if k.startswith("module.")}
    assert same_weights(ema_model.state_dict(), averaged)  # the EMA state that last.pt resumes from
    assert not same_weights(ema_model.state_dict(), last["state_dict"])  # not the raw weights
    again = evaluate(ema_model, splits.tune, batch_size=cfg.eval_batch_size)
    assert again["accuracy"] == pytest.approx(history.epochs[-1]["ema_tune_accuracy"])
    assert again["loss"] == pytest.approx(history.epochs[-1]["ema_tune_loss"], rel=1e-5)


@pytest.mark.parametrize("policy, backend, expected", [
    ("standard", "auto", "batched"), ("strong", "auto", "batched"), ("trivial", "auto", "v2"),
    ("standard", "v2", "v2"), ("standard", "batched", "batched"), ("trivial", "v2", "v2")])
def test_auto_augments_whole_batches_except_trivialaugment(policy, backend, expected):
    from facial_expression.data import choose_backend
    chosen, why = choose_backend(backend, policy, "cpu")
    assert chosen == expected
    if policy == "trivial":
        assert "per image" in why


def test_batched_trivialaugment_is_refused_in_one_line():
    from facial_expression.data import choose_backend
    from facial_expression.errors import ConfigError
    with pytest.raises(ConfigError, match="one operation per image|different operation per image"):
        choose_backend("batched", "trivial", "cpu")


def test_auto_keeps_the_backend_of_the_run_it_resumes():
    cfg = TrainConfig()
    assert training.augment_backend_for(cfg, torch.device("cpu"), None)[0] == "batched"
    for saved, expected in (({"augment_backend": "v2"}, "v2"), ({"augment_backend": "batched"}, "batched"),
                            ({}, "v2")):  # a config written before the setting existed: v2, the only backend then
        assert training.augment_backend_for(cfg, torch.device("cpu"), {"config": saved}) == \
            (expected, "the backend the resumed run was trained with")
    old = json.loads(json.dumps(TrainConfig(augment_backend="v2").to_dict()))
    assert cfg.differences(old) == {}  # a committed v2 run is this run: nothing is retrained
    assert TrainConfig(augment_backend="batched").differences(old) == {"augment_backend": ("v2", "batched")}
