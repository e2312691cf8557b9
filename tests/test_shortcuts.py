import numpy as np
import pytest

from facial_expression.shortcuts import ffhq_mask, photo_style_check, photo_style_summary, region_shares


def test_region_shares_of_a_uniform_map_are_the_area_shares():
    shares = region_shares(np.ones((2, 128, 128), np.float32))
    assert shares["border"] == pytest.approx(1 - 96 ** 2 / 128 ** 2)  # 0.4375: the outer 16-pixel ring
    assert shares["eyes_band"] == pytest.approx(32 / 128)  # rows 32-63
    assert shares["mouth_band"] == pytest.approx(32 / 128)  # rows 76-107


def test_region_shares_of_maps_in_one_region():
    ring = np.ones((1, 64, 64), np.float32)
    ring[:, 8:56, 8:56] = 0
    assert region_shares(ring)["border"] == pytest.approx(1.0)
    mouth = np.zeros((1, 64, 64), np.float32)
    mouth[:, 40:50, 20:44] = 0.5
    assert region_shares(mouth) == pytest.approx({"border": 0.0, "eyes_band": 0.0, "mouth_band": 1.0}, abs=1e-6)


def test_region_shares_average_over_maps_and_leave_them_unchanged():
    eyes = np.zeros((64, 64), np.float32)
    eyes[20:28, 16:48] = 1
    cams = np.stack([eyes, np.ones((64, 64), np.float32)])
    before = cams.copy()
    shares = region_shares(cams)
    assert shares["eyes_band"] == pytest.approx((1.0 + 0.25) / 2)
    np.testing.assert_array_equal(cams, before)


def test_region_shares_of_an_all_zero_map_do_not_divide_by_zero():
    shares = region_shares(np.zeros((1, 32, 32), np.float32))
    assert all(np.isfinite(v) for v in shares.values())


def test_ffhq_mask_marks_the_ffhq_files_by_name_only():
    paths = ["/d/happy/ffhq_00012.png", "/ffhq/sad/img_3.jpg", "FFHQ_7.png", "/d/sad/x.png"]
    assert ffhq_mask(paths).tolist() == [True, False, True, False]
    assert ffhq_mask([]).dtype == bool and ffhq_mask([]).shape == (0,)


def test_photo_style_check_and_summary_split_the_same_files():
    classes = ("happy", "neutral", "sad")
    paths = ["ffhq_1.png", "a.png", "ffhq_2.png", "b.png", "ffhq_3.png", "c.png"]
    y_true = np.array([0, 0, 2, 2, 2, 1])
    y_pred = np.array([0, 1, 0, 2, 1, 1])
    table = photo_style_check(paths, y_true, y_pred, classes)
    assert table.loc["sad", "ffhq_images"] == 2 and table.loc["sad", "other_images"] == 1
    assert table.loc["sad", "accuracy_ffhq"] == 0.0 and table.loc["sad", "accuracy_other"] == 1.0
    summary = photo_style_summary(paths, y_true, y_pred, classes)
    assert summary["ffhq_other_classes"] == 2 and summary["ffhq_other_predicted_happy_neutral"] == 1.0
    assert summary["nonffhq_other_classes"] == 1 and summary["nonffhq_other_predicted_happy_neutral"] == 0.0
