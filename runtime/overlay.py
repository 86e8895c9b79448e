"""The picture shown in the window and written by --save: one fixed-size BGR canvas per frame.

    +------------------------------+-----------------------+
    |                              | input 64   recon      |
    |  camera frame, letterboxed   | [128x128]  [128x128]  |
    |  into 480 x 360              | 123.4 fps             |
    |                              | ladle        0.93 ### |
    |                              | whisk        0.71 ##  |
    +------------------------------+-----------------------+

The canvas never changes size (frames of any size are letterboxed), because cv2.VideoWriter needs one size.
"""
from __future__ import annotations

import os
import sys

import cv2
import numpy as np

FRAME_BOX = (480, 360)  # width, height of the camera-frame area
PANEL_WIDTH = 300
TILE = 128  # the 64x64 model input and reconstruction, scaled 2x with nearest neighbour (pixels stay visible)
MAX_LABEL_ROWS = 6
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_WHITE, _GREY, _GREEN = (255, 255, 255), (160, 160, 160), (80, 200, 80)


def overlay_size() -> tuple[int, int]:
    """(width, height) of every canvas render_overlay returns."""
    return FRAME_BOX[0] + PANEL_WIDTH, FRAME_BOX[1]


def letterbox(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Fit a BGR image into width x height, keeping its aspect ratio, on black."""
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    out = np.zeros((height, width, 3), np.uint8)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    out[top : top + new_h, left : left + new_w] = resized
    return out


def _tile(rgb: np.ndarray | None) -> np.ndarray:
    if rgb is None:  # a model without a reconstruction output
        return np.full((TILE, TILE, 3), 40, np.uint8)
    return cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), (TILE, TILE), interpolation=cv2.INTER_NEAREST)


def _text(canvas: np.ndarray, text: str, x: int, y: int, color=_WHITE, scale: float = 0.45) -> None:
    cv2.putText(canvas, text, (x, y), _FONT, scale, color, 1, cv2.LINE_AA)


def _panel(input_rgb, recon_rgb, labels, fps) -> np.ndarray:
    panel = np.full((FRAME_BOX[1], PANEL_WIDTH, 3), 24, np.uint8)
    gap = (PANEL_WIDTH - 2 * TILE) // 3
    for i, (tile, caption) in enumerate(((_tile(input_rgb), "input"), (_tile(recon_rgb), "reconstruction"))):
        x = gap + i * (TILE + gap)
        panel[22 : 22 + TILE, x : x + TILE] = tile
        _text(panel, caption, x, 16, _GREY, 0.4)
    y = 22 + TILE + 24
    _text(panel, f"{fps:.1f} fps" if fps else "-- fps", gap, y)
    if not labels:
        _text(panel, "no label above threshold", gap, y + 24, _GREY)
    bar_x, bar_w = gap + 150, PANEL_WIDTH - gap - (gap + 150)
    for row, (name, score) in enumerate(labels[:MAX_LABEL_ROWS]):
        ly = y + 24 * (row + 1)
        _text(panel, f"{name[:15]} {score:.2f}", gap, ly)
        cv2.rectangle(panel, (bar_x, ly - 10), (bar_x + int(bar_w * float(np.clip(score, 0, 1))), ly), _GREEN, -1)
    return panel


def render_overlay(
    frame_bgr: np.ndarray,
    input_rgb: np.ndarray,
    recon_rgb: np.ndarray | None,
    labels: list[tuple[str, float]],
    fps: float | None,
) -> np.ndarray:
    """BGR uint8 canvas of overlay_size(): the frame, the model input, its reconstruction, labels and fps."""
    canvas = np.empty((FRAME_BOX[1], FRAME_BOX[0] + PANEL_WIDTH, 3), np.uint8)
    canvas[:, : FRAME_BOX[0]] = letterbox(frame_bgr, *FRAME_BOX)
    canvas[:, FRAME_BOX[0] :] = _panel(input_rgb, recon_rgb, labels, fps)
    return canvas


# ------------------------------------------------------------------------------------------------ window


class DisplayError(RuntimeError):
    """No window can be shown here (OpenCV without a GUI, or no display); the message says what to do instead."""


def gui_available(build_info: str) -> bool:
    """Whether an OpenCV build information text lists a GUI backend (opencv-python-headless says 'GUI: NONE')."""
    for line in build_info.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "GUI":
            return value.strip().upper() not in ("", "NONE", "NO")
    return False


def display_problem(build_info: str, environ: dict[str, str], platform: str) -> str | None:
    """Why a window cannot open here, or None. Pure: the caller passes build info, environment and sys.platform."""
    if not gui_available(build_info):
        return (
            "this OpenCV has no GUI (cv2.getBuildInformation() says 'GUI: NONE', as opencv-python-headless), so no "
            "window can open: run with --headless (add --save overlay.mp4 to keep the overlay), or install "
            "opencv-python instead of opencv-python-headless (on a Jetson use JetPack's OpenCV)"
        )
    if platform.startswith("linux") and not (environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY")):
        return (
            "no display: DISPLAY is not set. Run with --headless, or show the window on the device's own screen "
            "(`export DISPLAY=:0`), or forward it over SSH (`ssh -X`)"
        )
    return None


class Window:
    """cv2.imshow window; show() returns False once the user pressed q / Esc or closed the window."""

    def __init__(self, title: str = "dualpath") -> None:
        problem = display_problem(cv2.getBuildInformation(), dict(os.environ), sys.platform)
        if problem:
            raise DisplayError(problem)
        self.title = title
        self._shown = False

    def show(self, canvas: np.ndarray) -> bool:
        try:
            cv2.imshow(self.title, canvas)
            key = cv2.waitKey(1) & 0xFF
        except cv2.error as e:
            raise DisplayError(f"cannot show a window ({e}); run with --headless") from None
        if key in (ord("q"), 27):
            return False
        visible = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE)
        was_shown, self._shown = self._shown, True
        return not (was_shown and visible < 1)  # closed with the mouse

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
        except cv2.error:
            pass
