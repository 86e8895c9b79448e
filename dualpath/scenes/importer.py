"""Real object photos -> sprites in the procedural renderer's canonical form, and the .npz bank that holds them.

Expected input (the Edinburgh Kitchen Utensil Database unpacks to this): one sub-folder per class, named like
the class ('dinner_fork', 'Dinner-Fork', 'dinner fork'), holding photos of one object each on a plain background.
An object's mask is taken, in this order, from `<class>/masks/<stem>.png`, from `<stem>_mask.png` beside the
photo, from the photo's own alpha channel; without any, the background is removed by colour (see `object_mask`).

A sprite is uint8 RGBA (H, W, 4) with straight alpha, the object's long axis vertical and a tight crop with a
MARGIN-pixel transparent border: the same form `sprites.render_utensil` draws, so the bank scales both alike.
Which end of the object points up cannot be known from a mask; it is left as the rotation leaves it.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from dualpath import contract
from dualpath.files import atomic_path
from dualpath.scenes.backgrounds import decode_image

PHOTO_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
MASK_DIR = "masks"
MASK_SUFFIX = "_mask"
MARGIN = 3  # transparent pixels around the tight crop
# An object is at least this many pixels: a photo whose mask has fewer is skipped, a bank sprite with fewer opaque
# (alpha >= 128) pixels is refused, and a scene never labels an object with fewer visible pixels (compose.py).
MIN_OBJECT_PIXELS = 16
WORK_SIDE = 384  # photos are segmented at most this large: the masks need no more, and grabCut cost grows with area
BANK_FORMAT = "dualpath-object-bank/1"

LAYOUT_HELP = (
    "expected one sub-folder per class, named like the class (e.g. 'dinner_fork/', 'Wooden-Spoon/'), each holding "
    f"photos ({', '.join(PHOTO_SUFFIXES)}) of one object on a plain background; optional masks as "
    f"'<class>/{MASK_DIR}/<photo stem>.png' or '<photo stem>{MASK_SUFFIX}.png' beside the photo (non-zero = object)"
)


@dataclass
class ImportReport:
    imported: dict[str, int]  # class name -> sprites made
    skipped: list[tuple[str, str]]  # (path, reason)
    unknown_folders: list[str]  # sub-folders whose name is not a class
    mask_sources: dict[str, int] = field(default_factory=dict)  # 'mask file' / 'alpha' / 'colour' -> count


def import_objects(
    folder: str | os.PathLike, max_side: int = 256, refine: bool = True
) -> tuple[dict[int, list[np.ndarray]], ImportReport]:
    """Every photo under folder/<class>/ as a canonical RGBA sprite, by class index, and what happened to each.

    Bad files (unreadable, empty, no object found) are skipped with a warning and listed in the report; only a
    missing folder, or one without any class sub-folder, is an error. `refine` runs grabCut on colour-based masks.
    """
    if max_side < 16:
        raise ValueError(f"max_side must be >= 16 pixels, got {max_side}")
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"object photo folder {str(root)!r} does not exist or is not a folder; {LAYOUT_HELP}")
    classes, unknown = _class_folders(root)
    for name in unknown:
        names = ", ".join(contract.CLASS_NAMES)
        warnings.warn(f"ignoring folder {name!r} in {root}: not a class name ({names})", stacklevel=2)
    if not classes:
        found = f"found sub-folders {unknown}" if unknown else "found no sub-folders"
        raise ValueError(f"no class sub-folder in {str(root)!r} ({found}); {LAYOUT_HELP}")

    sprites: dict[int, list[np.ndarray]] = {}
    report = ImportReport(imported={}, skipped=[], unknown_folders=unknown)
    for class_dir, index in classes:
        name = contract.CLASS_NAMES[index]
        report.imported.setdefault(name, 0)
        for photo in _photos(class_dir):
            sprite, outcome = _import_one(photo, class_dir, max_side, refine)
            if sprite is None:
                warnings.warn(f"skipping {photo}: {outcome}", stacklevel=2)
                report.skipped.append((str(photo), outcome))
                continue
            sprites.setdefault(index, []).append(sprite)
            report.imported[name] += 1
            report.mask_sources[outcome] = report.mask_sources.get(outcome, 0) + 1
    return dict(sorted(sprites.items())), report


def save_object_bank(path: str | os.PathLike, sprites: dict[int, list[np.ndarray]]) -> None:
    """Write sprites to one .npz; written to a temporary file and renamed, so a crash never leaves half a bank."""
    arrays: dict[str, np.ndarray] = {
        "format": np.array(BANK_FORMAT),
        "class_names": np.array(contract.CLASS_NAMES),
    }
    for index, items in sorted(sprites.items()):
        if not (isinstance(index, (int, np.integer)) and 0 <= index < contract.NUM_CLASSES):
            raise ValueError(f"sprite keys are class indices 0..{contract.NUM_CLASSES - 1}, got {index!r}")
        for j, rgba in enumerate(items):
            _check_sprite(rgba, f"sprite {j} of class {index}")
            _check_visible(rgba, f"sprite {j} of class {index}", "leave it out of the bank")
            arrays[f"sprite_{int(index):02d}_{j:05d}"] = np.ascontiguousarray(rgba)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
        f.flush()
        os.fsync(f.fileno())


def load_object_bank(path: str | os.PathLike) -> dict[int, list[np.ndarray]]:
    """Sprites saved by save_object_bank, by class index."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"object bank {str(path)!r} not found; make one with import_objects + save_object_bank")
    hint = "re-create it from the photos (import_objects + save_object_bank)"
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except Exception as err:  # zipfile, pickle and format errors all mean the same to the user
        raise ValueError(f"{str(path)!r} is not a readable object bank ({type(err).__name__}: {err}); {hint}") from None
    if "format" not in arrays or str(arrays["format"]) != BANK_FORMAT:
        raise ValueError(f"{str(path)!r} is not an object bank (format {BANK_FORMAT!r} expected); {hint}")
    if tuple(str(n) for n in arrays["class_names"]) != contract.CLASS_NAMES:
        raise ValueError(f"object bank {str(path)!r} was made for other classes than dualpath.contract's; {hint}")
    sprites: dict[int, list[np.ndarray]] = {}
    for key in sorted(k for k in arrays if k.startswith("sprite_")):
        match = _SPRITE_KEY.fullmatch(key)
        if match is None or int(match["index"]) >= contract.NUM_CLASSES:
            raise ValueError(f"object bank {str(path)!r} holds {key!r}, which is not a sprite name (sprite_<class "
                             f"0..{contract.NUM_CLASSES - 1}>_<number>, e.g. sprite_03_00000); {hint}")
        _check_sprite(arrays[key], f"{key} in {path}")
        _check_visible(arrays[key], f"{key} in {path}", hint)
        sprites.setdefault(int(match["index"]), []).append(arrays[key])
    return sprites


