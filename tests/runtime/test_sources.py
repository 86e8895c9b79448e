"""Source URIs, files, folders, and live sources that stop delivering (with fake captures, no camera needed)."""
import cv2
import numpy as np
import pytest

from runtime.sources import (
    CaptureSource,
    SourceError,
    csi_pipeline,
    gstreamer_available,
    open_source,
    parse_source,
)

BUILD_INFO_NO_GST = "  Video I/O:\n    FFMPEG:                      YES\n    GStreamer:                   NO\n    v4l/v4l2: YES\n"
BUILD_INFO_GST = "  Video I/O:\n    FFMPEG:                      YES\n    GStreamer:                   YES (1.20.3)\n"


def _image(value: int, shape=(48, 64, 3)) -> np.ndarray:
    return np.full(shape, value, np.uint8)


@pytest.fixture
def video(tmp_path):
    path = tmp_path / "clip.mkv"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 10, (64, 48))
    for i in range(5):
        writer.write(_image(40 * i))
    writer.release()
    return path


# ------------------------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    "uri, kind, target",
    [
        ("0", "camera", 0),
        ("/dev/video2", "camera", "/dev/video2"),
        ("v4l2:///dev/video1", "camera", "/dev/video1"),
        ("rtsp://10.0.0.2:8554/cam", "stream", "rtsp://10.0.0.2:8554/cam"),
        ("https://example.org/a.m3u8", "stream", "https://example.org/a.m3u8"),
        ("videotestsrc ! videoconvert ! appsink", "gstreamer", "videotestsrc ! videoconvert ! appsink"),
        ("csi://1", "csi", 1),
    ],
)
def test_device_and_network_uris(uri, kind, target):
    spec = parse_source(uri)
    assert (spec.kind, spec.target, spec.live) == (kind, target, True)


def test_csi_options_fill_the_pipeline():
    spec = parse_source("csi://0?width=1920&height=1080&fps=60&flip=2")
    assert spec.options == {"width": 1920, "height": 1080, "fps": 60, "flip": 2}
    pipeline = csi_pipeline(spec.target, **spec.options)
    assert pipeline.startswith("nvarguscamerasrc sensor-id=0 ! ")
    assert "width=1920, height=1080, framerate=60/1" in pipeline and "flip-method=2" in pipeline
    assert pipeline.endswith("appsink drop=true max-buffers=1 sync=false")
    assert parse_source("csi://0").options["width"] == 1280


@pytest.mark.parametrize(
    "uri, message",
    [
        ("csi://x", "needs a sensor number"),
        ("csi://0?zoom=2", "unknown csi:// option 'zoom'"),
        ("csi://0?fps=fast", "whole number"),
        ("ftp://host/clip.mp4", "unknown source scheme ftp://"),
        ("", "empty source"),
    ],
)
def test_malformed_uris_say_what_is_accepted(uri, message):
    with pytest.raises(SourceError, match=message):
        parse_source(uri)


def test_files_are_told_apart_by_what_exists(tmp_path, video):
    cv2.imwrite(str(tmp_path / "a.png"), _image(9))
    assert parse_source(str(tmp_path / "a.png")).kind == "image"
    assert parse_source(f"file://{tmp_path / 'a.png'}").kind == "image"
    assert parse_source(str(tmp_path)).kind == "folder"
    assert parse_source(str(video)).kind == "video"
    assert not parse_source(str(video)).live
    with pytest.raises(SourceError, match=r"no such file or folder: .*missing.mp4; a source is one of: csi://N"):
        parse_source(str(tmp_path / "missing.mp4"))


def test_gstreamer_detection_reads_the_build_information():
    assert not gstreamer_available(BUILD_INFO_NO_GST)
    assert gstreamer_available(BUILD_INFO_GST)
    assert not gstreamer_available("")


def test_csi_without_gstreamer_explains_jetpacks_opencv():
    with pytest.raises(SourceError) as e:
        open_source("csi://0", build_info=BUILD_INFO_NO_GST)
    message = str(e.value)
    assert "GStreamer: NO" in message and "JetPack's OpenCV" in message and "pip uninstall opencv-python" in message
    assert "--source /dev/video0" in message


def test_this_opencv_is_checked_when_no_build_info_is_given():
    if gstreamer_available(cv2.getBuildInformation()):
        pytest.skip("this OpenCV has GStreamer")
    with pytest.raises(SourceError, match="GStreamer"):
        open_source("csi://0")


# ------------------------------------------------------------------------------------------------ files


