"""Decoding throughput, side by side: the project's decoder against qwen-vl-utils, the loader the Qwen-VL
recipes use, on the same clips with the same frame count.

For each clip size (H.264 clips encoded here with videoreasoner/video/decoding.py's encoder: moving
gradients and a moving square, --seconds long) and --frames frames per clip it times, over --repeats
passes (median):
- `project (cold)`: videoreasoner/video/inputs.py `sample_video` (uniform sampler, min = max = --frames)
  on a file it has not seen: probe (packet timestamps) + decoding the selected frames (PyAV);
- `project (probed)`: the same with the probe cached, as during training, where each file is probed once;
- `qwen-vl-utils (decord)`: qwen_vl_utils.vision_process's decord reader with `nframes` = --frames (open,
  index, `get_batch`), the reader its `fetch_video` calls first.
Both return the frames at the file's size (the resize to the pixel budget happens later in both, in the
processor or in fetch_video): decoding only. The ratio is qwen-vl-utils' time over the project's, so
above 1 means the project's decoder is faster.

qwen-vl-utils is optional (`pip install -e '.[decode-bench]'`: qwen-vl-utils and decord). With torchvision
0.29 its torchvision reader is gone (no torchvision.io.read_video) and its torchcodec reader needs
torchcodec, which does not run on this stack, so decord is the backend it can use here; decord 0.6.0's
wheel is tagged for CPython 3.6 and `pip check` flags it, which is why it is not a dependency of the
project. Without them the qwen-vl-utils rows say so and the project's rows are still printed.

    python benchmarks/decoding.py [--frames 16] [--seconds 10] [--repeats 3] [--sizes 176x144@25,640x360@30,1280x720@30]
    python benchmarks/decoding.py --smoke
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from videoreasoner.core import telemetry  # noqa: E402,F401
from videoreasoner.video import decoding  # noqa: E402
from videoreasoner.video.config import VideoConfig  # noqa: E402
from videoreasoner.video.inputs import sample_video  # noqa: E402

SMOKE = {"frames": 4, "seconds": 1.0, "repeats": 1, "sizes": "64x48@10"}


def make_clip(path: Path, width: int, height: int, fps: int, seconds: float) -> None:
    """An H.264 clip with content in every frame (a gradient drifting and a square moving), so that the
    encoder cannot reduce frames to nothing."""
    n = max(2, round(fps * seconds))
    y, x = np.mgrid[0:height, 0:width]
    frames = np.empty((n, height, width, 3), dtype=np.uint8)
    side = max(4, height // 6)
    for t in range(n):
        frames[t, ..., 0] = (x + 3 * t) % 256
        frames[t, ..., 1] = (y + 2 * t) % 256
        frames[t, ..., 2] = (x + y + t) % 256
        left, top = (7 * t) % max(1, width - side), (5 * t) % max(1, height - side)
        frames[t, top:top + side, left:left + side] = 255
    decoding.encode_mp4(frames, fps, path)


def qwen_reader():
    """The decord reader of qwen-vl-utils, or (None, why not)."""
    try:
        from qwen_vl_utils import vision_process
    except ImportError:
        return None, "qwen-vl-utils not installed (pip install -e '.[decode-bench]')"
    try:
        import decord  # noqa: F401
    except ImportError:
        return None, "decord not installed: qwen-vl-utils has no working reader here (torchvision 0.29 has no read_video)"
    vision_process.logger.disabled = True  # it logs every read
    return vision_process.VIDEO_READER_BACKENDS["decord"], ""


def timed(fn, repeats: int) -> tuple[float, int]:
    """(median seconds of `repeats` calls, frames the last call returned)."""
    seconds, n = [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = fn()
        seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds), n


def measure(path: Path, frames: int, repeats: int, reader) -> dict[str, tuple[float, int] | None]:
    cfg = VideoConfig.from_params({"fps": 1000.0, "min_frames": frames, "max_frames": frames, "sampler": "uniform",
                                   "max_pixels": 10 ** 8})

    def project(cold: bool):
        def run() -> int:
            if cold:
                decoding._probe_version.cache_clear()
            return len(sample_video(path, cfg).frames)
        return run

    out = {"project (cold)": timed(project(True), repeats), "project (probed)": None, "qwen-vl-utils (decord)": None}
    sample_video(path, cfg)  # the probe is cached from here on
    out["project (probed)"] = timed(project(False), repeats)
    if reader is not None:
        out["qwen-vl-utils (decord)"] = timed(lambda: int(reader({"video": str(path), "nframes": frames})[0].shape[0]),
                                              repeats)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16, help="frames per clip (even: qwen-vl-utils rounds to 2)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="176x144@25,640x360@30,1280x720@30", help="WIDTHxHEIGHT@FPS, comma list")
    parser.add_argument("--smoke", action="store_true", help="one tiny clip, one pass (tests)")
    args = parser.parse_args(argv)
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    reader, why = qwen_reader()
    rows = []
    with tempfile.TemporaryDirectory(prefix="decode-bench-") as tmp:
        for spec in args.sizes.split(","):
            size, fps = spec.split("@")
            width, height = (int(v) for v in size.split("x"))
            path = Path(tmp) / f"{width}x{height}.mp4"
            make_clip(path, width, height, int(fps), args.seconds)
            result = measure(path, args.frames, args.repeats, reader)
            qwen = result["qwen-vl-utils (decord)"]
            for name, value in result.items():
                if value is None:
                    rows.append((spec, name, "–", "–", "–", why or "–"))
                    continue
                seconds, n = value
                ratio = f"{qwen[0] / seconds:.2f}" if qwen is not None and name.startswith("project") else "–"
                rows.append((spec, name, str(n), f"{1000 * seconds:.1f}", f"{n / seconds:.0f}", ratio))
    header = ("clip", "decoder", "frames", "ms per clip", "frames/s", "qwen-vl-utils time ÷ this")
    print(f"{args.frames} frames per clip, {args.seconds:g}-s clips, median of {args.repeats}")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
