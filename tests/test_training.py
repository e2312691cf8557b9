import json
import warnings

import pytest
import torch

from facial_expression import training
from facial_expression.config import TrainConfig
from facial_expression.data import SkippedFilesWarning, load_splits
from facial_expression.errors import NonFiniteLossError
from facial_expression.models import build_model, model_options
from facial_expression.training import class_weights, fit, load_checkpoint


def _setup(ds, **kw):
    cfg = TrainConfig(model="light-vgg", input_size=32, epochs=2, batch_size=8, lr=1e-3, amp="off",
                      augment="standard", tune_fraction=0.25, seed=1, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFilesWarning)
        splits = load_splits(ds, 32, cfg.tune_fraction, cfg.seed, progress=False)
    torch.manual_seed(cfg.seed)
    opts = model_options(cfg)
    return cfg, splits, build_model("light-vgg", len(splits.classes), **opts), opts


def test_fit_writes_every_artefact(tiny_dataset, tmp_path):
    cfg, splits, model, opts = _setup(tiny_dataset)
    history = fit(model, splits, cfg, tmp_path / "run", opts, progress=False)
    for name in ("config.json", "history.json", "last.pt", "best.pt"):
        assert (tmp_path / "run" / name).exists()
    assert [r["epoch"] for r in history.epochs] == [1, 2]
    assert set(history.epochs[0]) >= {"train_loss", "tune_accuracy", "validation_accuracy", "lr", "seconds"}
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert TrainConfig.from_dict(saved) == cfg
    rebuilt, ckpt = load_checkpoint(tmp_path / "run" / "best.pt")
    assert ckpt["classes"] == list(splits.classes) and ckpt["model_name"] == "light-vgg"
    x = torch.rand(2, 3, 32, 32)
    model.eval()
    if ckpt["epoch"] == 1:
        assert torch.allclose(rebuilt(x), model(x))


def test_resume_gives_the_same_next_step(tiny_dataset, tmp_path):
    cfg, splits, model, opts = _setup(tiny_dataset)
    fit(model, splits, cfg, tmp_path / "straight", opts, progress=False)

    cfg1, splits, model1, _ = _setup(tiny_dataset)
    cfg1.epochs = 2
    original = training.train_one_epoch
    calls = {"n": 0}

    def stop_after_first(*a, **k):  # run epoch 1, then "crash" before epoch 2
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(*a, **k)
    training.train_one_epoch = stop_after_first
    try:
        h = fit(model1, splits, cfg1, tmp_path / "resumed", opts, progress=False)
    finally:
        training.train_one_epoch = original
    assert h.interrupted and len(h.epochs) == 1
    assert json.loads((tmp_path / "resumed" / "history.json").read_text())["interrupted"] is True

    _, _, model2, _ = _setup(tiny_dataset)
    h2 = fit(model2, splits, cfg1, tmp_path / "resumed", opts, progress=False)
    assert len(h2.epochs) == 2 and not h2.interrupted
    for (n, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), n


def test_non_finite_loss_stops_the_run(tiny_dataset, tmp_path):
    cfg, splits, model, opts = _setup(tiny_dataset)
    with torch.no_grad():
        model.classifier[-1].weight.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match="loss became nan"):
        fit(model, splits, cfg, tmp_path / "nan", opts, progress=False)


def test_early_stopping_and_schedules(tiny_dataset, tmp_path):
    cfg, splits, model, opts = _setup(tiny_dataset, patience=1, schedule="cosine", optimizer="sgd",
                                      class_weights=True, label_smoothing=0.1)
    cfg.epochs, cfg.lr = 6, 0.0  # nothing changes, so the tune accuracy cannot improve
    h = fit(model, splits, cfg, tmp_path / "early", opts, progress=False)
    assert h.stopped_early and len(h.epochs) == 2


def test_class_weights_are_inverse_frequency():
    w = class_weights({"a": 100, "b": 300})
    assert torch.allclose(w, torch.tensor([1.5, 0.5]))


@pytest.mark.parametrize("mix", ["mixup", "cutmix", "both"])
def test_mix_trains_on_soft_labels(tiny_dataset, tmp_path, mix):
    cfg, splits, model, opts = _setup(tiny_dataset, mix=mix, label_smoothing=0.1)
    mixer = training.make_mixer(cfg, len(splits.classes))
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    mixed, soft = mixer(x, y)
    assert mixed.shape == x.shape and soft.shape == (4, 3)
    assert torch.allclose(soft.sum(1), torch.ones(4))
    history = fit(model, splits, cfg, tmp_path / "run", opts, progress=False)
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in history.epochs)
    with pytest.raises(training.FERError, match="unknown mix"):
        training.make_mixer(TrainConfig(mix="blend"), 3)


def test_flip_tta_averages_the_image_and_its_mirror(tiny_dataset):
    from facial_expression.data import BatchLoader
    from facial_expression.evaluation import predict
    cfg, splits, model, _ = _setup(tiny_dataset)
    model.eval()
    probs, labels = predict(model, splits.validation)
    tta, same_labels = predict(model, splits.validation, tta=True)
    x = torch.cat([b for b, _ in BatchLoader(splits.validation, 256)])
    with torch.inference_mode():
        mirrored = torch.softmax(model(x.flip(-1)), 1).numpy()
    assert (labels == same_labels).all()
    assert torch.allclose(torch.from_numpy(tta), torch.from_numpy((probs + mirrored) / 2), atol=1e-6)


def test_resume_refuses_a_changed_schedule_dataset_or_class_set(tiny_dataset, tmp_path):
    from facial_expression.data.fingerprint import dataset_fingerprint
    from facial_expression.errors import FERError
    cfg, splits, model, opts = _setup(tiny_dataset)
    fp = dataset_fingerprint(splits.layout, splits)
    fit(model, splits, cfg, tmp_path / "run", opts, progress=False, dataset=fp)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["dataset"]["files_sha1"] == fp["files_sha1"]
    assert torch.load(tmp_path / "run" / "best.pt", weights_only=False)["dataset"] == fp

    longer = TrainConfig(**{**cfg.to_dict(), "epochs": 3})
    with pytest.raises(FERError, match="2-epoch schedule and 3 epochs were asked for.*--no-resume"):
        fit(model, splits, longer, tmp_path / "run", opts, progress=False, dataset=fp)
    other = dict(fp, files_sha1="0" * 16)
    with pytest.raises(FERError, match="trained on other data: the image files differ"):
        fit(model, splits, cfg, tmp_path / "run", opts, progress=False, dataset=other)
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert "classes" in training.resume_problem(state, cfg, ["a", "b", "c", "d"], fp)
    assert training.resume_problem(state, cfg, splits.classes, fp) is None  # same run: resumes (nothing left)
