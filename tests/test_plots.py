"""Figures are drawn at print size: no text under 8 pt and no figure wider than the report's text."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pdfplumber  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from facial_expression import plots  # noqa: E402
from facial_expression.analytic import equivariance_demo, equivariance_figure  # noqa: E402
from facial_expression.cam import cam_grid  # noqa: E402
from facial_expression.config import AugmentConfig  # noqa: E402
from facial_expression.data import ImageSet  # noqa: E402

CLASSES = ["neutral", "happy", "sad", "surprise", "fear", "disgust", "angry", "contempt"]
REPORT_TEXT_WIDTH_PT = (210 - 2 * 23) / 25.4 * 72  # A4 with the report's 2.3 cm margins


def _images(n: int, size: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def _history(epochs: int = 5) -> dict:
    rows = [{"epoch": e, **{f"{s}_{m}": 1.0 / e for s in ("train", "tune", "validation") for m in ("loss", "accuracy")}}
            for e in range(1, epochs + 1)]
    return {"epochs": rows, "best_epoch": 3}


def _figures():
    rng = np.random.default_rng(0)
    k = len(CLASSES)
    cm = rng.integers(0, 1000, (k, k))  # four-digit counts: the widest cell text
    y = np.arange(200) % k
    probs = rng.dirichlet(np.ones(k), 200)
    data = ImageSet(_images(3 * k), torch.arange(3 * k) % k, CLASSES, [f"{i}.png" for i in range(3 * k)])
    picks = [{"index": i, "true": i % k, "pred": (i + 1) % k, "correct": False, "confidence": 0.5} for i in range(k)]
    cams = rng.random((k, 32, 32)).astype(np.float32)
    images = _images(k).float() / 255
    confusion = {"confusion_matrix": cm.tolist(), "classes": CLASSES, "n": int(cm.sum())}
    yield "confusion", plots.plot_confusions({s: confusion for s in ("train", "tune", "validation")})
    yield "roc", plots.plot_roc(y, probs, CLASSES)
    yield "history", plots.plot_history(_history())
    yield "samples", plots.sample_grid(data)
    yield "augmented", plots.augmented_grid(data, AugmentConfig.preset("standard"))
    yield "cam_wrong", cam_grid(picks, images, cams, cams, CLASSES, correct=False)
    yield "q1", equivariance_figure(equivariance_demo())


@pytest.mark.parametrize("name_fig", _figures(), ids=lambda nf: nf[0])
def test_figures_print_at_8_pt_or_more_within_the_text_width(tmp_path, name_fig):
    name, fig = name_fig
    pdf = plots.save_figure(fig, tmp_path / name)[1]
    plt.close(fig)
    with pdfplumber.open(pdf) as doc:
        page = doc.pages[0]
        sizes = [c["size"] for c in page.chars if c["upright"]]
        assert sizes, "no text found"
        assert min(sizes) >= plots.SMALL_FONT_SIZE - 0.05 >= 7.95, (name, min(sizes))
        assert page.width <= REPORT_TEXT_WIDTH_PT, (name, page.width)


def test_style_is_set_in_one_place_and_leaves_the_callers_settings_alone():
    before = dict(plt.rcParams)
    fig = plots.plot_history(_history())
    assert fig.axes[0].xaxis.label.get_fontsize() == plots.FONT_SIZE
    assert fig.axes[1].get_legend().get_texts()[0].get_fontsize() == plots.SMALL_FONT_SIZE
    plt.close(fig)
    assert plt.rcParams["font.size"] == before["font.size"]
