"""voiceconv.runtime: torchrun's environment checked with one-line messages, and ``--device`` resolution.

No test calls a real CUDA function: the GPU cases pretend there are two GPUs by replacing
``torch.cuda.is_available`` and ``torch.cuda.device_count``.
"""

from __future__ import annotations

import pytest
import torch

from voiceconv import runtime
from voiceconv.errors import VoiceconvError
from voiceconv.runtime import LaunchEnvironment, LaunchError, launch_environment, resolve_device, worker_threads
from voiceconv.train import distributed

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")


@pytest.fixture(autouse=True)
def outside_torchrun(monkeypatch):
    """Every test starts as a plain process, whatever launched pytest."""
    for name in TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def two_gpus(monkeypatch):
    """Pretend this process sees two CUDA GPUs (nothing here touches a real one)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


def set_environment(monkeypatch, **variables: str) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


def test_outside_torchrun_a_process_is_rank_0_of_1():
    assert launch_environment() == LaunchEnvironment(rank=0, world_size=1, local_rank=0, local_world_size=1)
    assert runtime.torchrun_rank() == (0, 1)


def test_torchrun_variables_are_read(monkeypatch):
    set_environment(monkeypatch, RANK="3", WORLD_SIZE="4", LOCAL_RANK="1", LOCAL_WORLD_SIZE="2")
    assert launch_environment() == LaunchEnvironment(rank=3, world_size=4, local_rank=1, local_world_size=2)
    assert runtime.torchrun_rank() == (3, 4)


@pytest.mark.parametrize("variables, message", [
    ({"RANK": "x"}, "RANK='x' must be an integer"),
    ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two' must be an integer"),
    ({"LOCAL_RANK": "1.5"}, "LOCAL_RANK='1.5' must be an integer"),
    ({"RANK": ""}, "RANK='' must be an integer"),
    ({"RANK": "2", "WORLD_SIZE": "2"}, "RANK=2 must be in [0, WORLD_SIZE=2)"),
    ({"RANK": "-1", "WORLD_SIZE": "2"}, "RANK=-1 must be in [0, WORLD_SIZE=2)"),
    ({"RANK": "1"}, "RANK=1 must be in [0, WORLD_SIZE=1)"),
    ({"WORLD_SIZE": "0"}, "WORLD_SIZE=0 must be at least 1"),
    ({"LOCAL_WORLD_SIZE": "0"}, "LOCAL_WORLD_SIZE=0 must be at least 1"),
    ({"LOCAL_RANK": "-1"}, "LOCAL_RANK=-1 must be at least 0"),
    ({"LOCAL_RANK": "2", "LOCAL_WORLD_SIZE": "2"}, "LOCAL_RANK=2 must be in [0, LOCAL_WORLD_SIZE=2)"),
])
def test_a_bad_torchrun_variable_is_a_one_line_launch_error(monkeypatch, variables, message):
    set_environment(monkeypatch, **variables)
    with pytest.raises(LaunchError) as caught:
        launch_environment()
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, VoiceconvError)  # the CLI reports it in one line, without a traceback


def test_cpu_is_always_available(two_gpus):
    assert resolve_device("cpu") == torch.device("cpu")


def test_auto_is_the_cpu_without_a_gpu(no_gpu):
    assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_a_gpu_is_a_launch_error(no_gpu, device):
    with pytest.raises(LaunchError, match=rf"device '{device}': no CUDA GPU is visible to this process"):
        resolve_device(device)


@pytest.mark.parametrize("device", ["cuda", "cuda:3"])
def test_cuda_on_this_machine_is_a_gpu_or_a_launch_error(device):
    """With the real torch.cuda: a CPU-only machine refuses cuda in one line (a GPU machine resolves it)."""
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible; the pretend-GPU tests cover resolution")
    with pytest.raises(LaunchError, match="no CUDA GPU is visible"):
        resolve_device(device)


def test_cuda_n_is_honoured(two_gpus, monkeypatch):
    set_environment(monkeypatch, LOCAL_RANK="0", LOCAL_WORLD_SIZE="2")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)


def test_cuda_index_beyond_the_gpus_is_a_launch_error(two_gpus):
    with pytest.raises(LaunchError, match=r"device 'cuda:2': this process sees 2 GPU\(s\), cuda:0 to cuda:1"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("device", ["auto", "cuda"])
@pytest.mark.parametrize("local_rank, gpu", [("0", 0), ("1", 1), ("2", 0), ("3", 1)])
def test_auto_and_cuda_are_this_local_rank_s_gpu(two_gpus, monkeypatch, device, local_rank, gpu):
    set_environment(monkeypatch, LOCAL_RANK=local_rank, LOCAL_WORLD_SIZE="4")
    assert resolve_device(device) == torch.device("cuda", gpu)


@pytest.mark.parametrize("device", ["gpu", "CUDA", "cuda:", "cuda:x", "cuda:-1", "mps", "", "cpu:0", "auto:1"])
def test_an_unknown_device_is_a_launch_error(two_gpus, device):
    with pytest.raises(LaunchError, match=rf"device '{device}' is not one of auto, cpu, cuda or cuda:N"):
        resolve_device(device)


def test_worker_threads_share_the_cores_between_local_processes(monkeypatch):
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert worker_threads(1) == 8
    assert worker_threads(2) == 4
    set_environment(monkeypatch, LOCAL_WORLD_SIZE="4")
    assert worker_threads(1) == 2
    assert worker_threads(16) == 1  # never below one thread


def test_training_outside_torchrun_is_rank_0_of_1_on_the_cpu(no_gpu):
    topology = distributed.init_topology("auto")
    assert (topology.rank, topology.world_size, topology.device) == (0, 1, torch.device("cpu"))
    assert topology.is_main and not topology.distributed


def test_training_honours_cuda_n(two_gpus, monkeypatch):
    """init_topology used to ignore N and take cuda:LOCAL_RANK; it now selects the GPU asked for."""
    selected = []
    monkeypatch.setattr(torch.cuda, "set_device", selected.append)
    set_environment(monkeypatch, LOCAL_RANK="0")
    topology = distributed.init_topology("cuda:1")
    assert topology.device == torch.device("cuda", 1)
    assert selected == [torch.device("cuda", 1)]


def test_training_reports_a_bad_rank_as_a_launch_error(monkeypatch):
    set_environment(monkeypatch, RANK="x", WORLD_SIZE="2")
    with pytest.raises(LaunchError, match="RANK='x' must be an integer"):
        distributed.init_topology("cpu")


def test_torch_threads_of_two_streams_pushed_at_once_stay_their_own():
    """Two live streams on a server push at once from two worker threads, the first finishing first: each runs on
    one thread while inside, the second keeps its one thread after the first gives its count back, and the main
    thread's count never moves."""
    import threading

    from voiceconv.runtime import torch_threads

    before = torch.get_num_threads()
    first_inside, second_inside, first_done = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first_stream():
        with torch_threads(1):
            seen["first"] = torch.get_num_threads()
            first_inside.set()
            second_inside.wait()
        seen["first after"] = torch.get_num_threads()
        first_done.set()

    def second_stream():
        first_inside.wait()
        with torch_threads(1):
            second_inside.set()
            first_done.wait()
            seen["second, the first done"] = torch.get_num_threads()

    streams = [threading.Thread(target=first_stream), threading.Thread(target=second_stream)]
    for stream in streams:
        stream.start()
    for stream in streams:
        stream.join()
    assert seen["first"] == seen["second, the first done"] == 1
    assert seen["first after"] == before and torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before
