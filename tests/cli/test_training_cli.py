"""`voiceconv train` / `voiceconv convert` as users run them: torchrun on 2 CPU processes, and real speech."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import soundfile as sf

from conftest import harmonic_tone
from voiceconv.audio.io import save_audio
from voiceconv.modelfiles.format import read_header
from voiceconv.train.checkpoint import load_checkpoint

TINY_RECIPE = """
features: {n_mels: 32}
model: {generator_channels: 8, residual_channels: 16, residual_blocks: 1, discriminator_channels: 8,
        discriminator_layers: 2}
data: {crop_frames: 16, min_seconds: 2.0, media_utterances: 1}
train: {steps: 2, batch_size: 2, log_every: 1, media_every: 2, checkpoint_every: 1, keep_checkpoints: 3, threads: 1}
"""


def run(args: list, timeout: int = 300) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture
def two_speakers(tmp_path):
    for name, f0 in (("high", 240.0), ("low", 100.0)):
        for i in range(3):
            save_audio(tmp_path / name / f"{i}.wav", harmonic_tone(1.5, f0=f0 + 7 * i, seed=i), 16000)
    (tmp_path / "tiny.yaml").write_text(TINY_RECIPE)
    return tmp_path


def test_torchrun_two_cpu_processes_train_checkpoint_and_convert(two_speakers):
    tmp = two_speakers
    torchrun = shutil.which("torchrun", path=str(__import__("pathlib").Path(sys.executable).parent))
    assert torchrun, "torchrun ships with torch"
    run([torchrun, "--standalone", "--nproc-per-node", "2", "-m", "voiceconv", "train", tmp / "tiny.yaml",
         "--speaker-a", tmp / "high", "--speaker-b", tmp / "low", "--out", tmp / "run", "--steps", "1"])
    assert [p.name for p in (tmp / "run" / "checkpoints").iterdir()] == ["step_00000001.pt"]  # rank 0 alone writes
    assert read_header(tmp / "run" / "model.safetensors")["training"]["hardware"].startswith("2 process")
    state = load_checkpoint(tmp / "run" / "checkpoints" / "step_00000001.pt")
    assert any(key.startswith("G_AB.") for key in state["model"])
    assert not [key for key in state["model"] if ".module." in key]  # DDP's wrapper leaves no trace in the names
    run([sys.executable, "-m", "voiceconv", "train", tmp / "tiny.yaml", "--speaker-a", tmp / "high",  # one process
         "--speaker-b", tmp / "low", "--out", tmp / "run", "--steps", "2", "--resume"])
    assert read_header(tmp / "run" / "model.safetensors")["training"]["steps"] == 2
    run([sys.executable, "-m", "voiceconv", "convert", "--model", tmp / "run" / "model.safetensors",
         tmp / "high" / "0.wav", "-o", tmp / "converted"])
    assert sf.info(tmp / "converted" / "0.wav").duration == pytest.approx(1.5, abs=0.05)


@pytest.mark.parametrize("setting, message", [
    ("train.log_every=0", "train.log_every=0 must be at least 1"),
    ("train.checkpoint_every=-1", "train.checkpoint_every=-1 must be at least 1"),
    ("model.discriminator=nonsense", "unknown discriminator 'nonsense'"),
    ("model.discriminator_layers=6", "model.discriminator_layers=6 needs images at least 192 high"),
    ("model.discriminator_layers=3", "data.crop_frames=16 is too narrow"),
])
def test_impossible_settings_are_one_line_errors(two_speakers, setting, message):
    tmp = two_speakers
    result = subprocess.run([sys.executable, "-m", "voiceconv", "train", tmp / "tiny.yaml", "--speaker-a", tmp / "high",
                             "--speaker-b", tmp / "low", "--out", tmp / "run", "--set", setting],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("voiceconv train: error: ") and message in last


def test_impossible_vae_sizes_are_config_errors():
    from voiceconv.errors import ConfigError
    from voiceconv.models.vae import VAEConfig

    for settings in ({"latent": 0}, {"channels": ()}, {"channels": (8, 0)}, {"lr": 0.0}):
        with pytest.raises(ConfigError, match="model\\."):
            VAEConfig(**settings)


def test_unknown_recipe_key_is_rejected_with_the_valid_ones(two_speakers):
    tmp = two_speakers
    result = subprocess.run([sys.executable, "-m", "voiceconv", "train", tmp / "tiny.yaml", "--speaker-a", tmp / "high",
                             "--speaker-b", tmp / "low", "--out", tmp / "run", "--set", "model.generator_chanels=4"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "valid keys" in result.stderr and "model.generator_channels" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.shared_data
def test_train_and_convert_on_real_speech(shared_data, tmp_path):
    """A few seconds of two real speakers through `voiceconv train`, then `voiceconv convert` on a held-out file."""
    for speaker in ("SF1", "TM1"):
        (tmp_path / speaker).mkdir()
        for name in ("100001.flac", "100002.flac", "100003.flac"):
            shutil.copy(shared_data / "vcc2016" / "train" / speaker / name, tmp_path / speaker / name)
    (tmp_path / "tiny.yaml").write_text(TINY_RECIPE.replace("min_seconds: 2.0", "min_seconds: 5.0"))
    run([sys.executable, "-m", "voiceconv", "train", tmp_path / "tiny.yaml", "--speaker-a", tmp_path / "SF1",
         "--speaker-b", tmp_path / "TM1", "--out", tmp_path / "run", "--set", "train.export_every=1"])
    header = read_header(tmp_path / "run" / "model.safetensors")
    assert header["speakers"]["a"]["name"] == "SF1" and header["training"]["steps"] == 2
    snapshots = sorted((tmp_path / "run" / "exports").iterdir())
    assert [read_header(p)["training"]["steps"] for p in snapshots] == [1, 2]
    source = shared_data / "vcc2016" / "dev" / "SF1" / "200001.flac"
    run([sys.executable, "-m", "voiceconv", "convert", "--model", tmp_path / "run" / "model.safetensors", source,
         "-o", tmp_path / "out"])
    assert abs(sf.info(tmp_path / "out" / "200001.wav").duration - sf.info(source).duration) < 0.05


def test_sigterm_saves_a_checkpoint_and_resume_finishes(two_speakers):
    import signal
    import time

    tmp = two_speakers
    args = [sys.executable, "-m", "voiceconv", "train", tmp / "tiny.yaml", "--speaker-a", tmp / "high",
            "--speaker-b", tmp / "low", "--out", tmp / "run", "--set", "train.checkpoint_every=1000"]
    process = subprocess.Popen([str(a) for a in [*args, "--steps", "100000"]], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list((tmp / "run" / "logs").glob("events*")) and time.monotonic() < deadline:
        time.sleep(0.5)  # the loop has started once TensorBoard's file exists
    time.sleep(2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    assert "continue with --resume" in stderr
    [checkpoint] = (tmp / "run" / "checkpoints").iterdir()
    stopped_at = int(checkpoint.stem.split("_")[1])
    assert stopped_at >= 1 and not (tmp / "run" / "model.safetensors").exists()
    run([*args, "--steps", str(stopped_at + 1), "--resume"])
    assert read_header(tmp / "run" / "model.safetensors")["training"]["steps"] == stopped_at + 1
