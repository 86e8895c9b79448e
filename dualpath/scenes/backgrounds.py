"""Kitchen counter and table tops: procedural textures, soft lighting, and a loader for the user's own photos.

Every texture is a pure function of (kind, rng, size): all randomness comes from the generator passed in, so a
background bank built from one seed has the same bytes on any machine. The composer crops and flips a region of
a texture, multiplies it by `lighting_field`, and downsamples it to the model's 64x64 input, so the textures are
drawn to read as real surfaces at about a third of their size: structure a few output pixels wide, not
single-pixel noise that the downsampling would average away.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

PHOTO_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

# Colour palettes (RGB). Each texture picks one entry and jitters it, so two backgrounds of one kind differ in
# colour as real counters do, while every kind keeps its recognisable range.
_WOOD_TONES = (  # (light earlywood, dark latewood)
    ((214, 172, 120), (156, 110, 64)),  # oak
    ((128, 86, 56), (72, 44, 28)),  # walnut
    ((184, 110, 72), (124, 64, 38)),  # cherry
    ((230, 196, 148), (190, 146, 96)),  # maple / pine
    ((170, 116, 66), (112, 72, 38)),  # teak
    ((196, 150, 104), (138, 98, 66)),  # beech, steamed
)
_MARBLE_TONES = (  # (base, vein)
    ((236, 234, 230), (128, 128, 132)),  # carrara white
    ((230, 224, 212), (168, 140, 100)),  # calacatta, gold veins
    ((188, 188, 186), (92, 92, 96)),  # grey
    ((46, 46, 50), (208, 208, 204)),  # nero marquina
    ((42, 58, 52), (188, 200, 190)),  # verde
    ((224, 210, 186), (150, 120, 90)),  # crema
)
_GRANITE_MINERALS = (  # a few mineral colours per stone; the first is the matrix
    ((30, 30, 32), (70, 68, 66), (150, 120, 70), (12, 12, 14)),  # black galaxy
    ((205, 205, 200), (120, 120, 122), (30, 30, 34), (170, 165, 160)),  # salt and pepper
    ((196, 150, 140), (110, 106, 104), (30, 28, 30), (226, 214, 206)),  # rosa
    ((120, 70, 50), (30, 26, 26), (170, 130, 100), (70, 50, 44)),  # baltic brown
    ((160, 150, 130), (80, 72, 64), (40, 36, 34), (210, 200, 180)),  # beige / kashmir
)
_TILE_COLOURS = (
    (238, 238, 234), (228, 222, 204), (190, 210, 220), (60, 100, 150), (90, 140, 110),
    (190, 110, 80), (40, 40, 44), (150, 150, 150), (210, 190, 150), (200, 70, 60),
)
_GROUT_COLOURS = ((208, 206, 200), (236, 234, 228), (90, 90, 92), (176, 164, 140))
_LAMINATE_COLOURS = (
    (238, 236, 230), (226, 214, 190), (190, 190, 186), (70, 70, 74), (24, 24, 26),
    (170, 40, 40), (100, 120, 80), (40, 60, 100), (210, 180, 120), (140, 160, 170),
)


def render_background(kind: str, rng: np.random.Generator, size: int = 192) -> np.ndarray:
    """A uint8 (size, size, 3) RGB texture of a counter or table top of the given kind."""
    if kind not in _RENDERERS:
        raise ValueError(f"unknown background kind {kind!r}; choose one of {', '.join(BACKGROUND_KINDS)}")
    if size < 16:
        raise ValueError(f"background size must be >= 16 pixels, got {size}")
    rgb = _RENDERERS[kind](rng, size)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def lighting_field(rng: np.random.Generator, size: int) -> np.ndarray:
    """float32 (size, size) multiplicative light: a tilt across the counter, a soft spotlight and a vignette."""
    if size < 1:
        raise ValueError(f"lighting field size must be >= 1, got {size}")
    y, x = _unit_grid(size)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    tilt = rng.uniform(0.0, 0.35) * (np.cos(angle) * x + np.sin(angle) * y)  # in [-0.25, 0.25] of the range
    # The spotlight's centre may lie off the crop: a lamp beside the counter lights one side more.
    cx, cy = rng.uniform(-0.3, 0.3, size=2)
    sigma = rng.uniform(0.3, 0.8)
    spot = rng.uniform(0.0, 0.3) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2.0 * sigma**2))
    vignette = rng.uniform(0.0, 0.5) * (x**2 + y**2)
    field = (1.0 + tilt) * (0.9 + spot) * (1.0 - vignette)
    return np.clip(field, 0.55, 1.25).astype(np.float32)


def load_background_photos(folder: str | os.PathLike, size: int = 192) -> tuple[list[np.ndarray], int]:
    """Photos under `folder` (recursively) as uint8 (size, size, 3) RGB centre crops, and how many were skipped."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"background photo folder {str(root)!r} does not exist or is not a folder")
    if size < 16:
        raise ValueError(f"background size must be >= 16 pixels, got {size}")
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    photos = [p for p in files if p.suffix.lower() in PHOTO_SUFFIXES]
    images: list[np.ndarray] = []
    for path in photos:
        image, reason = _read_rgb(path)
        if image is None:
            warnings.warn(f"skipping background photo {path}: {reason}", stacklevel=2)
            continue
        images.append(_square_resize(image, size))
    if not images:
        raise ValueError(
            f"no usable background photo in {str(root)!r}: found {len(files)} file(s), {len(photos)} with a photo "
            f"suffix, none readable; accepted formats: {', '.join(PHOTO_SUFFIXES)} (searched recursively)"
        )
    return images, len(photos) - len(images)


