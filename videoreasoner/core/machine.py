"""The machine a training or evaluation run computed on, written beside its numbers.

The same seeds and params give the same weights bit for bit on the same kind of machine. On another CPU
the math library takes other kernels (MKL picks its code path by vendor and instruction set), float
rounding differs from the first step, and the trained model and its scores move (on the default run by
about 0.01 AM: README, "What the default run shows"). Without the machine recorded, such a change looks
like a change in the code or the data; with it, `dvc metrics diff` and the MLflow run show the cause.
"""
from __future__ import annotations

import platform
from pathlib import Path
from typing import Any


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name ("AMD EPYC 9R14 96-Core Processor"); platform.processor() where there is no
    /proc/cpuinfo (macOS, Windows), or the machine type when that is empty too."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine() -> dict[str, Any]:
    """CPU model, the instruction set torch dispatches its CPU kernels to, the BLAS it links, the torch
    threads of this process, and the GPU (None without CUDA)."""
    import torch

    return {
        "cpu": cpu_model(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "blas": "mkl" if torch.backends.mkl.is_available() else "other",
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
    }