def test_video_file_gives_its_frames_then_ends(video):
    with open_source(str(video)) as source:
        frames = [source.read() for _ in range(6)]
    assert [f is None for f in frames] == [False] * 5 + [True]
    assert [int(f.image[0, 0, 0]) for f in frames[:5]] == [0, 40, 80, 120, 160]  # FFV1 is lossless
    assert source.end_reason == "end of file" and not source.lost
    assert source.fps == pytest.approx(10)


def test_video_loops_when_asked(video):
    with open_source(str(video), loop=True) as source:
        values = [int(source.read().image[0, 0, 0]) for _ in range(12)]
    assert values == [0, 40, 80, 120, 160] * 2 + [0, 40]


def test_corrupt_video_is_refused(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    with pytest.raises(SourceError, match="cannot open video .*broken.mp4: corrupt"):
        open_source(str(bad))


def test_folder_skips_images_that_do_not_decode(tmp_path, caplog):
    cv2.imwrite(str(tmp_path / "1.png"), _image(10, (20, 30)))  # grey
    (tmp_path / "2.jpg").write_bytes(b"not a jpeg")
    cv2.imwrite(str(tmp_path / "3.png"), _image(30, (20, 30, 4)))  # BGRA
    (tmp_path / "notes.txt").write_text("ignored")
    with open_source(str(tmp_path)) as source:
        frames = [source.read() for _ in range(3)]
    assert [f.name for f in frames[:2]] == ["1.png", "3.png"] and frames[2] is None
    assert frames[0].image.shape == (20, 30) and frames[1].image.shape == (20, 30, 4)  # kept as stored
    assert source.skipped == ["2.jpg"]
    assert "cannot decode image" in caplog.text and "2.jpg" in caplog.text


def test_empty_folder_and_corrupt_single_image_are_refused(tmp_path):
    with pytest.raises(SourceError, match="no images in folder"):
        open_source(str(tmp_path))
    (tmp_path / "x.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(SourceError, match=r"cannot decode image .*x.png: corrupt"):
        open_source(str(tmp_path / "x.png"))


def test_single_image_loops_without_decoding_again(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), _image(77))
    source = open_source(str(tmp_path / "a.png"), loop=True)
    frames = [source.read() for _ in range(3)]
    assert all(f is not None and f.image is frames[0].image for f in frames)
    once = open_source(str(tmp_path / "a.png"))  # without loop: the image once, then the end
    first = once.read()
    assert first.name == "a.png" and np.array_equal(first.image, _image(77))
    assert once.read() is None and once.end_reason == "end of images"


def test_folder_of_only_broken_images_ends_even_when_looping(tmp_path):
    (tmp_path / "a.png").write_bytes(b"broken")
    (tmp_path / "b.png").write_bytes(b"broken too")
    source = open_source(str(tmp_path), loop=True)
    assert source.read() is None and source.skipped == ["a.png", "b.png"]


# ------------------------------------------------------------------------------------------------ live sources


class FakeCapture:
    """Delivers `frames` frames, then fails every read (a camera unplugged, a stream that dropped)."""

    def __init__(self, frames: int, opened: list):
        self.left = frames
        opened.append(self)

    def isOpened(self):
        return True

    def read(self):
        if self.left <= 0:
            return False, None
        self.left -= 1
        return True, _image(self.left)

    def get(self, prop):
        return 25.0

    def release(self):
        pass


def test_live_source_that_stops_is_reopened_with_backoff_then_reported_lost(caplog):
    opened, sleeps = [], []
    source = CaptureSource(lambda: FakeCapture(2 if not opened else 0, opened), "camera 0",
                           live=True, retries=3, backoff_s=0.1, sleep=sleeps.append)
    assert source.read() is not None and source.read() is not None
    assert source.read() is None
    assert sleeps == pytest.approx([0.1, 0.2, 0.4])
    assert len(opened) == 4  # the first open and three reopens
    assert source.lost and "stopped delivering frames" in source.end_reason
    assert "retry 3 of 3" in caplog.text


def test_live_source_that_comes_back_goes_on():
    opened, sleeps = [], []
    source = CaptureSource(lambda: FakeCapture(1 if len(opened) != 1 else 0, opened), "rtsp://cam",
                           live=True, retries=3, backoff_s=0.05, sleep=sleeps.append)
    assert source.read() is not None
    assert source.read() is not None  # first reopen delivers nothing, the second does
    assert sleeps == pytest.approx([0.05, 0.1]) and not source.lost


def test_unopenable_camera_fails_at_once():
    with pytest.raises(SourceError, match="cannot open camera /dev/video97: is it connected"):
        open_source("/dev/video97")
