"""Real container timing (issue 14.3): presentation times, not index / fps, and display rotation.

The files are made with PyAV: a variable-frame-rate clip (20 frames at 10 fps, then 20 at 2.5 fps)
and a clip whose display matrix rotates it by 90°. Each frame's grey level encodes its index, so a
test can tell which frame it got.
"""
from fractions import Fraction

import av
import numpy as np
import pytest

from videoreasoner.data.record_checks import check_video, timing_report
from videoreasoner.video.config import VideoConfig
from videoreasoner.video.inputs import sample_video
from videoreasoner.video.decoding import VideoError, probe, read_frames

W, H = 64, 48


def _frame(k: int) -> av.VideoFrame:
    img = np.full((H, W, 3), 5 * k + 20, np.uint8)
    img[:8, :16] = 255  # a white mark in the top-left corner of the coded image
    return av.VideoFrame.from_ndarray(img, format="rgb24")


def _write(path, pts_ms: list[int], rotation: int = 0) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        for k, t in enumerate(pts_ms):
            frame = _frame(k)
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


VFR_MS = [100 * k for k in range(20)] + [2000 + 400 * k for k in range(20)]  # ends at 10.0 s


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("timing")
    _write(root / "vfr.mp4", VFR_MS)
    _write(root / "cfr.mp4", [100 * k for k in range(40)])
    _write(root / "rotated.mp4", [100 * k for k in range(8)], rotation=90)
    return root


def _index_of(frame: np.ndarray) -> int:
    """The frame index encoded in the grey level (away from the mark)."""
    return round((float(frame[-8:, -8:].mean()) - 20) / 5)


@pytest.mark.parametrize("decode", [True, False])
def test_probe_times_a_variable_rate_file_by_its_presentation_timestamps(files, decode):
    info = probe(files / "vfr.mp4", decode=decode)
    assert info.n_frames == 40 and info.vfr and info.rotation == 0
    assert [info.times[k] for k in (0, 10, 20, 30)] == pytest.approx([0.0, 1.0, 2.0, 6.0])
    assert info.duration == pytest.approx(10.0) and info.fps == pytest.approx(4.0)  # mean rate


def test_a_constant_rate_file_keeps_k_over_fps(files):
    info = probe(files / "cfr.mp4", decode=False)
    assert not info.vfr and info.fps == pytest.approx(10.0) and info.duration == pytest.approx(4.0)
    assert info.times == pytest.approx([k / 10 for k in range(40)], abs=1e-9)


def test_sampled_times_of_a_variable_rate_file_are_the_frames_real_times(files):
    """The issue's example: index ÷ fps told the model 0, 2.275, 4.55, 6.825 s for frames really at
    0, 1, 2, 6 s. The uniform sampler now divides the 10 s by time and reports each frame's pts."""
    video = sample_video(files / "vfr.mp4", VideoConfig(fps=0.4, min_frames=4, max_frames=4))
    assert video.timestamps == pytest.approx([1.2, 3.6, 6.0, 8.4])  # on screen at 1.25, 3.75, 6.25, 8.75 s
    assert [_index_of(f) for f in video.frames] == list(video.indices) == [12, 24, 30, 36]
    assert [VFR_MS[i] / 1000 for i in video.indices] == pytest.approx(list(video.timestamps))
    assert video.sampled_fps == pytest.approx(0.4) and video.metadata()["duration"] == pytest.approx(10.0)


def test_read_frames_returns_presentation_times(files):
    frames, times = read_frames(files / "vfr.mp4", [0, 10, 20, 30])
    assert times == pytest.approx((0.0, 1.0, 2.0, 6.0))
    assert [_index_of(f) for f in frames] == [0, 10, 20, 30]


def test_rotation_is_applied_to_frames_and_size(files):
    info = probe(files / "rotated.mp4")
    assert info.rotation == 90 and (info.width, info.height) == (H, W)  # display size: turned
    video = sample_video(files / "rotated.mp4", VideoConfig(fps=10, min_frames=4, max_frames=4))
    assert video.frames.shape[1:3] == (W, H)
    # 90° counter-clockwise: the coded top-left mark is shown bottom-left
    mark = video.frames[0, :, :, 0] > 200
    assert mark[-12:, :6].all() and not mark[:W - 20].any()


def test_rotation_reject_is_a_clear_error(files):
    with pytest.raises(VideoError, match="rotated.mp4: the display matrix rotates the frames by 90°"):
        sample_video(files / "rotated.mp4", VideoConfig(rotation="reject"))
    with pytest.raises(VideoError, match="rotates the frames by 90°"):
        read_frames(files / "rotated.mp4", [0], rotation="reject")
    with pytest.raises(ValueError, match="params video.rotation"):
        VideoConfig.from_params({"rotation": "sideways"})


def test_validation_accepts_the_true_duration_and_reports_vfr_and_rotated_files(files):
    vfr, rotated = probe(files / "vfr.mp4"), probe(files / "rotated.mp4")
    record = {"id": "a", "duration": 10.0}
    assert check_video(record, vfr) is None  # n / average_rate (≈ 9.1 s) used to reject it
    field, problem = check_video({"id": "b", "duration": 9.1}, vfr)
    assert field == "duration" and "variable rate" in problem and "last 10 s" in problem
    assert check_video({"id": "c", "duration": 0.8, "width": H, "height": W}, rotated) is None
    field, problem = check_video({"id": "c", "duration": 0.8, "width": W}, rotated)
    assert field == "width" and "rotated 90°" in problem
    field, problem = check_video({"id": "c", "duration": 0.8}, rotated, rotation="reject")
    assert field == "video" and "rotates the frames by 90°" in problem
    report = timing_report({"v.mp4": vfr, "r.mp4": rotated, "cfr.mp4": probe(files / "cfr.mp4"),
                            "gone.mp4": "gone.mp4: video file does not exist"})
    assert report == {"n_vfr": 1, "vfr": ["v.mp4"], "n_rotated": 1, "rotated": {"r.mp4": 90}}