_SPRITE_KEY = re.compile(r"sprite_(?P<index>\d+)_(?P<number>\d+)")


def _check_visible(rgba: np.ndarray, what: str, hint: str) -> None:
    """A sprite must show an object: at least MIN_OBJECT_PIXELS opaque pixels (alpha >= 128), as import_objects
    asks of a photo's mask; a fully transparent or 1x1 sprite would make scenes label objects nobody can see."""
    opaque = int(np.count_nonzero(rgba[..., 3] >= 128))
    if opaque < MIN_OBJECT_PIXELS:
        h, w = rgba.shape[:2]
        raise ValueError(f"{what} is {w}x{h} with {opaque} opaque pixel(s) (alpha >= 128), fewer than the "
                         f"{MIN_OBJECT_PIXELS} an object needs; {hint}")


# --- finding files ---------------------------------------------------------------------------------------------


def _class_folders(root: Path) -> tuple[list[tuple[Path, int]], list[str]]:
    classes, unknown = [], []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            classes.append((sub, contract.class_index(sub.name)))
        except ValueError:
            unknown.append(sub.name)
    return classes, unknown


def _photos(class_dir: Path) -> list[Path]:
    """Files under a class folder, masks excluded; files with other suffixes come too, to be reported."""
    out = []
    for p in sorted(class_dir.rglob("*")):
        rel = p.relative_to(class_dir).parts
        if not p.is_file() or any(part.startswith(".") for part in rel) or MASK_DIR in (s.lower() for s in rel[:-1]):
            continue
        if p.stem.lower().endswith(MASK_SUFFIX):
            continue
        out.append(p)
    return out


