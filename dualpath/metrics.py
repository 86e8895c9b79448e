"""Multi-label and image metrics on numpy arrays (paper section IV.C).

numpy + OpenCV only: the torch-free runtime's drift report uses this module. The numbers match
scikit-learn (average precision, ROC AUC, Hamming loss, precision / recall / F1) and scikit-image
(SSIM, PSNR); tests/dualpath/test_metrics.py checks them against both.

Conventions:
- y_true: (N, C) multi-hot labels (0/1, bool or numeric); scores: (N, C) finite scores (probabilities).
- Thresholded metrics use top-T binarisation (paper Eq. 15): each sample predicts as many labels as it has.
- Ranking metrics (AUC, AP) are undefined for a class with no positives or no negatives in y_true; such
  classes are left out of the macro averages and listed in `auc_excluded_classes`.
- Images: float arrays in [0, 1], data range 1.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import cv2
import numpy as np

log = logging.getLogger(__name__)

# SSIM as scikit-image's structural_similarity(gaussian_weights=True, sigma=1.5,
# use_sample_covariance=False, data_range=1): Wang et al. 2004 constants, Gaussian window truncated at
# 3.5 sigma (skimage hard-codes truncate=3.5 when gaussian_weights=True) -> radius 5, an 11x11 window.
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_RADIUS = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)  # the rounding scipy.ndimage uses

# Identical images have infinite PSNR, and one inf makes the batch mean inf. Per-image PSNR is capped
# here (100 dB = MSE 1e-10, far below any 8-bit or float16 difference), so a mean stays finite.
PSNR_CAP_DB = 100.0

# Tolerated overshoot of [0, 1]: INT8 / float16 reconstructions land a hair outside it, while the usual
# mistakes ([-1, 1] tanh output or [0, 255] pixels) land far outside and are rejected.
_IMAGE_RANGE_SLACK = 0.01

_SSIM_CHUNK = 64  # images per SSIM / PSNR batch: a few MB of temporaries each

# The scalar metrics.json keys: what multilabel_metrics returns (LABEL_KEYS) and what image_metrics returns
# (IMAGE_KEYS). METRIC_KEYS, in the order reports show them, is the one list that training's metrics.json and
# reports, --select-metric, the exported models' metadata and the drift report (and its budgets) take their keys
# from: a new metric is its function in this module plus its key here (tests/dualpath/test_metrics.py checks both).
LABEL_KEYS: tuple[str, ...] = (
    "accuracy",
    "hamming_loss",
    "macro_auc",
    "macro_map",
    "micro_map",
    "macro_precision",
    "macro_recall",
    "macro_f1",
    "micro_precision",
    "micro_recall",
    "micro_f1",
)
IMAGE_KEYS: tuple[str, ...] = ("ssim", "psnr")
METRIC_KEYS: tuple[str, ...] = LABEL_KEYS + IMAGE_KEYS
LOWER_IS_BETTER = frozenset({"hamming_loss"})  # for every other key higher is better
# The paper's headline numbers, bounded by docs/design.md's drift budgets: the short tables and plots show these.
HEADLINE_KEYS: tuple[str, ...] = ("accuracy", "macro_map", "ssim")


# ----------------------------------------------------------------------------- input checks


def _binary_matrix(a, name: str) -> np.ndarray:
    """(N, C) array of 0/1 (any numeric or bool dtype) -> bool array, or a ValueError saying what is wrong."""
    a = np.asarray(a)
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty (N, C) multi-hot array, got shape {a.shape}")
    if a.dtype == bool:
        return a
    if not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"{name} must be numeric or bool 0/1 values, got dtype {a.dtype}")
    is_binary = (a == 0) | (a == 1)
    if not is_binary.all():
        bad = np.unique(a[~is_binary])[:5]
        raise ValueError(f"{name} must hold only 0 and 1 (multi-hot labels), found {bad.tolist()}")
    return a == 1


def _check_labels_and_scores(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    y = _binary_matrix(y_true, "y_true")
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != y.shape:
        raise ValueError(f"y_true and scores must have the same (N, C) shape, got {y.shape} and {s.shape}")
    bad = ~np.isfinite(s)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(
            f"scores hold {int(bad.sum())} NaN or infinite values (first at sample {i}, class {j}); "
            "check the model output"
        )
    return y, s


def _check_class_names(class_names: Sequence[str], num_classes: int) -> list[str]:
    names = [str(n) for n in class_names]
    if len(names) != num_classes:
        raise ValueError(f"got {len(names)} class names for {num_classes} score columns")
    return names


# ----------------------------------------------------------------------------- top-T binarisation


def top_t(y_true, scores) -> np.ndarray:
    """uint8 (N, C) predictions: per sample the k highest scores, k = its number of true labels.

    Paper Eq. 15 (T_1 = ||y_true||_0). k = 0 predicts nothing. Equal scores are broken by the lower class
    index, so the result does not depend on the sort algorithm.
    """
    y, s = _check_labels_and_scores(y_true, scores)
    n, c = s.shape
    k = y.sum(axis=1)  # (N,)
    order = np.argsort(-s, axis=1, kind="stable")  # descending; a stable sort keeps ties in index order
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(c), (n, c)), axis=1)
    return (rank < k[:, None]).astype(np.uint8)


# ----------------------------------------------------------------------------- ranking curves


def _cumulative_counts(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives above each distinct score, highest score first (sklearn's _binary_clf_curve)."""
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    # A threshold keeps every sample with an equal score, so counts are read at the last of each tie run.
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), s.size - 1]
    tps = np.cumsum(y_sorted, dtype=np.int64)[last]
    fps = last + 1 - tps
    return tps, fps


