"""Where frames come from, named by URIs as the Jetson tools name them (jetson-utils' videoSource):

    csi://0[?width=1280&height=720&fps=30&flip=0]   MIPI CSI camera through GStreamer's nvarguscamerasrc (Jetson)
    /dev/video0, v4l2:///dev/video0, 0              V4L2 / USB camera
    rtsp://host/stream, http(s)://...               network stream (FFmpeg)
    "videotestsrc ! videoconvert ! appsink"         any GStreamer pipeline ending in appsink
    clip.mp4, file://clip.mp4                       video file
    photo.png                                       one image
    frames/                                         a folder of images, in name order

Every source gives BGR / grey / BGRA frames as OpenCV reads them; runtime.preprocess makes them model inputs.
Live sources (cameras, streams) that stop delivering are reopened a few times with a growing pause before the
source reports itself lost; files simply end (or start again with loop=True, for benchmarks). A video frame that
does not decode is skipped and counted (`undecodable`); a file ends at its real end, or after `max_failures`
undecodable frames in a row (`broken`).
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol
from urllib.parse import parse_qsl, urlsplit

import cv2
import numpy as np

log = logging.getLogger("runtime")

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pnm"})
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp")
LIVE_KINDS = frozenset({"csi", "camera", "stream", "gstreamer"})
SOURCE_FORMS = "csi://N, /dev/videoN or N, rtsp://..., a GStreamer pipeline, a video file, an image or a folder of images"

CSI_DEFAULTS = {"width": 1280, "height": 720, "fps": 30, "flip": 0}
OPEN_TIMEOUT_S = 10.0  # default --timeout: seconds a live source may take to open and give its first frame


class SourceError(RuntimeError):
    """A source that cannot be opened or read; the message says what to check."""


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # "csi" | "camera" | "stream" | "gstreamer" | "video" | "image" | "folder"
    target: str | int  # sensor / device index, device path, URL, pipeline or file path
    options: dict[str, int] = field(default_factory=dict)  # csi:// query parameters

    @property
    def live(self) -> bool:
        return self.kind in LIVE_KINDS


@dataclass
class Frame:
    image: np.ndarray  # as OpenCV reads it: BGR, grey or BGRA
    name: str = ""  # file name for image sources, "" for video and cameras


class Capture(Protocol):
    """The part of cv2.VideoCapture the sources use (tests pass fakes)."""

    def isOpened(self) -> bool: ...
    def read(self) -> tuple[bool, np.ndarray | None]: ...
    def get(self, prop: int) -> float: ...
    def release(self) -> None: ...


# ------------------------------------------------------------------------------------------------ parsing (pure)


def _csi_options(query: str) -> dict[str, int]:
    options = dict(CSI_DEFAULTS)
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in CSI_DEFAULTS:
            raise SourceError(f"unknown csi:// option {key!r}; the options are {', '.join(CSI_DEFAULTS)}")
        if not value.isdigit():
            raise SourceError(f"csi:// option {key} must be a whole number, got {value!r}")
        options[key] = int(value)
    if not 0 <= options["flip"] <= 7:
        raise SourceError(f"csi:// flip is nvvidconv's flip-method, 0..7, got {options['flip']}")
    return options


def parse_source(uri: str) -> SourceSpec:
    """A source string -> what it names. Files must exist (that is how image, folder and video are told apart)."""
    text = str(uri).strip()
    if not text:
        raise SourceError(f"empty source; give one of: {SOURCE_FORMS}")
    if text.isdigit():
        return SourceSpec("camera", int(text))
    if " ! " in text:
        return SourceSpec("gstreamer", text)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "csi":
        sensor = parts.netloc or parts.path.lstrip("/")
        if not sensor.isdigit():
            raise SourceError(f"csi:// needs a sensor number, e.g. csi://0, got {text!r}")
        return SourceSpec("csi", int(sensor), _csi_options(parts.query))
    if scheme == "v4l2":
        return SourceSpec("camera", parts.netloc + parts.path)
    if scheme in STREAM_SCHEMES:
        return SourceSpec("stream", text)
    if text.startswith("/dev/video"):
        return SourceSpec("camera", text)
    if scheme == "file":
        text = parts.netloc + parts.path
    elif scheme and len(scheme) > 1:  # "C:" on Windows is a drive, not a scheme
        raise SourceError(f"unknown source scheme {scheme}://; give one of: {SOURCE_FORMS}")
    path = Path(text).expanduser()
    if path.is_dir():
        return SourceSpec("folder", str(path))
    if not path.exists():
        raise SourceError(f"no such file or folder: {path}; a source is one of: {SOURCE_FORMS}")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return SourceSpec("image", str(path))
    return SourceSpec("video", str(path))


def source_files(spec: SourceSpec | str) -> list[Path]:
    """The files a source reads (a video, an image, every image of a folder, a camera's device file), for the check
    that no output is written over one of them; nothing for streams."""
    if isinstance(spec, str):
        spec = parse_source(spec)
    if spec.kind in ("video", "image") or (spec.kind == "camera" and isinstance(spec.target, str)):
        return [Path(spec.target)]
    if spec.kind == "folder":
        return _folder_images(Path(spec.target))
    return []


def _folder_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def csi_pipeline(sensor_id: int = 0, width: int = 1280, height: int = 720, fps: int = 30, flip: int = 0) -> str:
    """GStreamer pipeline for a Jetson CSI camera: the ISP (nvarguscamerasrc) in NVMM memory, nvvidconv to system
    memory, BGR for OpenCV. appsink keeps only the newest buffer, so a slow model sees the live scene, not a backlog."""
    return (
        f"nvarguscamerasrc sensor-id={sensor_id} ! "
        f"video/x-raw(memory:NVMM), width={width}, height={height}, framerate={fps}/1, format=NV12 ! "
        f"nvvidconv flip-method={flip} ! video/x-raw, format=BGRx ! "
        "videoconvert ! video/x-raw, format=BGR ! appsink drop=true max-buffers=1 sync=false"
    )


def gstreamer_available(build_info: str) -> bool:
    """Whether an OpenCV build information text (cv2.getBuildInformation()) lists GStreamer support."""
    for line in build_info.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "GStreamer":
            return value.strip().upper().startswith("YES")
    return False


def gstreamer_missing_message(kind: str) -> str:
    what = "csi:// cameras (nvarguscamerasrc)" if kind == "csi" else "GStreamer pipelines"
    return (
        f"{what} need OpenCV built with GStreamer, and this one ({cv2.__version__} from {Path(cv2.__file__).parent}) "
        "is not: cv2.getBuildInformation() says 'GStreamer: NO', as for every opencv-python wheel on PyPI. "
        "On a Jetson use JetPack's OpenCV, which has GStreamer: `pip uninstall opencv-python opencv-python-headless` "
        "in this environment, make sure the system one is installed (`sudo apt install nvidia-opencv` or "
        "`python3-opencv`), and create the virtual environment with --system-site-packages so it sees that cv2. "
        "A USB camera works without GStreamer: --source /dev/video0."
    )


# ------------------------------------------------------------------------------------------------ sources


class FrameSource:
    """read() -> Frame, or None when the source has ended (end_reason says why). Context manager."""

    description: str = ""
    live: bool = False
    fps: float | None = None  # nominal frame rate, for writing videos; None when unknown
    end_reason: str = ""
    lost: bool = False  # a live source that stopped delivering (as opposed to a file that ended)
    broken: bool = False  # a file that ended in a run of undecodable frames before its real end
    undecodable: int = 0  # frames skipped because they did not decode

    def read(self) -> Frame | None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CaptureSource(FrameSource):
    """A cv2.VideoCapture-like object; `opener` makes a fresh one, for a reopen after a failed read."""

    def __init__(
        self,
        opener: Callable[[], Capture],
        description: str,
        *,
        live: bool,
        loop: bool = False,
        retries: int = 3,
        backoff_s: float = 0.25,
        sleep: Callable[[float], None] = time.sleep,
        max_failures: int = 50,
    ) -> None:
        if retries < 0 or backoff_s < 0:
            raise ValueError(f"retries and backoff must be >= 0, got {retries} and {backoff_s}")
        if max_failures < 1:
            raise ValueError(f"max_failures must be >= 1, got {max_failures}")
        self._opener, self.description, self.live, self.loop = opener, description, live, loop
        self.retries, self.backoff_s, self._sleep, self.max_failures = retries, backoff_s, sleep, max_failures
        self._cap = opener()
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else None
        self._since_open = 0  # frames read since the capture was (re)opened
        self._attempts = 0  # reads since the capture was (re)opened, failed ones included: the file position

    def _read(self) -> np.ndarray | None:
        ok, image = self._cap.read()
        self._attempts += 1
        if ok and image is not None and image.size:
            self._since_open += 1
            return image
        return None

    def _read_file(self) -> np.ndarray | None:
        """The next frame that decodes; None at the real end (by the frame count, where the container has one) or
        after max_failures undecodable frames in a row."""
        failures = 0
        while (image := self._read()) is None:
            total = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
            if total > 0 and self._attempts > total:
                self.undecodable += failures  # the last frames did not decode
                return None
            failures += 1
            if failures >= self.max_failures:
                if total > 0:  # not at the end yet: the file is damaged from here on
                    self.undecodable += failures
                    self.broken = True
                    self.end_reason = f"ended after {failures} undecodable frames in a row (--max-bad-frames)"
                return None  # without a frame count, a run of failures is the end of the file
            if self.undecodable + failures <= 3:
                log.warning("%s: a frame did not decode; skipped", self.description)
        self.undecodable += failures
        return image

    def _reopen(self) -> bool:
        self._cap.release()
        try:
            self._cap = self._opener()
        except SourceError as e:
            log.warning("%s: reopening failed: %s", self.description, e)
            return False
        self._since_open = self._attempts = 0
        return True

    def _retry_live(self) -> np.ndarray | None:
        for attempt in range(1, self.retries + 1):
            delay = self.backoff_s * 2 ** (attempt - 1)
            log.warning("%s: no frame; reopening in %.2f s (retry %d of %d)", self.description, delay, attempt, self.retries)
            self._sleep(delay)
            if self._reopen() and (image := self._read()) is not None:
                log.warning("%s: frames again after retry %d", self.description, attempt)
                return image
        return None

    def read(self) -> Frame | None:
        image = self._read() if self.live else self._read_file()
        if image is None and self.live:
            image = self._retry_live()
            if image is None:
                self.lost = True
                self.end_reason = f"stopped delivering frames (no frame after {self.retries} reopen attempts)"
        elif image is None and self.loop and not self.broken and self._since_open > 0 and self._reopen():
            image = self._read_file()
        if image is None:
            self.end_reason = self.end_reason or "end of file"
            return None
        return Frame(image)

    def close(self) -> None:
        self._cap.release()


class ImageFilesSource(FrameSource):
    """One image or a folder of images. An image that does not decode is skipped with a warning (counted in
    `skipped`); a single image that does not decode is refused when the source is opened."""

    def __init__(self, paths: list[Path], description: str, *, loop: bool = False) -> None:
        if not paths:
            raise SourceError(f"no images in {description} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
        self.description, self.loop, self._paths = description, loop, paths
        self._next = 0
        self._delivered_this_pass = 0
        self.skipped: list[str] = []
        self._cache: np.ndarray | None = None
        if len(paths) == 1:  # decode once: fail early, and loop without decoding the same file again
            self._cache = read_image(paths[0])

    def read(self) -> Frame | None:
        while True:
            if self._next == len(self._paths):
                if not (self.loop and self._delivered_this_pass):
                    self.end_reason = "end of images"
                    return None
                self._next, self._delivered_this_pass = 0, 0
            path = self._paths[self._next]
            self._next += 1
            if self._cache is not None:
                image = self._cache
            else:
                try:
                    image = read_image(path)
                except SourceError as e:
                    log.warning("skipping %s", e)
                    self.skipped.append(path.name)
                    continue
            self._delivered_this_pass += 1
            return Frame(image, path.name)


def read_image(path: Path) -> np.ndarray:
    # IMREAD_UNCHANGED keeps grey, alpha and 16 bits as stored; runtime.preprocess handles all of them.
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise SourceError(f"cannot decode image {path}: corrupt, empty or not an image format OpenCV reads")
    return image


def _video_capture(target: str | int, api: int, failure: str, timeout_s: float | None = None,
                   description: str = "") -> Callable[[], Capture]:
    """An opener of cv2.VideoCapture(target, api). With `timeout_s` (live sources) it says "connecting to ..." on
    stderr, gives FFmpeg its open / read timeouts (so a stream that never answers, or answers and sends nothing, fails
    after timeout_s instead of FFmpeg's own 30 s) and opens in a watchdog thread, for the backends that take no
    timeout (V4L2, GStreamer): past the timeout the open is given up (the thread is left to finish on its own, and
    what it opens is released) with a SourceError naming --timeout."""

    def plain() -> Capture:
        if timeout_s is not None and api == cv2.CAP_FFMPEG:
            ms = max(1, int(timeout_s * 1000))
            return cv2.VideoCapture(target, api, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
        return cv2.VideoCapture(target, api)

    def opener() -> Capture:
        if timeout_s is None:
            cap = plain()
        else:
            print(f"connecting to {description or target} (--timeout {timeout_s:g} s) ...", file=sys.stderr, flush=True)
            cap = _within(plain, timeout_s + (2.0 if api == cv2.CAP_FFMPEG else 0.0))  # FFmpeg stops itself first
            if cap is None:
                raise SourceError(f"{description or target} did not answer within {timeout_s:g} s (--timeout): "
                                  f"{failure.partition(': ')[2] or 'check it'}, or give it more --timeout")
        if not cap.isOpened():
            cap.release()
            if timeout_s is not None and api == cv2.CAP_FFMPEG:
                failure_text = f"{failure} (no answer within --timeout {timeout_s:g} s, or refused)"
                raise SourceError(failure_text)
            raise SourceError(failure)
        if api != cv2.CAP_GSTREAMER:  # live streams: keep the queue short so frames are recent
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return cap

    return opener


def _within(open_capture: Callable[[], Capture], seconds: float) -> Capture | None:
    """open_capture() in a daemon thread; None when it has not returned within `seconds` (cv2 releases the GIL while
    it opens, so the wait is real). A capture the thread opens after that is released."""
    done = threading.Event()
    box: dict[str, object] = {}
    lock = threading.Lock()

    def work() -> None:
        try:
            cap = open_capture()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            box["error"] = e
            cap = None
        with lock:
            if done.is_set():  # given up on: nobody will release it
                if cap is not None:
                    cap.release()
                return
            box["cap"] = cap
            done.set()

    threading.Thread(target=work, name="open-source", daemon=True).start()
    finished = done.wait(seconds)
    with lock:
        if not finished and not done.is_set():
            done.set()  # tells the thread it was given up on
            return None
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["cap"]  # type: ignore[return-value]


def _capture_opener(spec: SourceSpec, build_info: str,
                    timeout_s: float | None = OPEN_TIMEOUT_S) -> tuple[Callable[[], Capture], str]:
    if spec.kind in ("csi", "gstreamer"):
        if not gstreamer_available(build_info):
            raise SourceError(gstreamer_missing_message(spec.kind))
        pipeline = csi_pipeline(spec.target, **spec.options) if spec.kind == "csi" else str(spec.target)
        failure = (
            f"GStreamer could not start {pipeline!r}; on a Jetson check the camera with "
            "`gst-launch-1.0 nvarguscamerasrc num-buffers=30 ! fakesink` and `sudo systemctl restart nvargus-daemon`"
        )
        description = f"csi://{spec.target}" if spec.kind == "csi" else "gstreamer"
        return _video_capture(pipeline, cv2.CAP_GSTREAMER, failure, timeout_s, description), description
    if spec.kind == "camera":
        api = cv2.CAP_V4L2 if isinstance(spec.target, str) else cv2.CAP_ANY
        failure = (
            f"cannot open camera {spec.target}: is it connected and not used by another program? "
            "(`v4l2-ctl --list-devices` lists the cameras)"
        )
        return _video_capture(spec.target, api, failure, timeout_s, f"camera {spec.target}"), f"camera {spec.target}"
    if spec.kind == "stream":
        failure = f"cannot open stream {spec.target}: check the URL, the network and any credentials"
        return _video_capture(spec.target, cv2.CAP_FFMPEG, failure, timeout_s, str(spec.target)), str(spec.target)
    failure = f"cannot open video {spec.target}: corrupt, or not a format / codec this OpenCV's FFmpeg reads"
    return _video_capture(spec.target, cv2.CAP_ANY, failure), str(spec.target)


def open_source(
    spec: SourceSpec | str,
    *,
    loop: bool = False,
    retries: int = 3,
    backoff_s: float = 0.25,
    build_info: str | None = None,
    max_failures: int = 50,
    timeout_s: float = OPEN_TIMEOUT_S,
) -> FrameSource:
    """Open what a SourceSpec (or a source string) names. Raises SourceError with what to check. `timeout_s`: how long
    a live source (camera, stream, GStreamer) may take to open, and a stream to give a frame, each time it is opened."""
    if not timeout_s > 0:
        raise ValueError(f"the timeout must be > 0 seconds, got {timeout_s}")
    if isinstance(spec, str):
        spec = parse_source(spec)
    if spec.kind == "image":
        return ImageFilesSource([Path(spec.target)], str(spec.target), loop=loop)
    if spec.kind == "folder":
        folder = Path(spec.target)
        return ImageFilesSource(_folder_images(folder), f"folder {folder}", loop=loop)
    if loop and spec.live:
        log.warning("--loop applies to files; ignored for the live source %s", spec.target)
    opener, description = _capture_opener(spec, cv2.getBuildInformation() if build_info is None else build_info,
                                          timeout_s if spec.live else None)
    return CaptureSource(opener, description, live=spec.live, loop=loop and not spec.live, retries=retries,
                         backoff_s=backoff_s, max_failures=max_failures)