# --- photo helpers ---------------------------------------------------------------------------------------------


def decode_image(path: Path, flags: int) -> tuple[np.ndarray | None, str]:
    """(image as OpenCV decodes it, "") or (None, why not): user photos are skipped with a reason, never a crash."""
    # np.fromfile + imdecode instead of imread: imread cannot open non-ASCII paths on Windows.
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        return None, f"cannot read the file ({err})"
    if data.size == 0:
        return None, "empty file"
    image = cv2.imdecode(data, flags)
    if image is None or image.size == 0:
        return None, "not a readable image (corrupt or unsupported encoding)"
    return image, ""


def _read_rgb(path: Path) -> tuple[np.ndarray | None, str]:
    image, reason = decode_image(path, cv2.IMREAD_COLOR)
    return (None, reason) if image is None else (cv2.cvtColor(image, cv2.COLOR_BGR2RGB), "")


def _square_resize(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = image[top : top + side, left : left + side]
    # INTER_AREA averages when shrinking (no aliasing); it degrades to bilinear when a small photo is enlarged.
    return np.ascontiguousarray(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))


# --- noise -----------------------------------------------------------------------------------------------------


def _unit_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-0.5, 0.5), as (column, row) broadcastable float32 arrays."""
    c = ((np.arange(size, dtype=np.float32) + 0.5) / size - 0.5).astype(np.float32)
    return c[:, None], c[None, :]


def _noise(rng: np.random.Generator, size: int, rows: int, cols: int) -> np.ndarray:
    """Smooth value noise in about [0, 1]: a rows x cols lattice of random values, bicubically enlarged.

    Unequal rows and cols stretch the noise along one axis (grain, brushing)."""
    lattice = rng.random((rows, cols), dtype=np.float32)
    return cv2.resize(lattice, (size, size), interpolation=cv2.INTER_CUBIC)


def _fbm(rng: np.random.Generator, size: int, cells: int, octaves: int, ridged: bool = False) -> np.ndarray:
    """Fractal noise: octaves of value noise, each twice as fine and half as strong, normalised to [0, 1]."""
    total = np.zeros((size, size), np.float32)
    for k in range(octaves):
        n = min(cells << k, size)
        layer = _noise(rng, size, n, n)
        total += (np.abs(layer - 0.5) * 2.0 if ridged else layer) * (0.5**k)
    lo, hi = float(total.min()), float(total.max())
    return (total - lo) / max(hi - lo, 1e-6)


def _pick(rng: np.random.Generator, palette: tuple, jitter: float = 0.06) -> np.ndarray:
    """One palette entry (a colour, or a tuple of colours that go together) as float32, jittered: one shared
    random brightness and a small tint for every colour in it, so the colours of an entry stay matched."""
    entry = np.asarray(palette[rng.integers(len(palette))], np.float32)
    scale = rng.uniform(1.0 - jitter, 1.0 + jitter) * rng.uniform(1.0 - jitter / 3, 1.0 + jitter / 3, size=3)
    return np.clip(entry * scale.astype(np.float32), 0, 255)


# numpy broadcasts a colour over an (H, W, 3) image with an inner loop of length 3, several times slower than
# plane-wise work, so colours are applied one channel plane at a time and merged once (cv2.merge).


def _paint(colour: np.ndarray, shade: np.ndarray) -> np.ndarray:
    """A colour (3,) modulated per pixel by shade (H, W) -> (H, W, 3)."""
    return cv2.merge([c * shade for c in colour.astype(np.float32)])


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Blend a -> b by t (H, W); a and b are colours (3,) or images (H, W, 3)."""
    planes_a = cv2.split(a) if a.ndim == 3 else a.astype(np.float32)
    planes_b = cv2.split(b) if b.ndim == 3 else b.astype(np.float32)
    return cv2.merge([pa + (pb - pa) * t for pa, pb in zip(planes_a, planes_b)])