def _average_precision(y: np.ndarray, s: np.ndarray) -> float:
    """sklearn's average_precision_score: sum over thresholds of (R_n - R_{n-1}) * P_n, no interpolation."""
    tps, fps = _cumulative_counts(y, s)
    precision = tps / (tps + fps)
    recall_steps = np.diff(tps, prepend=0) / tps[-1]
    return float(np.sum(recall_steps * precision))


def _roc(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) as sklearn's roc_curve(drop_intermediate=False); NaN on an axis with no samples."""
    tps, fps = _cumulative_counts(y, s)
    tps, fps = np.r_[0, tps], np.r_[0, fps]  # the curve starts at (0, 0): threshold above every score
    return _safe_ratio(fps, fps[-1], np.nan), _safe_ratio(tps, tps[-1], np.nan)


def _trapezoid_area(x: np.ndarray, y: np.ndarray) -> float:
    # np.trapezoid only exists from numpy 2.0; the project supports numpy >= 1.24.
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def _safe_ratio(num, den, fill: float) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.broadcast_to(np.asarray(den, dtype=np.float64), num.shape)
    return np.divide(num, den, out=np.full(num.shape, fill), where=den > 0)


def roc_curves(y_true, scores) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per class (fpr, tpr), as sklearn.metrics.roc_curve(drop_intermediate=False), for plots.

    A class with no positives gets a NaN tpr (no negatives: a NaN fpr), as sklearn does; plot code
    should skip the classes listed in multilabel_metrics(...)['auc_excluded_classes'].
    """
    y, s = _check_labels_and_scores(y_true, scores)
    return [_roc(y[:, j], s[:, j]) for j in range(y.shape[1])]


# ----------------------------------------------------------------------------- multi-label metrics


def _rankable(y: np.ndarray) -> np.ndarray:
    """(C,) bool: the class has both positives and negatives, so its AUC and AP are defined."""
    positives = y.sum(axis=0)
    return (positives > 0) & (positives < y.shape[0])


def _precision_recall_f1(tp, fp, fn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 from counts; 0 where undefined (sklearn's zero_division=0)."""
    tp, fp, fn = (np.asarray(v, dtype=np.float64) for v in (tp, fp, fn))
    precision = _safe_ratio(tp, tp + fp, 0.0)
    recall = _safe_ratio(tp, tp + fn, 0.0)
    f1 = _safe_ratio(2 * tp, 2 * tp + fp + fn, 0.0)  # = 2PR / (P + R), as sklearn computes it
    return precision, recall, f1


