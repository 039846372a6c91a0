"""Faults of the disk and of writers: what a full disk or a writer killed midway leaves behind.

- Full disk: OSError(ENOSPC) in the middle of a write (after part of the bytes landed) leaves neither
  a final file or directory nor a temporary; a previous complete output stays as it was.
- A save killed midway leaves only a temporary, which the next save removes.
(The flow's faults: tests/test_faults.py.)
"""
import builtins
import errno
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from videoreasoner.core import atomic

ROOT = Path(__file__).resolve().parents[1]

def leftovers(root: Path) -> list[Path]:
    """Temporaries of videoreasoner/core/atomic.py anywhere under root."""
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


# ---------------------------------------------------------------------------------------------- full disk

class FullDisk:
    """Files opened for writing under `root` accept `budget` bytes in all, then fail with ENOSPC, the
    bytes that still fit written first: a disk filling up in the middle of a write."""

    def __init__(self, root: Path, budget: int):
        self.root, self.room, self.real_open = root.resolve(), budget, builtins.open

    def open(self, file, mode="r", *args, **kwargs):
        fh = self.real_open(file, mode, *args, **kwargs)
        writing = any(c in mode for c in "wax+")
        if writing and isinstance(file, (str, os.PathLike)) and Path(file).resolve().is_relative_to(self.root):
            return _Quota(fh, self)
        return fh


class _Quota:
    def __init__(self, fh, disk: FullDisk):
        self._fh, self._disk = fh, disk

    def write(self, data):
        if len(data) > self._disk.room:
            self._fh.write(data[: self._disk.room])
            self._fh.flush()
            self._disk.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self._fh.name))
        self._disk.room -= len(data)
        return self._fh.write(data)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()


@pytest.fixture()
def full_disk(tmp_path, monkeypatch):
    def fill(budget: int) -> FullDisk:
        disk = FullDisk(tmp_path, budget)
        monkeypatch.setattr(builtins, "open", disk.open)
        monkeypatch.setattr(io, "open", disk.open)  # pathlib's write_text opens through io.open
        return disk
    return fill


def _write_csv(path: Path, rows: list[dict]) -> None:
    from stages.tts import (  # the csv.DictWriter-in-atomic_path pattern of rl/tts/eval
        CURVE_COLUMNS,
        write_curve,
    )

    write_curve(path, [dict.fromkeys(CURVE_COLUMNS, row["note"]) for row in rows])


ROWS = [{"id": f"r{i}", "question": "x" * 200, "step": i} for i in range(50)]
WRITERS = {
    "jsonl": lambda path: atomic.write_jsonl(path, iter(ROWS)),
    "json": lambda path: atomic.write_json(path, {"rows": ROWS}),
    "text": lambda path: atomic.write_text(path, "y" * 20_000),
    "csv": lambda path: _write_csv(path, [{"step": r["step"], "reward": 0.5, "note": r["question"]} for r in ROWS]),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize("previous", [None, "the previous complete output\n"])
def test_full_disk_mid_write_leaves_no_half_file(writer, previous, tmp_path, full_disk):
    path = tmp_path / "reports" / f"out.{writer}"
    if previous is not None:
        atomic.write_text(path, previous)
    full_disk(3000)
    with pytest.raises(OSError) as info:
        WRITERS[writer](path)
    assert info.value.errno == errno.ENOSPC
    assert leftovers(tmp_path) == []
    if previous is None:
        assert not path.exists()
    else:
        assert path.read_text() == previous


def test_full_disk_at_fsync_leaves_no_half_file(tmp_path, monkeypatch):
    """Filesystems with delayed allocation (XFS, NFS) report ENOSPC only when the data is flushed."""
    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="No space"):
        atomic.write_jsonl(tmp_path / "records.jsonl", ROWS)
    assert list(tmp_path.iterdir()) == []


class _StubModel:
    """Writes a first shard whole and a second one in small pieces, as save_pretrained writes shards."""

    def save_pretrained(self, out, safe_serialization=True):
        with open(Path(out) / "model-00001.safetensors", "wb") as fh:
            fh.write(b"\0" * 2000)
        with open(Path(out) / "model-00002.safetensors", "wb") as fh:
            fh.writelines(b"\1" for _ in range(4000))


class _StubProcessor:
    def save_pretrained(self, out):
        atomic.write_json(Path(out) / "processor_config.json", {"ok": True})


@pytest.mark.parametrize("existing", [False, True])
def test_full_disk_during_model_save_leaves_no_directory(existing, tmp_path, full_disk):
    from videoreasoner.training.model_io import save_model_and_processor

    out = tmp_path / "models/sft"
    if existing:  # `vr sft` without DVC keeps the previous weights until the new ones are complete
        save_model_and_processor(_StubModel(), _StubProcessor(), out)
        before = sorted(p.name for p in out.iterdir())
    full_disk(3000)
    with pytest.raises(OSError) as info:
        save_model_and_processor(_StubModel(), _StubProcessor(), out)
    assert info.value.errno == errno.ENOSPC
    assert leftovers(tmp_path) == []
    assert sorted(p.name for p in out.iterdir()) == before if existing else not out.exists()


def test_save_killed_midway_leaves_a_temporary_the_next_save_removes(tmp_path):
    """kill -9 during a model save leaves its temporary directory (a checkpoint's size) beside the DVC
    output; the next save of that output removes it. A live writer's temporary is left alone."""
    out = tmp_path / "models/rl"
    script = textwrap.dedent(f"""
        import sys, time
        from videoreasoner.core.atomic import atomic_dir
        with atomic_dir({str(out)!r}) as tmp:
            (tmp / "model.safetensors").write_bytes(b"half")
            print("writing", flush=True)
            time.sleep(120)
    """)
    writer = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert writer.stdout.readline().strip() == "writing"
        assert len(leftovers(tmp_path)) == 1
        assert atomic.remove_stale_temporaries(out) == []  # its writer is alive
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.wait(timeout=30)
    assert not out.exists() and len(leftovers(tmp_path)) == 1
    with atomic.atomic_dir(out) as tmp:
        (tmp / "model.safetensors").write_bytes(b"whole")
    assert leftovers(tmp_path) == [] and (out / "model.safetensors").read_bytes() == b"whole"


def test_outputs_get_the_mode_of_a_plain_file(tmp_path):
    """Not mkstemp's 0600: the other users of a shared workspace (and DVC's cache) must read them."""
    umask = atomic._UMASK
    atomic.write_json(tmp_path / "a.json", {})
    with atomic.atomic_dir(tmp_path / "d") as tmp:
        (tmp / "f").write_text("x")
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o777 & ~umask
