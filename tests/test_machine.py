"""The machine recorded beside training and evaluation numbers: the CPU model is read from
/proc/cpuinfo where there is one, and something is always named."""
from videoreasoner.core.machine import cpu_model, machine


def test_cpu_model_is_the_first_model_name_of_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R14 96-Core Processor\n\n"
                    "processor\t: 1\nmodel name\t: AMD EPYC 9R14 96-Core Processor\n")
    assert cpu_model(info) == "AMD EPYC 9R14 96-Core Processor"


def test_cpu_model_without_cpuinfo_still_names_something(tmp_path):
    assert cpu_model(tmp_path / "missing")  # platform.processor() or the machine type
    empty = tmp_path / "empty"
    empty.write_text("processor\t: 0\nmodel name\t:\n")
    assert cpu_model(empty) == cpu_model(tmp_path / "missing")


def test_machine_names_the_kernels_torch_dispatches_to():
    import torch

    info = machine()
    assert info["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert info["torch_threads"] == torch.get_num_threads() and info["torch"] == torch.__version__
    assert set(info) == {"cpu", "torch_cpu_capability", "blas", "torch_threads", "gpu", "torch"}