def _per_class(y: np.ndarray, s: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    """(C,) arrays: support, top-T precision / recall / F1, and AP / AUC (NaN for unrankable classes)."""
    tp = np.sum(pred & y, axis=0)
    fp = np.sum(pred & ~y, axis=0)
    fn = np.sum(~pred & y, axis=0)
    precision, recall, f1 = _precision_recall_f1(tp, fp, fn)
    ap = np.full(y.shape[1], np.nan)
    auc = np.full(y.shape[1], np.nan)
    for j in np.flatnonzero(_rankable(y)):
        ap[j] = _average_precision(y[:, j], s[:, j])
        auc[j] = _trapezoid_area(*_roc(y[:, j], s[:, j]))
    return {"support": y.sum(axis=0), "precision": precision, "recall": recall, "f1": f1, "ap": ap, "auc": auc}


def multilabel_metrics(y_true, scores, class_names: Sequence[str] | None = None) -> dict:
    """The classification metrics of paper section IV.C (the metrics.json keys but ssim / psnr).

    accuracy is label-wise accuracy (= 1 - hamming_loss) of the top-T predictions; precision / recall / F1
    are on those predictions too (micro P = R = F1, since top-T predicts as many labels as are true).
    macro_auc / macro_map average the classes that have both positives and negatives; the others are
    listed by index in 'auc_excluded_classes' (and logged, by name when class_names is given). If no class
    is rankable, macro_auc and macro_map are NaN.
    """
    y, s = _check_labels_and_scores(y_true, scores)
    names = _check_class_names(class_names, y.shape[1]) if class_names is not None else None
    pred = top_t(y, s).astype(bool)
    per_class = _per_class(y, s, pred)
    excluded = np.flatnonzero(~_rankable(y)).tolist()
    if excluded:
        shown = [names[j] for j in excluded] if names else excluded
        log.warning("macro AUC / mAP leave out classes with no positives or no negatives: %s", shown)

    hamming = float(np.mean(pred != y))
    micro_p, micro_r, micro_f1 = _precision_recall_f1(np.sum(pred & y), np.sum(pred & ~y), np.sum(~pred & y))
    rankable = ~np.isnan(per_class["auc"])
    return {
        "accuracy": 1.0 - hamming,
        "hamming_loss": hamming,
        "macro_auc": float(np.mean(per_class["auc"][rankable])) if rankable.any() else float("nan"),
        "macro_map": float(np.mean(per_class["ap"][rankable])) if rankable.any() else float("nan"),
        "micro_map": _micro_average_precision(y, s),
        "macro_precision": float(np.mean(per_class["precision"])),
        "macro_recall": float(np.mean(per_class["recall"])),
        "macro_f1": float(np.mean(per_class["f1"])),
        "micro_precision": float(micro_p),
        "micro_recall": float(micro_r),
        "micro_f1": float(micro_f1),
        "auc_excluded_classes": excluded,
    }


def _micro_average_precision(y: np.ndarray, s: np.ndarray) -> float:
    # Micro AP pools every (sample, class) pair; it is defined as long as one label is positive.
    if not y.any():
        return float("nan")
    return _average_precision(y.ravel(), s.ravel())


def per_class_report(y_true, scores, class_names: Sequence[str]) -> list[dict]:
    """One dict per class: name, support, precision, recall, f1 (top-T), ap, auc.

    ap and auc are None (JSON null) for a class with no positives or no negatives in y_true.
    """
    y, s = _check_labels_and_scores(y_true, scores)
    names = _check_class_names(class_names, y.shape[1])
    per_class = _per_class(y, s, top_t(y, s).astype(bool))
    return [
        {
            "name": name,
            "support": int(per_class["support"][j]),
            "precision": float(per_class["precision"][j]),
            "recall": float(per_class["recall"][j]),
            "f1": float(per_class["f1"][j]),
            "ap": None if np.isnan(per_class["ap"][j]) else float(per_class["ap"][j]),
            "auc": None if np.isnan(per_class["auc"][j]) else float(per_class["auc"][j]),
        }
        for j, name in enumerate(names)
    ]


# ----------------------------------------------------------------------------- MLCM


def mlcm(y_true, y_pred) -> np.ndarray:
    """Multi-label confusion matrix of Heydarian et al. 2022 ("MLCM: Multi-Label Confusion Matrix",
    IEEE Access, doi:10.1109/ACCESS.2022.3151048): int64 (C+1, C+1), rows true, columns predicted;
    row C = "no true label" (NTL), column C = "no predicted label" (NPL).

    Per sample, with T the true labels, P the predicted ones, TP = T & P, FN = T - P, FP = P - T:
    - every TP label adds 1 on the diagonal;
    - no FN, no FP (all true labels predicted, nothing extra): the diagonal is all;
    - FP only (all true labels predicted, extras): each (true label, FP label) pair adds 1, i.e. every
      true label's row gets the FP columns;
    - FN only (labels missed, no extras): each FN label adds 1 in the NPL column;
    - FN and FP: each (FN label, FP label) pair adds 1: the FN rows get the FP columns;
    - T empty: each predicted label adds 1 in the NTL row, or the (NTL, NPL) corner when P is empty too.

    This is the paper's rule, as also implemented by Krstinic's mlcEvaluator2. The authors' `mlcm` package
    (0.0.1, `mlcm.cm`) departs from it in one case: with >= 2 true labels, >= 1 TP, >= 1 FN and >= 2 FP,
    its bookkeeping loop gives the first FP to the FN rows but every later FP to *all* true rows, TP rows
    included. We follow the rule; the tests pin that difference.
    """
    t = _binary_matrix(y_true, "y_true")
    p = _binary_matrix(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same (N, C) shape, got {t.shape} and {p.shape}")
    c = t.shape[1]
    tp, fn, fp = t & p, t & ~p, p & ~t
    has_true = t.any(axis=1)
    has_fn, has_fp = fn.any(axis=1), fp.any(axis=1)

    m = np.zeros((c + 1, c + 1), dtype=np.int64)
    m[np.arange(c), np.arange(c)] = tp.sum(axis=0)
    # Rows that receive the FP columns: all true labels when nothing was missed, else only the missed ones.
    # (With T empty both are empty, so those samples add nothing here.)
    fp_rows = np.where(has_fn[:, None], fn, t).astype(np.int64)
    m[:c, :c] += fp_rows.T @ fp.astype(np.int64)
    m[:c, c] = fn[~has_fp].sum(axis=0)  # missed labels with no extra prediction -> NPL
    m[c, :c] = p[~has_true].sum(axis=0)  # predictions on a sample without labels -> NTL
    m[c, c] = np.sum(~has_true & ~p.any(axis=1))
    return m


# ----------------------------------------------------------------------------- image metrics


def _as_nhwc(a: np.ndarray) -> np.ndarray:
    if a.ndim == 4:
        return a
    if a.ndim == 3:  # HW3 is one RGB image; any other 3-D shape is a batch of grey images (NHW)
        return a[None] if a.shape[-1] == 3 else a[..., None]
    if a.ndim == 2:
        return a[None, ..., None]
    raise ValueError(f"expected images shaped (N, H, W, C), (N, H, W), (H, W, 3) or (H, W), got {a.shape}")


def _check_images(pred, target) -> tuple[np.ndarray, np.ndarray]:
    out = []
    for name, a in (("pred", pred), ("target", target)):
        a = np.asarray(a)
        if not np.issubdtype(a.dtype, np.floating):
            raise ValueError(f"{name} must be float images in [0, 1], got dtype {a.dtype}; divide uint8 by 255")
        if a.size == 0:
            raise ValueError(f"{name} is empty")
        lo, hi = float(a.min()), float(a.max())  # NaN propagates into min / max, and so does inf
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError(f"{name} holds NaN or infinite values")
        if lo < -_IMAGE_RANGE_SLACK or hi > 1 + _IMAGE_RANGE_SLACK:
            raise ValueError(
                f"{name} values span [{lo:.3g}, {hi:.3g}]; expected [0, 1] "
                "(map a tanh output with (x + 1) / 2, divide 8-bit pixels by 255)"
            )
        out.append(a)
    if out[0].shape != out[1].shape:
        raise ValueError(f"pred and target must have the same shape, got {out[0].shape} and {out[1].shape}")
    x, y = _as_nhwc(out[0]), _as_nhwc(out[1])
    window = 2 * SSIM_RADIUS + 1
    if min(x.shape[1:3]) < window:
        raise ValueError(f"SSIM needs images of at least {window}x{window} pixels, got {x.shape[1]}x{x.shape[2]}")
    return x, y


def _gaussian_blur_valid(a: np.ndarray) -> np.ndarray:
    """(N, H, W, C) float32 -> (N, H - 2r, W - 2r, C): Gaussian window means where the window fits.

    The batch is filtered as one tall (N*H, W) image: a window that straddles two stacked images is within
    r rows of an image edge, and exactly those rows are cropped, like skimage crops its SSIM map.
    """
    n, h, w, c = a.shape
    r = SSIM_RADIUS
    kernel = cv2.getGaussianKernel(2 * r + 1, SSIM_SIGMA, cv2.CV_32F)  # exp(-x^2 / 2 sigma^2), normalised
    tall = a.reshape(n * h, w, c) if c > 1 else a.reshape(n * h, w)
    out = cv2.sepFilter2D(tall, cv2.CV_32F, kernel, kernel, borderType=cv2.BORDER_REFLECT)
    # Contiguous: numpy arithmetic on the strided crop is several times slower than on a copy.
    return np.ascontiguousarray(out.reshape(n, h, w, c)[:, r : h - r, r : w - r])


def _rough_channel_mean(a: np.ndarray) -> np.ndarray:
    """(N, H, W, C) -> float32 (N, 1, 1, C) mean of every 4th pixel: a centring shift, which need not be exact."""
    return a[:, ::4, ::4].mean(axis=(1, 2), keepdims=True, dtype=np.float64).astype(np.float32)


def _ssim_per_image(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(N, H, W, C) pairs -> (N,) SSIM: the mean of the cropped SSIM map (per channel, then over channels;
    the same thing, as every channel has as many pixels).

    Runs in float32 (OpenCV and numpy are about twice as fast as in float64) on images centred on their
    (rough) per-channel means: any constant shift leaves variances and covariances unchanged, is added
    back to the means, and keeps the E[x^2] - E[x]^2 cancellation small, so the result stays within
    ~1e-6 of skimage's float64 SSIM.
    """
    c1, c2 = SSIM_K1**2, SSIM_K2**2  # (K * data_range)^2 with data_range 1
    shift_x, shift_y = _rough_channel_mean(x), _rough_channel_mean(y)
    xc, yc = x.astype(np.float32) - shift_x, y.astype(np.float32) - shift_y
    mu_xc, mu_yc = _gaussian_blur_valid(xc), _gaussian_blur_valid(yc)
    # Population (not sample) covariances, as Wang et al. 2004 and use_sample_covariance=False.
    var_x = _gaussian_blur_valid(xc * xc) - mu_xc * mu_xc
    var_y = _gaussian_blur_valid(yc * yc) - mu_yc * mu_yc
    cov_xy = _gaussian_blur_valid(xc * yc) - mu_xc * mu_yc
    mu_x, mu_y = mu_xc + shift_x, mu_yc + shift_y
    # ((2 mu_x mu_y + C1)(2 cov + C2)) / ((mu_x^2 + mu_y^2 + C1)(var_x + var_y + C2)), in place: this
    # arithmetic, not the blur, dominates the run time, and fresh temporaries cost more (docs/measurements.md).
    numerator = mu_x * mu_y
    numerator *= 2
    numerator += c1
    cov_xy *= 2
    cov_xy += c2
    numerator *= cov_xy
    denominator = np.square(mu_x, out=mu_x)  # mu_x, mu_y and var_x are not needed past this point
    denominator += np.square(mu_y, out=mu_y)
    denominator += c1
    var_x += var_y
    var_x += c2
    denominator *= var_x
    numerator /= denominator
    return numerator.reshape(len(numerator), -1).mean(axis=1, dtype=np.float64)


def _psnr_per_image(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    diff = np.subtract(x, y, dtype=np.float64)
    mse = np.mean(diff * diff, axis=(1, 2, 3))
    psnr = np.full(mse.shape, PSNR_CAP_DB)
    nonzero = mse > 0
    psnr[nonzero] = 10.0 * np.log10(1.0 / mse[nonzero])  # MAX_I = 1 (paper Eq. 14)
    return np.minimum(psnr, PSNR_CAP_DB)


def image_metrics(pred, target) -> dict:
    """{'ssim', 'psnr'}: means over images of per-image SSIM and PSNR, for float images in [0, 1].

    SSIM equals skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1, channel_axis=-1); PSNR is 10 log10(1 / MSE) per image,
    capped at PSNR_CAP_DB (100 dB) so that identical images do not turn the mean into inf.
    """
    x, y = _check_images(pred, target)
    ssim, psnr = [], []
    for i in range(0, len(x), _SSIM_CHUNK):  # chunks keep the temporaries in cache-sized pieces
        xs, ys = x[i : i + _SSIM_CHUNK], y[i : i + _SSIM_CHUNK]
        ssim.append(_ssim_per_image(xs, ys))
        psnr.append(_psnr_per_image(xs, ys))
    return {"ssim": float(np.mean(np.concatenate(ssim))), "psnr": float(np.mean(np.concatenate(psnr)))}
