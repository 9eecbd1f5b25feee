"""`device:` resolution: a CUDA request torch cannot serve is refused with
torch's own reason, and `auto` on a machine with an NVIDIA GPU that torch
cannot use warns loudly instead of falling back to the CPU in silence.
torch.cuda and the GPU presence check are stand-ins here (no GPU in CI)."""

import ast
import warnings

import pytest
import torch

from conftest import REPO
from video2act_core import devices
from video2act_core.checkpoint import load_system1, load_system2
from video2act_core.devices import CudaUnusableWarning, nvidia_gpu, resolve_device

# What torch 2.x warns (once per process) when the driver is older than its CUDA build.
TOO_OLD = (
    "CUDA initialization: The NVIDIA driver on your system is too old (found version 12020). Please update "
    "your GPU driver by downloading and installing a new version from the URL: "
    "http://www.nvidia.com/Download/index.aspx Alternatively, go to: https://pytorch.org to install a PyTorch "
    "version that has been compiled with your version of the CUDA driver. (Triggered internally at "
    "/pytorch/c10/cuda/CUDAFunctions.cpp:119.)"
)


@pytest.fixture
def old_driver(monkeypatch):
    """A CUDA 13 torch on a machine whose NVIDIA driver (535) is too old for it."""

    def is_available():
        warnings.warn(TOO_OLD, UserWarning, stacklevel=2)
        return False

    monkeypatch.setattr(torch.cuda, "is_available", is_available)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(devices, "nvidia_gpu", lambda: "NVIDIA driver 535.104.05")


def test_cuda_request_on_an_old_driver_is_refused_with_torchs_reason(old_driver):
    with pytest.raises(RuntimeError) as refused:
        resolve_device("cuda")
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("device 'cuda' requested but CUDA is not available: ")
    assert "The NVIDIA driver on your system is too old (found version 12020)" in message
    assert "built for CUDA 13.0; NVIDIA Linux driver >= 580 needed" in message
    assert "NVIDIA driver 535.104.05" in message
    assert "Triggered internally" not in message


def test_cuda_index_request_is_refused_too(old_driver):
    with pytest.raises(RuntimeError, match=r"device 'cuda:1' requested but CUDA is not available: .*too old"):
        resolve_device("cuda:1")


def test_auto_on_an_unusable_gpu_runs_on_the_cpu_and_says_so_loudly(old_driver):
    said = []
    assert resolve_device("auto", warn=said.append) == torch.device("cpu")
    (message,) = said
    assert message.startswith(
        "CUDA UNUSABLE: device 'auto' falls back to the CPU although this machine has an "
        "NVIDIA GPU (NVIDIA driver 535.104.05)"
    )
    assert "too old" in message and "Set device: cpu" in message and "\n" not in message


def test_auto_without_a_logger_issues_a_python_warning(old_driver):
    with pytest.warns(CudaUnusableWarning, match="CUDA UNUSABLE"):
        assert resolve_device("auto") == torch.device("cpu")


def test_auto_without_an_nvidia_gpu_is_quiet(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "nvidia_gpu", lambda: None)
    said = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_device("auto", warn=said.append) == torch.device("cpu")
    assert said == []


def test_auto_takes_a_usable_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    said = []
    assert resolve_device("auto", warn=said.append) == torch.device("cuda")
    assert said == []


def test_cpu_only_torch_on_a_gpu_machine_says_it_is_a_cpu_build(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(devices, "nvidia_gpu", lambda: "NVIDIA driver 580.65.06")
    with pytest.raises(
        RuntimeError,
        match=r"CUDA is not available: torch \S+ is a CPU-only build; "
        r"this machine: NVIDIA driver 580.65.06",
    ):
        resolve_device("cuda")


def test_without_a_warning_the_init_error_is_the_reason(monkeypatch):
    """torch warns once per process: a second look takes its init error."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(devices, "nvidia_gpu", lambda: "/dev/nvidia0 present")

    def init():
        raise RuntimeError("No CUDA GPUs are available")

    monkeypatch.setattr(torch.cuda, "init", init)
    with pytest.raises(
        RuntimeError,
        match="CUDA is not available: No CUDA GPUs are available; torch .* built for "
        "CUDA 13.0; NVIDIA Linux driver >= 580 needed; this machine: /dev/nvidia0",
    ):
        resolve_device("cuda")


def test_cuda_index_beyond_the_visible_devices_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(RuntimeError, match=r"device 'cuda:1' requested but torch sees 1 CUDA device\(s\)"):
        resolve_device("cuda:1")


@pytest.mark.parametrize(
    "line, expected",
    [
        (
            "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023",
            "NVIDIA driver 535.104.05",
        ),
        (
            "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  Release Build  (dvs-builder@U16)",
            "NVIDIA driver 580.65.06",
        ),
        ("NVRM version: something else", "NVIDIA driver loaded"),
    ],
)
def test_nvidia_gpu_reads_the_kernel_drivers_version(tmp_path, monkeypatch, line, expected):
    version_file = tmp_path / "version"
    version_file.write_text(line + "\nGCC version:  gcc version 12.3.0\n")
    monkeypatch.setattr(devices, "NVIDIA_DRIVER_VERSION_FILE", version_file)
    assert nvidia_gpu() == expected


def test_nvidia_gpu_falls_back_to_the_device_node(tmp_path, monkeypatch):
    monkeypatch.setattr(devices, "NVIDIA_DRIVER_VERSION_FILE", tmp_path / "absent")
    monkeypatch.setattr(devices, "NVIDIA_DEVICE_FILE", tmp_path / "nvidia0")
    assert nvidia_gpu() is None
    (tmp_path / "nvidia0").touch()
    assert nvidia_gpu() == f"{tmp_path / 'nvidia0'} present"


def test_the_checkpoint_loaders_hand_the_warning_on(old_driver, tiny_checkpoint):
    said = []
    system1 = load_system1(tiny_checkpoint, "auto", warn=said.append)
    assert next(system1.action.parameters()).device == torch.device("cpu")
    load_system2(tiny_checkpoint, "auto", warn=said.append)
    assert len(said) == 2 and all(line.startswith("CUDA UNUSABLE") for line in said)


@pytest.mark.parametrize(
    "node, loader",
    [
        ("src/video2act_perception/video2act_perception/node.py", "load_system2"),
        ("src/video2act_policy/video2act_policy/node.py", "load_system1"),
    ],
)
def test_the_nodes_log_the_device_warning(node, loader):
    """The warning reaches the node's log (and /rosout), not only stderr."""
    calls = [
        n
        for n in ast.walk(ast.parse((REPO / node).read_text()))
        if isinstance(n, ast.Call) and getattr(n.func, "id", None) == loader
    ]
    assert calls, f"{node} does not call {loader}"
    for call in calls:
        warn = next((k.value for k in call.keywords if k.arg == "warn"), None)
        assert warn is not None and ast.unparse(warn) == "self.get_logger().warning", ast.unparse(call)


def test_auto_precision_is_what_the_checkpoint_was_trained_in_and_only_on_cuda():
    from video2act_core.devices import resolve_dtype

    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    if not torch.cuda.is_available():  # a GPU here might lack bf16, and fall back
        assert resolve_dtype("auto", cuda, "bfloat16") == torch.bfloat16
    assert resolve_dtype("auto", cuda, "float32") == torch.float32  # a float32 recipe's maps stay as cached
    assert resolve_dtype("auto", cuda) == torch.float32  # checkpoints from before the recipe
    assert resolve_dtype("auto", cpu, "bfloat16") == torch.float32
    with pytest.raises(ValueError, match="dtype must be one of"):
        resolve_dtype("half", cuda)
