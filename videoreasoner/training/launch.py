"""Start a training stage under the launcher params `compute` names: `python -m videoreasoner.training.launch sft`.

  launcher: python       ->  python -m stages.<stage>
  launcher: accelerate   ->  accelerate launch --config_file <accelerate_config> --num_processes N -m stages.<stage>
  launcher: deepspeed    ->  deepspeed --num_gpus N --module stages.<stage>

The DeepSpeed configuration (`compute.deepspeed_config`, a file in infra/deepspeed/ whose "auto" fields
TRL fills from the stage's config) reaches the trainer the same way under every launcher: as TRL's
`deepspeed=` argument (`ComputeConfig.trainer_overrides`). A single `python` process with a DeepSpeed
config (or one accelerate process) gets the rank-0-of-1 rendezvous variables that DeepSpeed needs to
start its process group (else it looks for MPI).
CPU default: python, one process, float32, no DeepSpeed.
"""
from __future__ import annotations

import argparse
import atexit
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from videoreasoner.core.params import read_section

log = logging.getLogger(__name__)
LAUNCHERS = ("python", "accelerate", "deepspeed")
TRAINING_STAGES = ("pretrain", "bootstrap", "sft", "rl")


def check_torch_threads(value: Any, key: str) -> int | None:
    """`value` of params `key` (a CPU thread count): null or an integer >= 1, else ValueError."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"params {key} must be null or an integer >= 1, got {value!r}")
    return value


@dataclass(frozen=True)
class ComputeConfig:
    """params `compute`. num_processes: processes (one per GPU); main_process_port: the rendezvous TCP
    port; dtype: weights dtype of the loaded model (float32 on CPU); torch_threads: CPU threads per
    process (OMP_NUM_THREADS of the launched stage; null leaves torch's default, one per core). On a
    shared or busy CPU, one thread avoids OpenMP threads waiting on each other (measured: 12 s vs 0.8 s
    per alignment step on 2 loaded cores)."""

    PARAMS_SECTION: ClassVar[str] = "compute"

    launcher: str = "python"
    num_processes: int = 1
    deepspeed_config: str | None = None
    accelerate_config: str | None = None
    main_process_port: int = 29500
    dtype: str = "float32"
    torch_threads: int | None = 1

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> "ComputeConfig":
        cfg = read_section(params, cls)
        if cfg.launcher not in LAUNCHERS:
            raise ValueError(f"params compute.launcher: unknown {cfg.launcher!r} (known: {LAUNCHERS})")
        if cfg.num_processes < 1:
            raise ValueError("params compute.num_processes must be >= 1")
        check_torch_threads(cfg.torch_threads, "compute.torch_threads")
        if cfg.launcher == "python" and cfg.num_processes != 1:
            raise ValueError("params compute: launcher 'python' runs one process; use accelerate or deepspeed")
        for name in ("deepspeed_config", "accelerate_config"):
            path = getattr(cfg, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"params compute.{name}: {path} does not exist")
        return cfg

    def trainer_overrides(self) -> dict[str, Any]:
        """TRL/transformers config fields this compute setting implies (the DeepSpeed config path)."""
        return {"deepspeed": self.deepspeed_config} if self.deepspeed_config else {}


def build_command(stage: str, compute: ComputeConfig, python: str = sys.executable) -> list[str]:
    """The command line that runs `stages.<stage>` under the configured launcher."""
    if stage not in TRAINING_STAGES:
        raise ValueError(f"unknown training stage {stage!r} (known: {TRAINING_STAGES})")
    module = f"stages.{stage}"
    if compute.launcher == "python":
        return [python, "-m", module]
    if compute.launcher == "accelerate":
        cmd = [python, "-m", "accelerate.commands.launch"]
        if compute.accelerate_config:
            cmd += ["--config_file", compute.accelerate_config]
        return cmd + ["--num_processes", str(compute.num_processes),
                      "--main_process_port", str(compute.main_process_port), "-m", module]
    runner = Path(python).parent / "deepspeed"  # the venv's launcher, beside its python
    return [str(runner) if runner.is_file() else "deepspeed", "--num_gpus", str(compute.num_processes),
            "--master_port", str(compute.main_process_port), "--module", module]


def launch_env(compute: ComputeConfig, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of the launched stage: DS_BUILD_OPS=0 (JIT ops only), OMP_NUM_THREADS from
    compute.torch_threads, and for a single process with a
    DeepSpeed config outside the deepspeed launcher the rank-0-of-1 rendezvous variables (unless set)."""
    env = dict(os.environ if base is None else base)
    env.setdefault("DS_BUILD_OPS", "0")
    if compute.torch_threads:
        env["OMP_NUM_THREADS"] = str(compute.torch_threads)
    if compute.deepspeed_config and compute.num_processes == 1 and compute.launcher != "deepspeed":
        for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1",
                           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(compute.main_process_port)}.items():
            env.setdefault(key, value)
    return env


def launch_rank(env: dict[str, str] | None = None) -> int:
    """Global rank (0-based) the launcher gave this process: RANK, which torchrun, accelerate and deepspeed
    set before the stage starts (0 when unset: one process). Read from the environment because a stage
    opens its MLflow run and output paths before the trainer starts the process group."""
    return int((os.environ if env is None else env).get("RANK", "0"))


def join_process_group(trl_params: dict[str, Any], config_class: type) -> bool:
    """Bound every collective of a multi-process run by the params' `ddp_timeout` (seconds; a field of
    the TRL config `config_class` that `trl_params` (the stage's params section) configures;
    transformers' default 1800). Call it before building the config: building it starts the group.

    A rank waiting in a collective for a peer that is alive but stuck (or on another node whose death
    its own launcher does not see) fails after this timeout instead of hanging. transformers 5.23
    passes ddp_timeout to the process group it starts, except with `use_cpu: true`, where it starts
    gloo with torch's default (30 min) instead; in that case this starts the group first, from the
    launcher's rendezvous variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), and transformers then
    uses it. Returns True when it started the group; a no-op with one process or a group already up."""
    from datetime import timedelta

    import torch.distributed as dist

    fields = config_class.__dataclass_fields__
    use_cpu = trl_params.get("use_cpu", fields["use_cpu"].default)
    timeout_s = trl_params.get("ddp_timeout", fields["ddp_timeout"].default)
    if not use_cpu or int(os.environ.get("WORLD_SIZE", "1")) < 2 or dist.is_initialized():
        return False
    dist.init_process_group("gloo", timeout=timedelta(seconds=timeout_s))
    log.info("rank %d of %d: gloo process group, collectives time out after %s s", dist.get_rank(),
             dist.get_world_size(), timeout_s)
    atexit.register(leave_process_group)
    return True


def leave_process_group() -> None:
    """Destroy the process group before the interpreter exits. Left to interpreter teardown, gloo's
    threads can abort a rank that finished its work ("terminate called without an active exception",
    exit 250), and a completed stage then reads as failed."""
    import torch.distributed as dist

    if dist.is_initialized():
        rank = dist.get_rank()
        dist.destroy_process_group()
        log.info("rank %d: process group closed", rank)


def main(argv: list[str] | None = None) -> int:
    from videoreasoner.core.params import section

    parser = argparse.ArgumentParser(prog="python -m videoreasoner.training.launch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=TRAINING_STAGES)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    compute = ComputeConfig.from_params(section("compute"))
    cmd = build_command(args.stage, compute)
    log.info("launch: %s", " ".join(cmd))
    return subprocess.call(cmd, env=launch_env(compute))


if __name__ == "__main__":
    sys.exit(main())