def _mask_file(photo: Path, class_dir: Path) -> Path | None:
    candidates = [
        photo.parent / MASK_DIR / f"{photo.stem}.png",
        class_dir / MASK_DIR / f"{photo.stem}.png",
        photo.with_name(f"{photo.stem}{MASK_SUFFIX}.png"),
    ]
    return next((c for c in candidates if c.is_file()), None)


# --- one photo -------------------------------------------------------------------------------------------------


def _import_one(photo: Path, class_dir: Path, max_side: int, refine: bool) -> tuple[np.ndarray | None, str]:
    """(sprite, mask source) or (None, why it was skipped)."""
    if photo.suffix.lower() not in PHOTO_SUFFIXES:
        return None, f"not a photo format ({', '.join(PHOTO_SUFFIXES)} accepted)"
    decoded, reason = decode_image(photo, cv2.IMREAD_UNCHANGED)
    if decoded is None:
        return None, reason
    rgb, alpha = _split_alpha(decoded)
    rgb = _shrink(rgb, WORK_SIDE, cv2.INTER_AREA)

    mask_path = _mask_file(photo, class_dir)
    if mask_path is not None:
        given, reason = decode_image(mask_path, cv2.IMREAD_GRAYSCALE)
        if given is None:
            return None, f"mask {mask_path.name}: {reason}"
        mask, source = _fit_mask(given, rgb.shape[:2]), "mask file"
        if mask is None:
            (mh, mw), (ph, pw) = given.shape[:2], decoded.shape[:2]
            return None, f"mask {mask_path.name} is {mw}x{mh}, the photo {pw}x{ph}: not the same shape"
    elif alpha is not None:
        mask, source = _fit_mask(alpha, rgb.shape[:2]), "alpha"
    else:
        mask, source = object_mask(rgb, refine=refine), "colour"

    problem = _mask_problem(mask)
    if problem:
        return None, f"no object found ({problem}, mask from {source})"
    return canonical_sprite(rgb, mask, max_side), source


