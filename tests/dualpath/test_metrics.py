"""dualpath.metrics against scikit-learn / scikit-image (test-only references) and hand-worked MLCM cases."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from sklearn import metrics as skm

from dualpath import metrics
from dualpath.contract import CLASS_NAMES, NUM_CLASSES

SEEDS = (0, 1, 2)
N_SAMPLES = 200


def make_multilabel(seed: int, n: int = N_SAMPLES, c: int = NUM_CLASSES) -> tuple[np.ndarray, np.ndarray]:
    """Scene-like labels (0 to 3 per sample) and informative scores rounded to 2 decimals, so ties occur."""
    rng = np.random.default_rng(seed)
    y = np.zeros((n, c), dtype=np.uint8)
    for i, k in enumerate(rng.integers(0, 4, size=n)):
        y[i, rng.choice(c, size=k, replace=False)] = 1
    scores = np.clip(0.35 * y + rng.random((n, c)) * 0.8, 0.0, 1.0).round(2)
    return y, scores


# ----------------------------------------------------------------------------- top-T


def test_top_t_keeps_as_many_labels_as_are_true_and_the_highest_scores():
    y, s = make_multilabel(0)
    pred = metrics.top_t(y, s)
    assert pred.dtype == np.uint8 and pred.shape == y.shape
    np.testing.assert_array_equal(pred.sum(axis=1), y.sum(axis=1))
    for i in range(len(y)):
        kept, dropped = s[i][pred[i] == 1], s[i][pred[i] == 0]
        if kept.size and dropped.size:
            assert kept.min() >= dropped.max()


def test_top_t_breaks_ties_by_lower_class_index_and_predicts_nothing_without_labels():
    y = np.array([[1, 1, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0]])
    s = np.array([[0.2, 0.7, 0.7, 0.7], [0.9, 0.9, 0.9, 0.9], [0.5, 0.5, 0.5, 0.1]])
    expected = np.array([[0, 1, 1, 0], [0, 0, 0, 0], [1, 0, 0, 0]])
    np.testing.assert_array_equal(metrics.top_t(y, s), expected)


# ----------------------------------------------------------------------------- multi-label vs sklearn


@pytest.mark.parametrize("seed", SEEDS)
def test_multilabel_metrics_match_sklearn(seed):
    y, s = make_multilabel(seed)
    got = metrics.multilabel_metrics(y, s)
    pred = metrics.top_t(y, s)
    p_macro, r_macro, f_macro, _ = skm.precision_recall_fscore_support(y, pred, average="macro", zero_division=0)
    p_micro, r_micro, f_micro, _ = skm.precision_recall_fscore_support(y, pred, average="micro", zero_division=0)
    expected = {
        "accuracy": 1.0 - skm.hamming_loss(y, pred),
        "hamming_loss": skm.hamming_loss(y, pred),
        "macro_auc": skm.roc_auc_score(y, s, average="macro"),
        "macro_map": skm.average_precision_score(y, s, average="macro"),
        "micro_map": skm.average_precision_score(y, s, average="micro"),
        "macro_precision": p_macro,
        "macro_recall": r_macro,
        "macro_f1": f_macro,
        "micro_precision": p_micro,
        "micro_recall": r_micro,
        "micro_f1": f_micro,
    }
    assert set(got) == set(metrics.LABEL_KEYS) | {"auc_excluded_classes"}
    assert got["auc_excluded_classes"] == []
    for key, value in expected.items():
        assert isinstance(got[key], float), key
        assert got[key] == pytest.approx(value, abs=1e-9), key
    # Top-T predicts as many labels as are true, so micro precision, recall and F1 coincide (paper Table II).
    assert got["micro_precision"] == pytest.approx(got["micro_recall"]) == pytest.approx(got["micro_f1"])
    json.dumps(got)  # metrics.json material: plain floats and a list of ints


@pytest.mark.parametrize("seed", SEEDS)
def test_per_class_report_matches_sklearn(seed):
    y, s = make_multilabel(seed)
    report = metrics.per_class_report(y, s, CLASS_NAMES)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y, metrics.top_t(y, s), average=None, zero_division=0
    )
    assert [row["name"] for row in report] == list(CLASS_NAMES)
    for j, row in enumerate(report):
        assert row["support"] == support[j]
        assert row["precision"] == pytest.approx(precision[j], abs=1e-9)
        assert row["recall"] == pytest.approx(recall[j], abs=1e-9)
        assert row["f1"] == pytest.approx(f1[j], abs=1e-9)
        assert row["ap"] == pytest.approx(skm.average_precision_score(y[:, j], s[:, j]), abs=1e-9)
        assert row["auc"] == pytest.approx(skm.roc_auc_score(y[:, j], s[:, j]), abs=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
def test_roc_curves_match_sklearn(seed):
    y, s = make_multilabel(seed)
    curves = metrics.roc_curves(y, s)
    assert len(curves) == NUM_CLASSES
    for j, (fpr, tpr) in enumerate(curves):
        ref_fpr, ref_tpr, _ = skm.roc_curve(y[:, j], s[:, j], drop_intermediate=False)
        np.testing.assert_allclose(fpr, ref_fpr, atol=1e-12)
        np.testing.assert_allclose(tpr, ref_tpr, atol=1e-12)


def test_classes_without_positives_or_negatives_are_left_out_and_reported(caplog):
    y, s = make_multilabel(3)
    y[:, 4] = 0  # no positives
    y[:, 7] = 1  # no negatives
    keep = [j for j in range(NUM_CLASSES) if j not in (4, 7)]
    with caplog.at_level(logging.WARNING, logger="dualpath.metrics"):
        got = metrics.multilabel_metrics(y, s, class_names=CLASS_NAMES)
    assert got["auc_excluded_classes"] == [4, 7]
    assert CLASS_NAMES[4] in caplog.text and CLASS_NAMES[7] in caplog.text
    assert got["macro_auc"] == pytest.approx(skm.roc_auc_score(y[:, keep], s[:, keep]), abs=1e-9)
    assert got["macro_map"] == pytest.approx(skm.average_precision_score(y[:, keep], s[:, keep]), abs=1e-9)
    # Thresholded macro metrics still average every class, as sklearn does with zero_division=0.
    _, _, f_macro, _ = skm.precision_recall_fscore_support(y, metrics.top_t(y, s), average="macro", zero_division=0)
    assert got["macro_f1"] == pytest.approx(f_macro, abs=1e-9)

    report = metrics.per_class_report(y, s, CLASS_NAMES)
    assert report[4]["ap"] is report[4]["auc"] is report[7]["ap"] is report[7]["auc"] is None
    json.dumps(report)
    curves = metrics.roc_curves(y, s)
    assert np.isnan(curves[4][1]).all() and np.isnan(curves[7][0]).all()


def test_class_never_true_nor_predicted_scores_zero_like_sklearn_zero_division_0():
    y, s = make_multilabel(5)
    y[:, 2] = 0
    s[:, 2] = -1.0  # below every other score: top-T never picks class 2
    pred = metrics.top_t(y, s)
    assert pred[:, 2].sum() == 0
    row = metrics.per_class_report(y, s, CLASS_NAMES)[2]
    assert (row["precision"], row["recall"], row["f1"]) == (0.0, 0.0, 0.0)
    p_macro, r_macro, f_macro, _ = skm.precision_recall_fscore_support(y, pred, average="macro", zero_division=0)
    got = metrics.multilabel_metrics(y, s)
    assert (got["macro_precision"], got["macro_recall"], got["macro_f1"]) == pytest.approx((p_macro, r_macro, f_macro))


def test_nothing_rankable_gives_nan_macro_ranking_metrics():
    y = np.zeros((5, 3), dtype=np.uint8)
    got = metrics.multilabel_metrics(y, np.random.default_rng(0).random((5, 3)))
    assert np.isnan(got["macro_auc"]) and np.isnan(got["macro_map"]) and np.isnan(got["micro_map"])
    assert got["auc_excluded_classes"] == [0, 1, 2]
    assert got["accuracy"] == 1.0  # nothing true, nothing predicted


@pytest.mark.parametrize(
    ("y", "s", "match"),
    [
        (np.ones((4, 3)), np.ones((4, 2)), "same"),
        (np.array([[0, 2], [1, 0]]), np.ones((2, 2)), "only 0 and 1"),
        (np.array([[0, 1], [1, 0]]), np.array([[0.1, np.nan], [0.3, 0.4]]), "NaN"),
        (np.array([0, 1, 1]), np.array([0.1, 0.2, 0.3]), r"\(N, C\)"),
        (np.array([["a", "b"]]), np.ones((1, 2)), "numeric"),
    ],
)
def test_bad_classification_inputs_raise(y, s, match):
    with pytest.raises(ValueError, match=match):
        metrics.multilabel_metrics(y, s)
    with pytest.raises(ValueError, match=match):
        metrics.top_t(y, s)


def test_wrong_number_of_class_names_raises():
    y, s = make_multilabel(0, c=4)
    with pytest.raises(ValueError, match="3 class names for 4"):
        metrics.per_class_report(y, s, ["a", "b", "c"])
    with pytest.raises(ValueError, match="3 class names for 4"):
        metrics.multilabel_metrics(y, s, class_names=["a", "b", "c"])


# ----------------------------------------------------------------------------- MLCM (Heydarian et al. 2022)

C5 = 5  # classes 0..4 in the hand-worked cases; index 5 is the NTL row / NPL column
NONE = C5


def mlcm_one(true: set[int], pred: set[int]) -> np.ndarray:
    t = np.zeros((1, C5), dtype=np.uint8)
    p = np.zeros((1, C5), dtype=np.uint8)
    t[0, list(true)] = 1
    p[0, list(pred)] = 1
    return metrics.mlcm(t, p)


def matrix(cells: dict[tuple[int, int], int]) -> np.ndarray:
    m = np.zeros((C5 + 1, C5 + 1), dtype=np.int64)
    for (row, col), count in cells.items():
        m[row, col] = count
    return m


@pytest.mark.parametrize(
    ("true", "pred", "cells"),
    [
        # Category 1, all true labels predicted and nothing extra: T = P = {0, 2} -> diagonal only.
        ({0, 2}, {0, 2}, {(0, 0): 1, (2, 2): 1}),
        # Category 2, extra prediction(s), nothing missed: T = {0}, P = {0, 1, 3}.
        # TP 0 -> (0, 0); FP 1 and 3 go to the row of every true label: (0, 1), (0, 3).
        ({0}, {0, 1, 3}, {(0, 0): 1, (0, 1): 1, (0, 3): 1}),
        # Category 2 with two true labels: T = {0, 2}, P = {0, 1, 2}. TP 0, 2 on the diagonal; the FP 1 is
        # counted in both true rows: (0, 1) and (2, 1).
        ({0, 2}, {0, 1, 2}, {(0, 0): 1, (2, 2): 1, (0, 1): 1, (2, 1): 1}),
        # Category 3, missed label(s), nothing extra: T = {0, 1, 3}, P = {1}. TP 1 -> (1, 1); FN 0 and 3 go
        # to the "no predicted label" column: (0, NPL), (3, NPL).
        ({0, 1, 3}, {1}, {(1, 1): 1, (0, NONE): 1, (3, NONE): 1}),
        # Category 3 with no prediction at all: T = {2}, P = {} -> (2, NPL).
        ({2}, set(), {(2, NONE): 1}),
        # Category 4, both missed and extra: T = {0, 1, 2}, P = {0, 3, 4}. TP 0 -> (0, 0); the FN rows {1, 2}
        # get the FP columns {3, 4}: (1, 3), (1, 4), (2, 3), (2, 4). The TP row 0 gets no FP.
        ({0, 1, 2}, {0, 3, 4}, {(0, 0): 1, (1, 3): 1, (1, 4): 1, (2, 3): 1, (2, 4): 1}),
        # Category 4 for one label, a plain misclassification: T = {1}, P = {3} -> (1, 3), as a multi-class
        # confusion matrix would count it.
        ({1}, {3}, {(1, 3): 1}),
        # Category 4 without TP: T = {0, 1}, P = {2, 3} -> every (FN, FP) pair once.
        ({0, 1}, {2, 3}, {(0, 2): 1, (0, 3): 1, (1, 2): 1, (1, 3): 1}),
        # No true label, predictions: T = {}, P = {2, 3} -> the "no true label" row: (NTL, 2), (NTL, 3).
        (set(), {2, 3}, {(NONE, 2): 1, (NONE, 3): 1}),
        # No true label and no prediction: the (NTL, NPL) corner.
        (set(), set(), {(NONE, NONE): 1}),
    ],
)
def test_mlcm_hand_worked_cases(true, pred, cells):
    np.testing.assert_array_equal(mlcm_one(true, pred), matrix(cells))


def test_mlcm_sums_samples_and_returns_int64():
    rng = np.random.default_rng(0)
    t = (rng.random((300, 6)) < 0.3).astype(np.uint8)
    p = (rng.random((300, 6)) < 0.3).astype(np.uint8)
    m = metrics.mlcm(t, p)
    assert m.dtype == np.int64 and m.shape == (7, 7)
    np.testing.assert_array_equal(m, sum(metrics.mlcm(t[i : i + 1], p[i : i + 1]) for i in range(len(t))))
    np.testing.assert_array_equal(np.diag(m)[:6], np.sum(t & p, axis=0))  # the diagonal counts TPs


def test_mlcm_of_single_label_data_is_the_ordinary_confusion_matrix():
    rng = np.random.default_rng(1)
    true_idx, pred_idx = rng.integers(0, 4, 100), rng.integers(0, 4, 100)
    t, p = np.eye(4, dtype=np.uint8)[true_idx], np.eye(4, dtype=np.uint8)[pred_idx]
    m = metrics.mlcm(t, p)
    np.testing.assert_array_equal(m[:4, :4], skm.confusion_matrix(true_idx, pred_idx, labels=range(4)))
    assert m[4].sum() == 0 and m[:, 4].sum() == 0


def test_mlcm_rejects_bad_input():
    with pytest.raises(ValueError, match="same"):
        metrics.mlcm(np.ones((3, 4)), np.ones((3, 5)))
    with pytest.raises(ValueError, match="y_pred must hold only 0 and 1"):
        metrics.mlcm(np.ones((2, 2)), np.full((2, 2), 0.7))


def _in_reference_corner_case(t: np.ndarray, p: np.ndarray) -> bool:
    """The case where the authors' mlcm.cm departs from the paper's rule (see dualpath.metrics.mlcm)."""
    tp, fn, fp = np.sum(t & p), np.sum(t & ~p), np.sum(p & ~t)
    return t.sum() >= 2 and tp >= 1 and fn >= 1 and fp >= 2


def test_mlcm_matches_the_authors_package(monkeypatch):
    reference = pytest.importorskip("mlcm.mlcm", reason="the `mlcm` package (Heydarian et al.) is not installed")
    # mlcm 0.0.1 (the only release) uses np.int, removed in numpy 1.24; give it back for this test only.
    monkeypatch.setattr(np, "int", int, raising=False)
    rng = np.random.default_rng(2)
    t = rng.random((400, 6)) < 0.35
    p = rng.random((400, 6)) < 0.35
    corner = np.array([_in_reference_corner_case(ti, pi) for ti, pi in zip(t, p, strict=True)])
    assert 0 < corner.sum() < len(t)
    ours = metrics.mlcm(t[~corner], p[~corner])
    theirs, _ = reference.cm(t[~corner].astype(int), p[~corner].astype(int), False)
    np.testing.assert_array_equal(ours, theirs)

    # The corner case, pinned: T = {0, 1, 2}, P = {0, 3, 4}. The package gives the second FP (4) to every
    # true row, the TP row 0 included; the paper's rule gives it to the FN rows 1 and 2 only.
    t1, p1 = np.array([[1, 1, 1, 0, 0]]), np.array([[1, 0, 0, 1, 1]])
    theirs, _ = reference.cm(t1, p1, False)
    np.testing.assert_array_equal(theirs - metrics.mlcm(t1, p1), matrix({(0, 4): 1}))


# ----------------------------------------------------------------------------- image metrics vs skimage


def make_images(seed: int, shape=(6, 64, 64, 3), dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Targets with a dark-to-bright ramp and sparse speckles; noisy predictions; both in [0, 1]."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.0, 1.0, shape[2]).reshape((1, 1, -1) + (1,) * (len(shape) - 3))
    speckles = rng.random(shape) * (rng.random(shape) > 0.8)
    target = np.clip(0.6 * ramp + 0.4 * speckles, 0.0, 1.0)
    pred = np.clip(target + 0.05 * rng.standard_normal(shape), 0.0, 1.0)
    return pred.astype(dtype), target.astype(dtype)


def skimage_reference(pred: np.ndarray, target: np.ndarray, channel_axis) -> tuple[float, float]:
    ssim = [
        structural_similarity(
            t,
            p,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1,
            channel_axis=channel_axis,
        )
        for p, t in zip(pred, target, strict=True)
    ]
    psnr = [peak_signal_noise_ratio(t, p, data_range=1) for p, t in zip(pred, target, strict=True)]
    return float(np.mean(ssim)), float(np.mean(psnr))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_image_metrics_match_skimage(seed, dtype):
    pred, target = make_images(seed, dtype=dtype)
    got = metrics.image_metrics(pred, target)
    assert tuple(got) == metrics.IMAGE_KEYS
    ssim, psnr = skimage_reference(pred.astype(np.float64), target.astype(np.float64), channel_axis=-1)
    assert got["ssim"] == pytest.approx(ssim, abs=1e-5)
    assert got["psnr"] == pytest.approx(psnr, abs=1e-6)


def test_image_metrics_on_uniform_noise_batch_spanning_several_chunks():
    rng = np.random.default_rng(7)
    target = rng.random((150, 24, 20, 3))  # > one internal chunk, non-square, odd batch remainder
    pred = np.clip(target + 0.2 * rng.standard_normal(target.shape), 0, 1)
    ssim, psnr = skimage_reference(pred, target, channel_axis=-1)
    got = metrics.image_metrics(pred, target)
    assert got["ssim"] == pytest.approx(ssim, abs=1e-5)
    assert got["psnr"] == pytest.approx(psnr, abs=1e-6)


def test_image_metrics_accept_grey_batches_and_single_rgb_images():
    pred, target = make_images(4, shape=(3, 32, 40))  # NHW
    ssim, psnr = skimage_reference(pred, target, channel_axis=None)
    got = metrics.image_metrics(pred, target)
    assert got["ssim"] == pytest.approx(ssim, abs=1e-5) and got["psnr"] == pytest.approx(psnr, abs=1e-6)

    pred, target = make_images(5, shape=(1, 64, 64, 3))
    assert metrics.image_metrics(pred[0], target[0]) == pytest.approx(metrics.image_metrics(pred, target))


def test_identical_images_give_ssim_one_and_capped_psnr():
    _, target = make_images(0)
    got = metrics.image_metrics(target, target.copy())
    assert got["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert got["psnr"] == metrics.PSNR_CAP_DB
    # One identical pair in a batch caps that image, not the mean.
    pred, _ = make_images(0)
    pred[0] = target[0]
    others = [peak_signal_noise_ratio(t, p, data_range=1) for p, t in zip(pred[1:], target[1:], strict=True)]
    per_image = [metrics.PSNR_CAP_DB, *others]
    assert metrics.image_metrics(pred, target)["psnr"] == pytest.approx(np.mean(per_image), abs=1e-6)


def test_psnr_is_capped_for_nearly_identical_images_too():
    _, target = make_images(1)
    pred = target + 1e-7  # MSE 1e-14, 140 dB uncapped
    assert metrics.image_metrics(pred, target)["psnr"] == metrics.PSNR_CAP_DB


@pytest.mark.parametrize(
    ("pred", "target", "match"),
    [
        (np.zeros((2, 16, 16, 3)), np.zeros((2, 16, 17, 3)), "same shape"),
        (np.zeros((2, 16, 16, 3), np.uint8), np.zeros((2, 16, 16, 3), np.uint8), "divide uint8 by 255"),
        (np.full((2, 16, 16, 3), 255.0), np.zeros((2, 16, 16, 3)), r"expected \[0, 1\]"),
        (np.full((2, 16, 16, 3), -1.0), np.zeros((2, 16, 16, 3)), r"expected \[0, 1\]"),
        (np.full((2, 16, 16, 3), np.nan), np.zeros((2, 16, 16, 3)), "NaN"),
        (np.zeros((2, 8, 8, 3)), np.zeros((2, 8, 8, 3)), "at least 11x11"),
        (np.zeros((1, 2, 16, 16, 3)), np.zeros((1, 2, 16, 16, 3)), "expected images shaped"),
    ],
)
def test_bad_images_raise(pred, target, match):
    with pytest.raises(ValueError, match=match):
        metrics.image_metrics(pred, target)


# ----------------------------------------------------------------------------- runtime constraints


def test_importing_metrics_pulls_in_no_torch_sklearn_or_skimage():
    code = (
        "import sys, numpy as np, dualpath.metrics as m;"
        "m.multilabel_metrics(np.eye(3), np.eye(3));"
        "m.image_metrics(np.zeros((1, 16, 16, 3)), np.zeros((1, 16, 16, 3)));"
        "print(sorted(k for k in ('torch', 'sklearn', 'skimage', 'scipy') if k in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_metric_keys_are_one_list():
    assert metrics.METRIC_KEYS == metrics.LABEL_KEYS + metrics.IMAGE_KEYS
    assert len(set(metrics.METRIC_KEYS)) == len(metrics.METRIC_KEYS)
    assert metrics.LOWER_IS_BETTER <= set(metrics.METRIC_KEYS)
    assert set(metrics.HEADLINE_KEYS) <= set(metrics.METRIC_KEYS)