def _shade(rgb: np.ndarray, shade: np.ndarray) -> np.ndarray:
    return rgb * cv2.merge([shade, shade, shade])


def _orient(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Directional textures (planks, brushing) run horizontally or vertically with equal odds."""
    return np.ascontiguousarray(rgb.transpose(1, 0, 2)) if rng.random() < 0.5 else rgb


# --- the six surfaces ------------------------------------------------------------------------------------------


def _wood(rng: np.random.Generator, size: int) -> np.ndarray:
    """Planks along x with growth rings (sawtooth early/late wood), arched 'cathedral' grain, fibres and seams."""
    light, dark = _pick(rng, _WOOD_TONES, 0.08)
    width = np.float32(rng.uniform(0.14, 0.32) * size)  # plank width in pixels
    rows = np.arange(size, dtype=np.float32)[:, None]
    cols = np.arange(size, dtype=np.float32)[None, :]
    shifted = rows + np.float32(rng.uniform(0, width))
    plank = (shifted // width).astype(np.int64)  # (size, 1) plank index of each row
    across = shifted - plank.astype(np.float32) * width  # position across the plank, pixels
    n = int(plank.max()) + 1

    def per_plank(values: np.ndarray) -> np.ndarray:  # one draw per plank -> a (size, 1) column
        return values.astype(np.float32)[plank]

    # Every plank is a different board: tone, ring spacing, arch of the grain, an end joint with a new board.
    tone = per_plank(rng.uniform(0.86, 1.12, n))
    spacing = per_plank(rng.uniform(0.035, 0.08, n)) * size
    arch = per_plank(rng.uniform(-1.5, 1.5, n) * rng.uniform(0, 1, n) ** 2)
    arch_x = per_plank(rng.uniform(0, size, n))
    joint_x = per_plank(np.where(rng.random(n) < 0.6, rng.uniform(0, size, n), -10.0))
    phase = per_plank(rng.uniform(0, 50, n)) + (cols > joint_x) * per_plank(rng.uniform(3, 20, n))

    warp = _noise(rng, size, 4, 3) * np.float32(0.35 * size)  # slow wander of the rings along the board
    bend = arch * np.square((cols - arch_x) / size) * size
    ring = np.mod((across + bend + warp) / spacing + phase, 1.0)
    ring = ring * ring * ring  # sawtooth: slow fade through earlywood, sharp edge at the latewood
    fibres = _noise(rng, size, size // 2, 6)  # fine streaks along the board
    t = np.clip(0.6 * ring + 0.3 * fibres + 0.25 * _fbm(rng, size, 3, 3) - 0.1, 0.0, 1.0)

    # Seams: a dark groove one to two pixels wide between planks and at the end joints.
    seam = (across < rng.uniform(1.0, 2.2)) | (np.abs(cols - joint_x) < 0.9)
    shade = tone * np.where(seam, np.float32(0.5), np.float32(1.0))
    return _orient(_shade(_mix(light, dark, t), shade), rng)


def _marble(rng: np.random.Generator, size: int) -> np.ndarray:
    """A cloudy base crossed by long turbulent veins and a faint web of thin ones."""
    base, vein = _pick(rng, _MARBLE_TONES)
    rgb = _paint(base, 0.93 + 0.1 * _fbm(rng, size, 3, 3))  # clouding
    y, x = _unit_grid(size)
    angle = rng.uniform(0, np.pi)
    along = np.float32(np.cos(angle)) * x + np.float32(np.sin(angle)) * y
    across = np.float32(np.cos(angle + 1.2)) * x + np.float32(np.sin(angle + 1.2)) * y
    # Veins are the integer level lines of a turbulent ramp (the classic sin(x + turbulence) marble): bold, long,
    # roughly parallel ones, and a web of thin wavier ones running across them.
    bold = along * np.float32(rng.uniform(1.0, 2.5)) + _fbm(rng, size, 2, 4) * np.float32(rng.uniform(0.8, 1.8))
    web = across * np.float32(rng.uniform(2.0, 4.0)) + _fbm(rng, size, 3, 4) * np.float32(rng.uniform(2.0, 3.5))
    for field, strength, width_px in (
        # Real marble veins are soft and partly translucent: at full contrast they read as strings on the counter.
        (bold, rng.uniform(0.35, 0.7), rng.uniform(1.2, 2.6)),
        (web, rng.uniform(0.1, 0.25), rng.uniform(0.5, 0.9)),
    ):
        level = np.round(field)
        # Distance to the level divided by the slope is a distance in pixels: a vein keeps its width where the
        # field is flat instead of smearing into a blot.
        slope = cv2.magnitude(cv2.Sobel(field, cv2.CV_32F, 1, 0), cv2.Sobel(field, cv2.CV_32F, 0, 1)) / 8.0
        distance = np.abs(field - level) / (slope + 1e-4)
        veins = np.exp(-np.square(distance / np.float32(width_px)))
        rgb = _mix(rgb, vein, veins * np.float32(strength))
    return rgb


def _granite(rng: np.random.Generator, size: int) -> np.ndarray:
    """Interlocking mineral grains of a few colours at two scales, polished (slightly smoothed)."""
    minerals = _pick(rng, _GRANITE_MINERALS, 0.1)
    k = len(minerals)
    # Every pixel belongs to the mineral with the highest score; scores at two grain sizes are summed, so large
    # crystals hold small ones. The matrix mineral (first) gets a head start: it covers most of the stone.
    bias = np.asarray([rng.uniform(0.25, 0.45)] + [0.0] * (k - 1), np.float32)
    scores = np.zeros((size, size, k), np.float32)
    for grain, weight in ((rng.uniform(4.0, 7.0), 1.0), (rng.uniform(1.8, 2.8), 0.5)):
        cells = max(int(size / grain), 2)
        lattice = rng.random((cells, cells, k), dtype=np.float32)
        scores += np.float32(weight) * cv2.resize(lattice, (size, size), interpolation=cv2.INTER_CUBIC)
    labels = np.argmax(scores + bias, axis=2)
    facets = 0.92 + 0.16 * rng.random((size, size), dtype=np.float32)  # crystals catch the light unevenly
    rgb = cv2.merge([channel[labels] * facets for channel in minerals.T.astype(np.float32)])
    return cv2.GaussianBlur(rgb, (3, 3), 0.6)


def _tiles(rng: np.random.Generator, size: int) -> np.ndarray:
    """Square (or subway) tiles with grout lines, bevelled edges and a little tone variation per tile."""
    tile = float(size / rng.choice([3, 4, 5, 6, 8]))
    subway = rng.random() < 0.25
    tile_w, tile_h = (tile * 2, tile) if subway else (tile, tile)
    grout_w = rng.uniform(1.5, 4.0)
    rows = np.arange(size, dtype=np.float32)[:, None] + np.float32(rng.uniform(0, tile_h))
    cols = np.arange(size, dtype=np.float32)[None, :] + np.float32(rng.uniform(0, tile_w))
    row_idx = np.floor(rows / tile_h).astype(np.int64)
    cols = cols + (row_idx % 2).astype(np.float32) * np.float32(tile_w / 2 * subway)  # running bond (subway)
    col_idx = np.floor(cols / tile_w).astype(np.int64)
    u = cols - col_idx.astype(np.float32) * np.float32(tile_w)  # position inside the tile, pixels
    v = rows - row_idx.astype(np.float32) * np.float32(tile_h)

    n_r, n_c = int(row_idx.max()) + 1, int(col_idx.max()) + 1
    palette = np.stack([_pick(rng, _TILE_COLOURS) for _ in range(3)])
    mode = rng.choice(["plain", "checker", "mix"], p=[0.6, 0.2, 0.2])
    if mode == "plain":
        which = np.zeros((n_r, n_c), np.int64)
    elif mode == "checker":
        which = np.add.outer(np.arange(n_r), np.arange(n_c)) % 2
    else:
        which = rng.integers(0, 3, (n_r, n_c))
    tone = rng.uniform(0.94, 1.06, (n_r, n_c)).astype(np.float32)
    tile_rgb = palette[which] * tone[..., None]  # (n_r, n_c, 3): one colour per tile

    edge = np.minimum(np.minimum(u, tile_w - u), np.minimum(v, tile_h - v)) - np.float32(grout_w / 2)
    bevel = np.clip(edge / 2.5, 0.0, 1.0)  # the rounded tile edge darkens into the joint
    glaze = 0.97 + 0.06 * _noise(rng, size, 12, 12)  # glaze unevenness
    face = _shade(tile_rgb[row_idx, col_idx], glaze * (0.8 + 0.2 * bevel))
    grout = _paint(_pick(rng, _GROUT_COLOURS), 0.95 + 0.1 * rng.random((size, size), dtype=np.float32))
    return _mix(grout, face, (edge >= 0).astype(np.float32))


def _steel(rng: np.random.Generator, size: int) -> np.ndarray:
    """Brushed stainless steel: grey with a cool tint, fine directional streaks and a broad sheen."""
    grey = rng.uniform(140, 200)
    base = np.asarray([grey, grey * rng.uniform(1.0, 1.02), grey * rng.uniform(1.02, 1.06)], np.float32)
    fine = cv2.blur(rng.standard_normal((size, size), dtype=np.float32), (int(size // 4) | 1, 1))
    fine *= np.float32(np.sqrt(size / 4))  # the blur averages size/4 samples: back to unit variance
    coarse = _noise(rng, size, size // 3, 3) - 0.5
    y, x = _unit_grid(size)
    angle = rng.uniform(0, np.pi)
    wave = np.float32(2.0 * np.pi * rng.uniform(0.3, 1.0))
    along = np.float32(np.cos(angle)) * x + np.float32(np.sin(angle)) * y
    sheen = np.cos(wave * along + np.float32(rng.uniform(0, 6)))
    return _orient(_paint(base, 1.0 + 0.05 * fine + 0.25 * coarse + 0.1 * sheen), rng)


def _laminate(rng: np.random.Generator, size: int) -> np.ndarray:
    """A flat plastic colour with faint mottling and sparse light and dark flecks."""
    base = _pick(rng, _LAMINATE_COLOURS, 0.08)
    flecks = (rng.random((size, size), dtype=np.float32) < rng.uniform(0.02, 0.05)).astype(np.float32)
    flecks[rng.random((size, size)) < 0.5] *= -1.0  # as many darker flecks as lighter ones
    # Flecks are added in absolute intensity so that they show on black laminate as well as on white.
    flecks = cv2.GaussianBlur(flecks, (3, 3), 0.7) * np.float32(rng.uniform(40.0, 70.0))
    rgb = _paint(base, 0.96 + 0.08 * _fbm(rng, size, 4, 3))
    return rgb + cv2.merge([flecks, flecks, flecks])


# The procedural kinds: a new kind is its texture function above plus its entry here. BACKGROUND_KINDS, the default
# and the valid values of SceneConfig.background_kinds, comes from this dict.
_RENDERERS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "wood": _wood,
    "marble": _marble,
    "granite": _granite,
    "tiles": _tiles,
    "steel": _steel,
    "laminate": _laminate,
}
BACKGROUND_KINDS: tuple[str, ...] = tuple(_RENDERERS)