def _split_alpha(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Any decoded photo -> (uint8 RGB, alpha or None); an alpha channel that is all opaque is no mask."""
    if image.dtype != np.uint8:  # 16-bit PNG / TIFF
        top = 65535.0 if image.dtype == np.uint16 else float(image.max() or 1)
        image = (image.astype(np.float32) * (255.0 / top)).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB), None
    if image.shape[2] == 4:
        alpha = image[..., 3]
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB), (alpha if alpha.min() < 255 else None)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), None


def _shrink(image: np.ndarray, side: int, interpolation: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = side / max(h, w)
    if scale >= 1.0:
        return image
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=interpolation)


def _fit_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray | None:
    """A mask (non-zero = object) resized to the working photo; None when its aspect ratio is not the photo's."""
    h, w = mask.shape[:2]
    if abs(h / w - shape[0] / shape[1]) > 0.02 * shape[0] / shape[1]:
        return None
    binary = (mask > 0).astype(np.uint8) * 255
    return cv2.resize(binary, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) if (h, w) != shape else binary


def _mask_problem(mask: np.ndarray) -> str:
    count = np.count_nonzero(mask)
    cover = float(count) / mask.size
    if cover < 0.002 or count < MIN_OBJECT_PIXELS:
        return "the mask is empty"
    if cover > 0.9:
        return f"the mask covers {cover:.0%} of the photo"
    return ""


# --- background removal ----------------------------------------------------------------------------------------


def object_mask(rgb: np.ndarray, refine: bool = True) -> np.ndarray:
    """uint8 mask (255 = object) of the object on a plain background in an RGB photo; empty if none stands out.

    The background colour is modelled from the image border as a smooth (quadratic) surface, which follows
    uneven lighting; pixels far from it in Lab colour (Otsu threshold, but never below the border's own noise)
    are object. Morphology removes specks and bridges small gaps, the largest component(s) are kept, and grabCut
    (optional) refines the edges from that start."""
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    border = _border_mask(lab.shape[:2])
    distance = np.linalg.norm(lab - _background_model(lab, border), axis=2)
    distance = cv2.GaussianBlur(distance, (5, 5), 0)
    # The border is mostly background: its distances measure the noise an object must stand out from. Median and
    # MAD, because an object that runs off the photo's edge also lies on the border.
    edge = distance[border]
    median = float(np.median(edge))
    floor = max(median + 6.0 * 1.4826 * float(np.median(np.abs(edge - median))), 10.0)
    scaled = np.clip(distance * (255.0 / max(float(distance.max()), 1e-6)), 0, 255).astype(np.uint8)
    otsu, _ = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    threshold = max(otsu * float(distance.max()) / 255.0, floor)
    mask = (distance > threshold).astype(np.uint8) * 255
    mask = _clean(mask)
    if refine and 0 < np.count_nonzero(mask) < 0.9 * mask.size:
        mask = _grabcut(rgb, mask)
    return mask


def _border_mask(shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    b = max(2, round(0.03 * min(h, w)))
    border = np.ones(shape, bool)
    border[b:-b, b:-b] = False
    return border


def _background_model(lab: np.ndarray, border: np.ndarray) -> np.ndarray:
    """Least-squares quadratic surface through the border pixels, per Lab channel, evaluated everywhere."""
    h, w = border.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy, xx = yy / h - 0.5, xx / w - 0.5
    basis = np.stack([np.ones_like(xx), xx, yy, xx * yy, xx * xx, yy * yy], axis=-1)  # (h, w, 6)
    # A robust start: the median border colour. Border pixels far from it (an object touching the edge, a
    # shadow) are left out of the fit.
    samples = lab[border]
    near = np.linalg.norm(samples - np.median(samples, axis=0), axis=1)
    keep = near <= max(float(np.percentile(near, 80)) * 2.0, 5.0)
    coef, *_ = np.linalg.lstsq(basis[border][keep], samples[keep], rcond=None)
    return basis @ coef.astype(np.float32)


def _clean(mask: np.ndarray) -> np.ndarray:
    side = max(mask.shape)
    small = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (max(3, round(0.01 * side) | 1),) * 2)
    # Closing bridges gaps up to ~2% of the photo: the glint along polished cutlery matches a white background
    # and would cut the object in two. It also closes fork tines this close, which the 64 px scenes cannot
    # resolve anyway; whisks and tongs keep their larger openings.
    large = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (max(3, round(0.02 * side) | 1),) * 2)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, small)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, large)
    return _fill_small_holes(_largest_components(mask))


def _largest_components(mask: np.ndarray, keep_fraction: float = 0.25) -> np.ndarray:
    """The largest component and any other at least keep_fraction of its size (an object split by a glint)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = 1 + np.flatnonzero(areas >= keep_fraction * areas.max())
    return np.isin(labels, keep).astype(np.uint8) * 255


def _fill_small_holes(mask: np.ndarray, max_fraction: float = 0.01) -> np.ndarray:
    """Fill holes below max_fraction of the object's area: glints on polished metal that match the background.
    Larger holes (between the tines of a fork, inside a whisk) are real and stay."""
    inverse = cv2.bitwise_not(mask)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(inverse, connectivity=4)
    h, w = mask.shape
    limit = max_fraction * np.count_nonzero(mask)
    x, y, bw, bh, area = (stats[:, i] for i in range(5))
    inner = (x > 0) & (y > 0) & (x + bw < w) & (y + bh < h) & (area < limit)
    inner[0] = False
    return np.where(np.isin(labels, np.flatnonzero(inner)), np.uint8(255), mask)


def _grabcut(rgb: np.ndarray, mask: np.ndarray, iterations: int = 3) -> np.ndarray:
    """grabCut from the colour mask: sure background at the border, sure object deep inside, probable between.

    A result that grew or shrank by more than half is a grabCut failure (a low-contrast object), not a fix."""
    k = max(3, round(0.02 * max(mask.shape)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    labels = np.where(mask > 0, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    labels[cv2.erode(mask, kernel) > 0] = cv2.GC_FGD
    labels[cv2.dilate(mask, kernel, iterations=2) == 0] = cv2.GC_BGD
    labels[_border_mask(mask.shape)] = cv2.GC_BGD
    try:
        cv2.grabCut(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), labels, None, np.zeros((1, 65), np.float64),
                    np.zeros((1, 65), np.float64), iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return mask
    refined = np.isin(labels, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8) * 255
    refined = _fill_small_holes(_largest_components(refined))
    ratio = np.count_nonzero(refined) / max(np.count_nonzero(mask), 1)
    return refined if 0.5 <= ratio <= 1.5 else mask


# --- canonical form --------------------------------------------------------------------------------------------


def canonical_sprite(rgb: np.ndarray, mask: np.ndarray, max_side: int = 256) -> np.ndarray:
    """RGB photo + object mask -> uint8 RGBA sprite: long axis vertical, tight crop, MARGIN-pixel border,
    longest side at most max_side. Straight alpha: colour is the photo's own, also under soft edges."""
    if rgb.shape[:2] != mask.shape[:2] or not np.any(mask):
        raise ValueError(f"need an RGB photo and a non-empty mask of the same size, got {rgb.shape} and {mask.shape}")
    angle = _long_axis_angle(mask)
    rgba = np.dstack([rgb, mask]).astype(np.uint8)
    rgba = _rotate_bound(rgba, angle - 90.0)
    alpha = rgba[..., 3]
    ys, xs = np.nonzero(alpha > 0)
    rgba = rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    rgba = _shrink(rgba, max_side - 2 * MARGIN, cv2.INTER_AREA)
    # Transparent margin; the colour under it repeats the edge so that filtering never pulls in black.
    colour = cv2.copyMakeBorder(rgba[..., :3], MARGIN, MARGIN, MARGIN, MARGIN, cv2.BORDER_REPLICATE)
    alpha = cv2.copyMakeBorder(rgba[..., 3], MARGIN, MARGIN, MARGIN, MARGIN, cv2.BORDER_CONSTANT, value=0)
    return np.ascontiguousarray(np.dstack([colour, alpha]))


def _long_axis_angle(mask: np.ndarray) -> float:
    """Angle in degrees (image x to the right, y down) of the mask's major principal axis."""
    ys, xs = np.nonzero(mask)
    pts = np.stack([xs, ys]).astype(np.float64)
    cov = np.cov(pts)
    evals, evecs = np.linalg.eigh(cov)
    vx, vy = evecs[:, np.argmax(evals)]
    return float(np.degrees(np.arctan2(vy, vx)))


def _rotate_bound(image: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate about the centre by `degrees` (counter-clockwise as displayed), growing the canvas so nothing is cut."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), degrees, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    new_w, new_h = int(np.ceil(h * sin + w * cos)), int(np.ceil(h * cos + w * sin))
    m[0, 2] += new_w / 2.0 - w / 2.0
    m[1, 2] += new_h / 2.0 - h / 2.0
    colour = cv2.warpAffine(image[..., :3], m, (new_w, new_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(image[..., 3], m, (new_w, new_h), flags=cv2.INTER_LINEAR, borderValue=0)
    return np.dstack([colour, alpha])


def _check_sprite(rgba: np.ndarray, what: str) -> None:
    if not (isinstance(rgba, np.ndarray) and rgba.dtype == np.uint8 and rgba.ndim == 3 and rgba.shape[2] == 4):
        shape = getattr(rgba, "shape", None)
        kind = getattr(rgba, "dtype", type(rgba).__name__)
        raise ValueError(f"{what} must be a uint8 RGBA array (H, W, 4), got {kind} {shape}")
