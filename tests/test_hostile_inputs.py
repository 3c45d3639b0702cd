"""Hostile inputs (issue 12): every attack on the product kept as a test, each building its hostile file in tmp_path.

Model files with each broken field, non-finite weights, pickle payloads and malformed containers; a sparse
three-hour WAV; ``kill -9`` of a ``--jobs 2`` batch; failures.csv over user files and formula cell names; two runs
into one folder; symbolic link loops and FIFOs in input folders; and, against one real ``python app.py`` with a
password on loopback, damaged files in the models folder, bad zips, bad API arguments, server paths as file
arguments and requests without credentials. Each refusal is one line that names the file and the field, never
a traceback, and leaves the inputs as they were.
"""

from __future__ import annotations

import csv
import json
import math
import os
import pickle
import re
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from conftest import SAMPLES, harmonic_tone
from helpers import SHORT_CLIP, make_zip, refusal, running_app
from helpers import ENV, audio_outputs, failures_csv, partial_files, write_tone
from voiceconv.audio.features import FeatureConfig, MelImageEncoder
from voiceconv.audio.pipeline import audio_to_spectrogram_png, spectrogram_image
from voiceconv.batch import is_failure_list, plan_batch, run_batch, spreadsheet_safe, write_failures
from voiceconv.cli import main
from voiceconv.convert import Converter
from voiceconv.errors import AudioError
from voiceconv.files import atomic_output, remove_abandoned
from voiceconv.faces.tools import load_face_model
from voiceconv.errors import ModelFileError
from voiceconv.modelfiles.checks import check_output
from voiceconv.modelfiles.format import read_header
from voiceconv.web.archive import UnsafeArchiveError, check_zip, extract_zip
from voiceconv.web.limits import Limits

VOICE_MODEL = SAMPLES / "models" / "kathleen_rms.safetensors"
GAN_MODEL = SAMPLES / "models" / "faces_gan.safetensors"
VAE_MODEL = SAMPLES / "models" / "faces_vae.safetensors"
USER, PASSWORD = "tester", "s3cret:with:colons"


# --- hostile model files ------------------------------------------------------------------------------------------


def raw_model(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, header) of a model file, read without voiceconv's checks."""
    with safe_open(str(path), "pt") as f:
        return {name: f.get_tensor(name) for name in f.keys()}, json.loads(f.metadata()["voiceconv"])


def write_model(path: Path, tensors: dict[str, torch.Tensor], header: dict | str) -> Path:
    """A safetensors file with ``header`` (a dict, or JSON text as it stands) under the voiceconv key."""
    text = header if isinstance(header, str) else json.dumps(header)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata={"voiceconv": text})
    return path


def nested(depth: int) -> str:
    """A header with one field nested ``depth`` lists deep (JSON text: Python could not even dump it)."""
    return ('{"format": "voiceconv-model", "version": 1, "kind": "voice-cyclegan", "extra": '
            + "[" * depth + "]" * depth + "}")


def edited(update):
    """A header edit: ``update(header)`` changes it in place."""
    return lambda tensors, header: update(header)


def tensor_edit(update):
    return lambda tensors, header: update(tensors)


def set_field(dotted: str, value):
    def update(header):
        *parents, last = dotted.split(".")
        node = header
        for key in parents:
            node = node[key]
        node[last] = value
    return edited(update)


def drop_field(dotted: str):
    def update(header):
        *parents, last = dotted.split(".")
        node = header
        for key in parents:
            node = node[key]
        del node[last]
    return edited(update)


def nan_in(name: str | None, value: float = math.nan):
    """Put ``value`` into tensor ``name`` (None: the first floating point tensor)."""
    def update(tensors):
        key = name or next(n for n in sorted(tensors) if tensors[n].is_floating_point())
        tensors[key] = tensors[key].clone()
        tensors[key].view(-1)[0] = value
    return tensor_edit(update)


VOICE_ATTACKS = {  # id: (edit, what the one-line message must say)
    "deeply nested header": (nested(100_000), r"damaged voiceconv header \(nested too deeply\)"),
    "nested beyond the limit": (nested(40), r"nested more than 32 levels deep"),
    "version is text": (set_field("version", "abc"), r"header field 'version' must be a whole number"),
    "version from the future": (set_field("version", 99), r"made by a newer voiceconv \(format 99\)"),
    "no version": (drop_field("version"), r"header field 'version'"),
    "no kind": (drop_field("kind"), r"header field 'kind' is missing"),
    "another kind": (set_field("kind", "face-vae"), r"a 'face-vae' model, not a voice conversion model"),
    "no features": (drop_field("features"), r"header field 'features' is missing"),
    "no model": (drop_field("model"), r"header field 'model' is missing"),
    "no speakers": (drop_field("speakers"), r"header field 'speakers' is missing"),
    "features not a mapping": (set_field("features", [1, 2]), r"header field 'features' must be a mapping"),
    "n_fft 2**28 (70 GB)": (set_field("features.n_fft", 2**28),
                            r"header field 'features.n_fft' is 268435456; it must be in \[16, 16384\]"),
    "n_fft is text": (set_field("features.n_fft", "1024"), r"header field 'features' is invalid: .*n_fft"),
    "hop of one sample": (set_field("features.hop_length", 1), r"STFT cells per second"),
    "sample rate 10**400": (set_field("features.sample_rate", 10**400), r"features"),
    "fmin NaN": (set_field("features.fmin", math.nan), r"header field 'features"),
    "min_db -inf": (set_field("features.min_db", -math.inf), r"header field 'features.min_db'"),
    "n_mels 100000": (set_field("features.n_mels", 100_000), r"features"),
    "generator_channels 200000 (16 TB)": (set_field("model.generator_channels", 200_000),
                                          r"header field 'model.generator_channels' is 200000"),
    "residual_channels 10**9": (set_field("model.residual_channels", 10**9), r"'model.residual_channels'"),
    "residual_blocks -1": (set_field("model.residual_blocks", -1), r"'model.residual_blocks' is -1"),
    "unknown generator": (set_field("model.generator", "os.system"), r"'model.generator' is 'os.system'"),
    "unknown model key": (set_field("model.payload", 1), r"unknown key\(s\) model.payload"),
    "speaker name is a path": (set_field("speakers.a.name", "../../evil"), r"'speakers.a.name' is '../../evil'"),
    "speaker missing": (drop_field("speakers.b"), r"header field 'speakers.b' is missing"),
    "steps is text": (set_field("training.steps", "abc"), r"header field 'training.steps' must be a whole number"),
    "damaged alignment": (set_field("alignment", {"warp": "x"}), r"damaged 'alignment' field"),
    "tensor of the wrong shape": (tensor_edit(lambda t: t.update({"G_AB.output.weight": torch.zeros(1)})),
                                  r"tensor 'G_AB.output.weight' has shape \[1\]; the header's architecture needs"),
    "missing stats tensor": (tensor_edit(lambda t: t.pop("stats.a.mean")), r"tensor 'stats.a.mean' is missing"),
    "missing generator tensor": (tensor_edit(lambda t: t.pop("G_BA.output.bias")), r"tensor 'G_BA.output.bias'"),
    "extra tensor": (tensor_edit(lambda t: t.update({"payload": torch.zeros(3)})),
                     r"tensor 'payload' is not part of the header's architecture"),
    "stats of the wrong size": (tensor_edit(lambda t: t.update({"stats.b.std": torch.ones(64)})),
                                r"tensor 'stats.b.std' has shape \[64\]"),
    "integer weights": (tensor_edit(lambda t: t.update({"G_AB.output.bias": t["G_AB.output.bias"].long()})),
                        r"tensor 'G_AB.output.bias' has type I64"),
    "aligned stats without their partner": (tensor_edit(lambda t: t.pop("stats.a2b.std")),
                                            r"'stats.a2b.mean' comes without its partner"),
    "NaN weight": (nan_in("G_AB.output.weight"), r"tensor 'G_AB.output.weight' holds NaN or infinite values"),
    "infinite statistic": (nan_in("stats.b.mean", math.inf), r"tensor 'stats.b.mean' holds NaN or infinite"),
    "zero standard deviation": (tensor_edit(lambda t: t.update({"stats.a.std": torch.zeros_like(t["stats.a.std"])})),
                                r"'stats.a.std' holds standard deviations below"),
}


@pytest.fixture(scope="module")
def voice_model() -> tuple[dict[str, torch.Tensor], dict]:
    return raw_model(VOICE_MODEL)


def hostile_voice_model(folder: Path, voice_model, edit, name: str = "model.safetensors") -> Path:
    tensors, header = voice_model
    tensors, header = dict(tensors), json.loads(json.dumps(header))
    if isinstance(edit, str):
        return write_model(folder / name, tensors, edit)
    edit(tensors, header)
    return write_model(folder / name, tensors, header)


def one_line(message: str, path: Path) -> str:
    assert "\n" not in message and "Traceback" not in message, message
    assert message.startswith(str(path)), message
    return message


@pytest.mark.parametrize("attack", VOICE_ATTACKS)
def test_every_broken_model_field_is_one_line_naming_the_file_and_field(tmp_path, voice_model, attack, capsys):
    """The loader (as convert, evaluate and the page use it), then ``voiceconv convert``: exit 1, the same line."""
    edit, expected = VOICE_ATTACKS[attack]
    path = hostile_voice_model(tmp_path, voice_model, edit)
    source = write_tone(tmp_path / "in" / "a.wav", 0.3)
    before = path.read_bytes(), source.read_bytes()
    started = time.monotonic()
    with pytest.raises(ModelFileError) as err:
        Converter(path)
    assert re.search(expected, one_line(str(err.value), path)), str(err.value)
    assert time.monotonic() - started < 10  # refused before anything big is built
    assert main(["convert", "--model", str(path), str(source), "-o", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == f"voiceconv convert: error: {err.value}\n"
    assert (path.read_bytes(), source.read_bytes()) == before and not (tmp_path / "out").exists()


def test_optional_fields_and_other_float_types_are_accepted(tmp_path, voice_model):
    """The header's optional alignment and the aligned statistics load; float64 statistics arrive as float32."""
    tensors, header = dict(voice_model[0]), json.loads(json.dumps(voice_model[1]))
    header["alignment"] = {"source": {"log_f0_mean": 5.5, "log_f0_std": 0.2},
                           "target": {"log_f0_mean": 4.8, "log_f0_std": 0.2}, "warp": 0.9}
    for group in ("a2b", "b2a"):
        tensors[f"stats.{group}.mean"] = tensors[f"stats.{group[0]}.mean"].double()
        tensors[f"stats.{group}.std"] = tensors[f"stats.{group[0]}.std"].double()
    converter = Converter(write_model(tmp_path / "aligned.safetensors", tensors, header))
    assert set(converter.alignments) == {"a2b", "b2a"}
    assert converter.input_stats["a2b"].mean.dtype == torch.float32


def test_weights_that_pass_but_make_nan_audio_write_nothing(tmp_path, voice_model):
    """Finite but absurd weights (the output layer's at +-3e38) overflow to inf - inf inside the generator: the
    output guard refuses, nothing is written. (Scaling every weight does not do it: the generator's normalization
    layers undo a scale, and the identity start's last layer is zero.)"""
    def blow_up(tensors):
        for name in [n for n in tensors if n.startswith("G_AB.output") and n.endswith("weight")]:
            weight = torch.full_like(tensors[name], 3e38)
            weight.view(-1)[::2] = -3e38
            tensors[name] = weight
    model = hostile_voice_model(tmp_path, voice_model, tensor_edit(blow_up))
    source = write_tone(tmp_path / "in" / "a.wav", 0.3)
    with pytest.raises(ModelFileError, match="produced NaN or infinite audio"):
        Converter(model).convert_file(source, tmp_path / "out" / "a.wav")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_output_guard_refuses_nan_and_a_constant_level():
    model = Path("m.safetensors")
    speech = harmonic_tone(0.5)
    assert check_output(model, speech) is speech
    for bad, phrase in ((np.full(800, np.nan, np.float32), "NaN or infinite"),
                        (np.full(800, -1.0, np.float32), r"constant level \(-1.00 of full scale\)")):
        with pytest.raises(ModelFileError, match=phrase):
            check_output(model, bad)


FACE_ATTACKS = {
    "face model without image (KeyError 'image')": (GAN_MODEL, drop_field("image"), r"header field 'image' is missing"),
    "face image of 10**6 pixels a side": (GAN_MODEL, set_field("image.height", 10**6), r"'image.height' is 1000000"),
    "face channels of 10**6": (VAE_MODEL, set_field("model.channels", [10**6, 64, 128, 256]),
                               r"'model.channels\[0\]' is 1000000"),
    "face latent not matching the weights": (VAE_MODEL, set_field("model.latent", 16),
                                             r"tensor '.*' has shape .* architecture needs"),
    "face GAN with a NaN weight": (GAN_MODEL, nan_in(None), r"tensor 'G\..*' holds NaN or infinite values"),
}


@pytest.mark.parametrize("attack", FACE_ATTACKS)
def test_broken_face_model_files_are_one_line_errors(tmp_path, attack):
    source, edit, expected = FACE_ATTACKS[attack]
    tensors, header = raw_model(source)
    edit(tensors, header)
    path = write_model(tmp_path / "face.safetensors", tensors, header)
    with pytest.raises(ModelFileError) as err:
        load_face_model(path)
    assert re.search(expected, one_line(str(err.value), path)), str(err.value)


class Payload:
    """Unpickling this creates ``marker``: proof that a loader ran code from a model file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def pickle_carriers(folder: Path) -> dict[str, Path]:
    """Model files that run code when unpickled: plain pickle, torch.save, and each named like a model."""
    marker = folder / "code-ran"
    carriers = {"pickle.safetensors": lambda p: p.write_bytes(pickle.dumps(Payload(marker))),
                "torch-save.safetensors": lambda p: torch.save({"weights": Payload(marker)}, p),
                "model.pt": lambda p: torch.save(Payload(marker), p),
                "pickle-in-header.safetensors": lambda p: write_model(
                    p, {"x": torch.zeros(1)}, {"format": "voiceconv-model", "version": 1, "kind": "voice-cyclegan",
                                               "features": pickle.dumps(Payload(marker)).hex()})}
    paths = {}
    for name, make in carriers.items():
        paths[name] = folder / name
        make(paths[name])
    return paths


MALFORMED_CONTAINERS = {
    "header length past the end": struct.pack("<Q", 2**40) + b"{}",
    "header not JSON": struct.pack("<Q", 8) + b"not json",
    "header a list": struct.pack("<Q", 2) + b"[]",
    "offsets past the end": (lambda h: struct.pack("<Q", len(h)) + h)(
        json.dumps({"x": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}).encode()),
    "empty file": b"",
    "text": b"just some text",
}


@pytest.mark.parametrize("name", MALFORMED_CONTAINERS)
def test_malformed_safetensors_containers_are_refused(tmp_path, name):
    path = tmp_path / "model.safetensors"
    path.write_bytes(MALFORMED_CONTAINERS[name])
    with pytest.raises(ModelFileError) as err:
        Converter(path)
    one_line(str(err.value), path)


def test_pickle_payloads_never_run_in_convert_or_evaluate(tmp_path, capsys):
    carriers = pickle_carriers(tmp_path)
    source = write_tone(tmp_path / "in" / "a.wav", 0.5)
    before = source.read_bytes()
    for path in carriers.values():
        assert main(["convert", "--model", str(path), str(source), "-o", str(tmp_path / "out")]) == 1
        assert main(["evaluate", "--source", str(tmp_path / "in"), "--target-ref", str(tmp_path / "in"),
                     "--model", str(path), "-o", str(tmp_path / "report")]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2 * len(carriers) and all(str(tmp_path) in line for line in errors)
    assert not (tmp_path / "code-ran").exists()
    assert source.read_bytes() == before and not (tmp_path / "out").exists() and not (tmp_path / "report").exists()


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "voiceconv", *args], capture_output=True, text=True, timeout=timeout,
                          env=ENV)


def test_convert_and_evaluate_commands_refuse_broken_headers_in_one_line(tmp_path, voice_model):
    """As a user runs them (where the attack saw 70 GB and 16 TB allocations): one line, exit 1 (a bad file)."""
    source = write_tone(tmp_path / "in" / "a.wav", 0.5)
    before = source.read_bytes()
    for attack, command in (("n_fft 2**28 (70 GB)", "convert"), ("generator_channels 200000 (16 TB)", "evaluate")):
        edit, expected = VOICE_ATTACKS[attack]
        model = hostile_voice_model(tmp_path, voice_model, edit, f"{command}.safetensors")
        if command == "convert":
            result = cli("convert", "--model", str(model), str(source), "-o", str(tmp_path / "out"))
        else:
            result = cli("evaluate", "--source", str(tmp_path / "in"), "--target-ref", str(tmp_path / "in"),
                         "--model", str(model), "-o", str(tmp_path / "report"))
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith(f"voiceconv {command}: error: {model}: "), result.stderr
        assert len(result.stderr.splitlines()) == 1 and re.search(expected, result.stderr)
    assert source.read_bytes() == before and not (tmp_path / "out").exists() and not (tmp_path / "report").exists()


# --- long audio ---------------------------------------------------------------------------------------------------


def sparse_wav(path: Path, seconds: float, rate: int = 16000) -> Path:
    """A WAV of ``seconds`` that takes a few kilobytes of disk: a little sound, then a hole of zeros."""
    data = int(seconds * rate) * 2
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE" + b"fmt " +
                struct.pack("<IHHIIHH", 16, 1, 1, rate, 2 * rate, 2, 16) + b"data" + struct.pack("<I", data))
        f.write((harmonic_tone(0.5, rate) * 32767).astype("<i2").tobytes())
        f.truncate(44 + data)
    return path


def test_a_three_hour_spectrogram_is_refused_at_once_in_one_line(tmp_path):
    long = sparse_wav(tmp_path / "long.wav", 3 * 3600)
    stat = long.stat()
    started = time.monotonic()
    result = cli("spectrogram", str(long), str(tmp_path / "long.png"))
    assert result.returncode == 1 and time.monotonic() - started < 60
    assert result.stderr == (f"voiceconv spectrogram: error: {long}: is 180.0 minutes long; spectrogram images are "
                             "limited to 30 minutes (cut it into shorter pieces, e.g. with sox or ffmpeg)\n")
    assert not (tmp_path / "long.png").exists() and not list(tmp_path.glob(".*partial*"))
    assert (long.stat().st_size, long.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)


def test_a_header_that_understates_the_length_is_caught_while_decoding(tmp_path, monkeypatch):
    from voiceconv.audio import pipeline

    source = write_tone(tmp_path / "a.wav", 3.0)
    real_info = pipeline.audio_info
    monkeypatch.setattr(pipeline, "audio_info", lambda p: type("Info", (), {"duration": 0.5})())
    with pytest.raises(AudioError, match=r"is more than [\d.]+ minutes long; spectrogram images are limited to "
                                         r"0.0333333 minutes"):
        audio_to_spectrogram_png(source, tmp_path / "a.png", max_seconds=2.0)
    monkeypatch.setattr(pipeline, "audio_info", real_info)
    assert audio_to_spectrogram_png(source, tmp_path / "a.png", max_seconds=3.5).is_file()


@pytest.mark.parametrize("chunk", [1, 5, 4096])
def test_the_spectrogram_in_chunks_is_the_whole_waveform_spectrogram(chunk):
    config = FeatureConfig(n_mels=64)
    wav = harmonic_tone(1.37)
    whole = MelImageEncoder(config)(torch.from_numpy(wav))
    assert torch.allclose(spectrogram_image(wav, config, chunk), whole, atol=1e-5)


# --- batches ------------------------------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """Processes started (directly or not) by ``pid``, from /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the workers through /proc (Linux)")
def test_kill_9_of_a_jobs_2_batch_leaves_no_worker_and_no_partial_output(tmp_path):
    for i in range(4):
        write_tone(tmp_path / "in" / f"clip{i}.wav", 4.0, seed=i)
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "voiceconv", "convert", "--model", str(VOICE_MODEL),
                                str(tmp_path / "in"), "-o", str(out), "--jobs", "2"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    deadline = time.monotonic() + 150
    while not (out.exists() and partial_files(out)) and time.monotonic() < deadline:  # a worker is writing
        time.sleep(0.05)
    workers = descendants(process.pid)
    process.kill()
    process.wait()
    assert partial_files(out) or audio_outputs(out), "the batch never started converting"
    assert len(workers) >= 2, workers  # two workers (and multiprocessing's resource tracker)
    deadline = time.monotonic() + 60
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in workers if alive(pid)], "workers outlived their parent"
    assert not partial_files(out)
    for name in audio_outputs(out):  # what exists is complete
        assert abs(sf.info(out / name).duration - 4.0) < 0.05


def test_two_runs_into_one_folder_at_once_both_succeed(tmp_path, capsys):
    """The second run's clean-up at start leaves alone the temporary file the first run is writing."""
    for i in range(2):
        write_tone(tmp_path / "in" / f"clip{i}.wav", 2.5, seed=i)
    out = tmp_path / "out"
    converter = Converter(VOICE_MODEL)  # loaded first, so that the second run starts the moment the first writes
    first = subprocess.Popen([sys.executable, "-m", "voiceconv", "convert", "--model", str(VOICE_MODEL),
                              str(tmp_path / "in"), "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=ENV)
    deadline = time.monotonic() + 120
    while not (out.exists() and partial_files(out)) and time.monotonic() < deadline:
        time.sleep(0.02)
    writing = partial_files(out)
    items, failures = plan_batch([tmp_path / "in"], out)
    report = run_batch(VOICE_MODEL, items, progress=False, planning_failures=failures, converter=converter)
    stdout, stderr = first.communicate(timeout=180)
    assert first.returncode == 0, stderr
    assert not report.failures and "failed 0" in stdout, (report.failures, stdout)
    assert writing, "the first run was not writing when the second started"
    assert audio_outputs(out) == {f"clip{i}.wav" for i in range(2)} and not partial_files(out)


def test_a_temporary_file_is_removed_only_once_its_writer_is_gone(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom voiceconv.files import atomic_output\n"
                               "with atomic_output(sys.argv[1]) as tmp:\n    open(tmp, 'w').write('half')\n"
                               "    print(tmp, flush=True)\n    time.sleep(600)\n", str(tmp_path / "out.wav")],
                              stdout=subprocess.PIPE, text=True, env=ENV)
    tmp = Path(holder.stdout.readline().strip())
    assert not remove_abandoned(tmp) and tmp.exists()  # its writer is alive
    holder.kill()
    holder.wait()
    assert remove_abandoned(tmp) and not tmp.exists()
    with atomic_output(tmp_path / "mine.wav") as own:
        own.write_text("x")
        assert not remove_abandoned(own)  # this process's own writer too


def test_symlink_loops_and_fifos_in_an_input_folder_are_failures_not_hangs(tmp_path, capsys):
    tree = tmp_path / "in"
    write_tone(tree / "good.wav", 0.5)
    (tree / "loop.wav").symlink_to(tree / "loop.wav")
    (tree / "ring").symlink_to(tree)
    os.mkfifo(tree / "pipe.wav")
    assert main(["convert", "--model", str(VOICE_MODEL), str(tree), "-o", str(tmp_path / "out")]) == 1
    assert "Traceback" not in capsys.readouterr().err
    failed = failures_csv(tmp_path / "out" / "failures.csv")
    assert set(failed) == {"loop.wav", "pipe.wav"} and all("not a regular file" in r for r in failed.values())
    assert audio_outputs(tmp_path / "out") == {"good.wav"}


def test_failures_csv_never_overwrites_an_input_or_deletes_a_users_file(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    input_list = out / "failures.csv"  # an input of the run, in the output folder
    input_list.write_text("not audio, but the user's\n")
    source = write_tone(tmp_path / "good.wav", 0.5)
    assert main(["convert", "--model", str(VOICE_MODEL), str(input_list), str(source), "-o", str(out)]) == 1
    assert input_list.read_text() == "not audio, but the user's\n"
    assert f"failures listed in {out / 'failures-2.csv'}" in capsys.readouterr().out
    assert set(failures_csv(out / "failures-2.csv")) == {"failures.csv"}

    own = tmp_path / "own"  # a user's own failures.csv, then a run with no failures
    own.mkdir()
    (own / "failures.csv").write_text("date,what failed\n2024-01-01,the boiler\n")
    assert main(["convert", "--model", str(VOICE_MODEL), str(source), "-o", str(own)]) == 0
    assert (own / "failures.csv").read_text() == "date,what failed\n2024-01-01,the boiler\n"
    assert sorted(p.name for p in own.iterdir()) == ["failures.csv", "good.wav"]


def test_failure_lists_replace_and_remove_only_their_own_kind(tmp_path):
    stale = write_failures(tmp_path, [(Path("a.wav"), "empty")])
    assert stale == tmp_path / "failures.csv" and is_failure_list(stale)
    assert write_failures(tmp_path, []) is None and not stale.exists()  # an earlier list goes on a clean rerun
    (tmp_path / "failures.csv").write_text("file,reason,notes\nx,y,z\n")  # edited by hand: no longer ours
    (tmp_path / "failures-2.csv").symlink_to(tmp_path / "failures.csv")
    assert write_failures(tmp_path, [(Path("b.wav"), "empty")]) == tmp_path / "failures-3.csv"
    assert (tmp_path / "failures.csv").read_text() == "file,reason,notes\nx,y,z\n"


def test_formula_cell_names_are_neutralised(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    names = ["=1+2.wav", "+SUM(A1).wav", "-2+3.wav", "@cmd.wav"]
    for name in names:
        Path(name).write_text("not audio")
    assert main(["convert", "--model", str(VOICE_MODEL), *(f"./{name}" for name in names), "-o", "out"]) == 1
    assert sorted(failures_csv(tmp_path / "out" / "failures.csv")) == sorted(f"'{name}" for name in names)
    assert spreadsheet_safe("\tx") == "'\tx" and spreadsheet_safe("a=b") == "a=b"
    assert all((tmp_path / name).read_text() == "not audio" for name in names)


# --- zips ---------------------------------------------------------------------------------------------------------


def zip_bomb(path: Path, megabytes: int) -> Path:
    """``megabytes`` of zeros deflated into a few hundred kilobytes, written without holding them in memory."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("zeros.wav", "w", force_zip64=True) as member:
            block = bytes(1 << 20)
            for _ in range(megabytes):
                member.write(block)
    return path


def long_name_zip(path: Path) -> Path:
    return make_zip(path, {"a" * 300 + ".wav": b"x"})


def test_zip_that_is_not_a_zip_and_overlong_member_names_are_refused(tmp_path):
    (tmp_path / "fake.zip").write_text("not a zip")
    for archive, message in ((tmp_path / "fake.zip", "fake.zip is not a readable zip file"),
                             (long_name_zip(tmp_path / "long.zip"), r"long.zip: member 'aaa.*\(304 characters\) has a "
                                                                    r"name too long to unpack"),
                             (make_zip(tmp_path / "slip.zip", {"../evil.wav": b"x"}), "points outside the folder")):
        with pytest.raises(UnsafeArchiveError, match=message):
            extract_zip(archive, tmp_path / "out", Limits())
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.wav").exists()


def test_a_zip_bomb_is_refused_before_unpacking(tmp_path):
    bomb = zip_bomb(tmp_path / "bomb.zip", 256)
    assert bomb.stat().st_size < 2_000_000
    with pytest.raises(UnsafeArchiveError, match="zip bomb"):
        check_zip(bomb, Limits(max_zip_total_mb=1000))


# --- the page: one server with a password, damaged files in its models folder --------------------------------------


def load_app_module():
    """The launcher behind ``python app.py`` and ``voiceconv serve``."""
    import voiceconv.web.serve

    return voiceconv.web.serve


@pytest.fixture(scope="module")
def page(tmp_path_factory, voice_model):
    """``python app.py --auth-file`` on loopback over a models folder holding good and damaged files."""
    folder = tmp_path_factory.mktemp("page")
    models = folder / "models"
    models.mkdir()
    for sample in (VOICE_MODEL, GAN_MODEL):
        (models / sample.name).symlink_to(sample)
    hostile_voice_model(models, voice_model, VOICE_ATTACKS["no speakers"][0], "bad_speakers.safetensors")
    hostile_voice_model(models, voice_model, VOICE_ATTACKS["deeply nested header"][0], "bad_nested.safetensors")
    hostile_voice_model(models, voice_model, VOICE_ATTACKS["generator_channels 200000 (16 TB)"][0],
                        "bad_channels.safetensors")
    hostile_voice_model(models, voice_model, VOICE_ATTACKS["NaN weight"][0], "nan_weights.safetensors")
    gan_tensors, gan_header = raw_model(GAN_MODEL)
    write_model(models / "bad_image.safetensors", gan_tensors, {k: v for k, v in gan_header.items() if k != "image"})
    nan_gan = dict(gan_tensors)
    name = next(n for n in nan_gan if nan_gan[n].is_floating_point())
    nan_gan[name] = torch.full_like(nan_gan[name], math.nan)
    write_model(models / "nan_gan.safetensors", nan_gan, gan_header)
    (models / "pickle.safetensors").write_bytes(pickle.dumps(Payload(folder / "code-ran")))
    (folder / "passwords").write_text(f"# who may use the page\n{USER}:{PASSWORD}\n")
    with running_app(folder, "--models-dir", str(models), "--auth-file", str(folder / "passwords"),
                     "--max-seconds", "2.2") as url:
        yield url, folder


@pytest.fixture
def client(page, tmp_path):
    from gradio_client import Client

    return Client(page[0], auth=(USER, PASSWORD), verbose=False, download_files=str(tmp_path))


def test_page_skips_damaged_models_with_a_log_line_and_serves_the_rest(page, client):
    url, folder = page
    log = (folder / "app.log").read_text()
    assert "Traceback" not in log and not (folder / "code-ran").exists()
    for name, reason in (("bad_speakers", "header field 'speakers' is missing"),
                         ("bad_nested", "nested too deeply"),
                         ("bad_channels", "'model.generator_channels' is 200000"),
                         ("bad_image", "header field 'image' is missing"),
                         ("pickle", "not a safetensors model file"),
                         ("nan_gan", "holds NaN or infinite values")):
        assert re.search(rf"skipping \S*{name}.safetensors: .*{re.escape(reason)}", log), (name, log)
    message = refusal(client, None, "bad_speakers", "a2b", "auto", api_name="/convert")
    assert message == "unknown model 'bad_speakers'; choose one of kathleen_rms, nan_weights", message  # skipped
    assert "not in the list of choices: ['faces_gan']" in refusal(client, "nan_gan", 0, api_name="/sample_faces")


def test_page_refuses_a_model_with_nan_weights_in_one_message(client):
    from gradio_client import handle_file

    message = refusal(client, handle_file(str(SHORT_CLIP)), "nan_weights", "a2b", "auto", api_name="/convert")
    assert re.fullmatch(r"nan_weights.safetensors: tensor 'G_AB.output.weight' holds NaN or infinite values; .*",
                        message), message


@pytest.mark.parametrize("seed,expected", [(1e300, "greater than maximum value 4294967295"),
                                           (2**70, "greater than maximum value 4294967295"),
                                           ("abc", "Seed must be a number, got 'abc'"),
                                           (-1, "less than minimum value 0"),
                                           (True, "Seed must be a number, got True")])
def test_sample_faces_refuses_bad_seeds_with_a_message(client, seed, expected):
    assert expected in refusal(client, "faces_gan", seed, api_name="/sample_faces")


def test_sample_faces_still_samples(client):
    grid, next_seed = client.predict("faces_gan", 7, api_name="/sample_faces")
    assert next_seed == 8 and Path(grid).is_file()


def not_a_zip(folder: Path) -> Path:
    (folder / "voices.zip").write_text("not a zip")
    return folder / "voices.zip"


@pytest.mark.parametrize("make,expected", [
    (not_a_zip, "voices.zip is not a readable zip file (File is not a zip file)"),
    (lambda folder: long_name_zip(folder / "long.zip"), "has a name too long to unpack"),
    (lambda folder: zip_bomb(folder / "bomb.zip", 256), "it looks like a zip bomb"),
])
def test_page_refuses_bad_zips_with_their_message(client, tmp_path, make, expected):
    from gradio_client import handle_file

    upload = make(tmp_path)
    before = upload.read_bytes()
    assert expected in refusal(client, [handle_file(str(upload))], "kathleen_rms", "a2b", "auto",
                               api_name="/convert_batch")
    assert upload.read_bytes() == before


def test_page_neutralises_formula_names_in_the_batch_failure_list(client, tmp_path):
    from gradio_client import handle_file

    upload = make_zip(tmp_path / "names.zip", {"=1+2.wav": b"not audio", "@cmd.wav": b"not audio"})
    archive, table, summary = client.predict([handle_file(str(upload))], "kathleen_rms", "a2b", "auto",
                                             api_name="/convert_batch")
    with zipfile.ZipFile(archive) as result:
        (tmp_path / "failures.csv").write_bytes(result.read("failures.csv"))
    assert sorted(failures_csv(tmp_path / "failures.csv")) == ["'=1+2.wav", "'@cmd.wav"]


def test_server_paths_are_refused_as_file_arguments_and_urls(page, tmp_path):
    import httpx

    url, _ = page
    with httpx.Client(base_url=url, timeout=60) as session:
        assert session.post("login", data={"username": USER, "password": PASSWORD}).status_code == 200
        for target in ("/etc/passwd", str(VOICE_MODEL)):
            assert session.get(f"gradio_api/file={target}").status_code == 403
        call = session.post("gradio_api/call/convert", json={"data": [
            {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}, "kathleen_rms", "a2b", "auto"]})
        event = call.json()["event_id"]
        stream = session.get(f"gradio_api/call/convert/{event}").text
    assert "event: error" in stream and "root:" not in stream


def test_a_request_without_credentials_is_refused(page):
    import httpx
    from gradio_client import Client

    url, _ = page
    with httpx.Client(base_url=url, timeout=60) as anonymous:
        assert anonymous.get("config").status_code == 401
        assert anonymous.post("gradio_api/call/sample_faces", json={"data": ["faces_gan", 0]}).status_code == 401
        assert anonymous.get(f"gradio_api/file={SHORT_CLIP}").status_code in (401, 403)
        assert anonymous.post("login", data={"username": USER, "password": "wrong"}).status_code >= 400
    with pytest.raises(Exception):
        Client(url, verbose=False)


def test_page_credentials_come_from_a_flag_a_file_or_the_environment(tmp_path, monkeypatch):
    app = load_app_module()
    (tmp_path / "users").write_text("# comment\n\nann:pa:ss\nbob: spaced \n")
    monkeypatch.delenv(app.AUTH_VARIABLE, raising=False)
    assert app.credentials(app.parse_args(["--auth", "ann:x"])) == {"ann": "x"}
    assert app.credentials(app.parse_args(["--auth-file", str(tmp_path / "users")])) == {"ann": "pa:ss", "bob": " spaced"}
    assert app.credentials(app.parse_args([])) == {}
    monkeypatch.setenv(app.AUTH_VARIABLE, "env:secret")
    assert app.credentials(app.parse_args([])) == {"env": "secret"}
    for bad in (["--auth", "nocolon"], ["--auth", ":nouser"], ["--auth-file", str(tmp_path / "missing")]):
        with pytest.raises(app.VoiceconvError) as err:
            app.credentials(app.parse_args(bad))
        assert "nouser" not in str(err.value)  # never echoes a password
    check = app.password_check({"ann": "pa:ss"})
    assert check("ann", "pa:ss") and not check("ann", "pa:sS") and not check("eve", "pa:ss")
    assert app._exposure("127.0.0.1", 7860, False) is None and app._exposure("localhost", 7860, False) is None
    assert app._exposure("::1", 7860, False) is None
    assert app._exposure("0.0.0.0", 7860, False) == "0.0.0.0:7860 (every interface)"
    assert "gradio.live" in app._exposure("127.0.0.1", 7860, True)


def test_app_warns_beyond_loopback_without_a_password_and_a_damaged_model_flag_is_one_line(tmp_path, voice_model,
                                                                                          capsys, monkeypatch):
    """``python app.py --host 0.0.0.0 --model BAD`` (its main, in this process): a warning, then one error line."""
    pytest.importorskip("gradio", reason="the web page needs the app extra: pip install -e '.[app]'")
    app = load_app_module()
    monkeypatch.delenv(app.AUTH_VARIABLE, raising=False)
    bad = hostile_voice_model(tmp_path, voice_model, VOICE_ATTACKS["no speakers"][0])
    assert app.main(["--host", "0.0.0.0", "--model", str(bad), "--models-dir", str(tmp_path / "none")]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "app.py: warning: the page is open to anyone who can reach 0.0.0.0:7860 (every interface), with no password; "
        f"add --auth-file FILE (or {app.AUTH_VARIABLE}=USER:PASSWORD) to ask for one",
        f"app.py: error: {bad}: header field 'speakers' is missing"]
    assert app.main(["--auth", "no-colon"]) == 2
    assert capsys.readouterr().err == "app.py: error: --auth: entry 1 is not USER:PASSWORD (a user name, a colon, a password)\n"


def test_read_header_checks_what_web_discovery_reads(tmp_path, voice_model):
    path = hostile_voice_model(tmp_path, voice_model, VOICE_ATTACKS["speaker name is a path"][0])
    with pytest.raises(ModelFileError, match=r"'speakers.a.name' is '../../evil'"):
        read_header(path)
    assert read_header(VOICE_MODEL)["speakers"]["a"]["name"] == "kathleen"



def test_face_api_numbers_are_checked_before_gradio_rounds_them():
    gr = pytest.importorskip("gradio", reason="the web page needs the app extra: pip install -e '.[app]'")
    from voiceconv.web.faces import _checked_value
    from voiceconv.web.inputs import MAX_SEED, checked_number_input, checked_seed
    from voiceconv.web.limits import UploadError

    with gr.Blocks():
        seed = checked_number_input(gr.Number(0, label="Seed", precision=0, minimum=0, maximum=MAX_SEED - 1))
    for payload in (math.nan, math.inf, "3", [3], {"x": 3}, False):
        with pytest.raises(gr.Error, match="Seed must be a number"):
            seed.preprocess(payload)
    assert seed.preprocess(3.0) == 3 and seed.preprocess(None) is None
    for bad in (1.5, -1, MAX_SEED, 10**30, None, "7"):
        with pytest.raises(UploadError, match="the seed must be a whole number from 0 to 4294967295"):
            checked_seed(bad)
    assert checked_seed(MAX_SEED - 1) == MAX_SEED - 1 and _checked_value(1e300) == 3.0
    with pytest.raises(UploadError, match="slider values must be numbers"):
        _checked_value(math.nan)


# --- issue 20: the audit's reader, and what a folder may hold ---------------------------------------------------------


def silent_flac(path: Path, minutes: float, rate: int = 44100) -> Path:
    """A FLAC of ``minutes`` of digital silence: a few hundred kilobytes that decode to gigabytes of samples."""
    zeros, left = np.zeros(60 * rate, np.int16), int(minutes * 60 * rate)
    path.parent.mkdir(parents=True, exist_ok=True)
    with sf.SoundFile(path, "w", rate, 1, "PCM_16", format="FLAC") as out:
        while left:
            out.write(zeros[:min(left, len(zeros))])
            left -= min(left, len(zeros))
    return path


def peak_rss_mb(folder: Path, *args: str) -> tuple[float, int, str]:
    """(the peak resident memory of ``python -m voiceconv ARGS`` in MB, from the kernel's count for that process
    alone; its exit status; what it printed), its output kept in ``folder``."""
    out = folder / "out.txt"
    with open(out, "w") as printed:
        process = subprocess.Popen([sys.executable, "-m", "voiceconv", *args], stdout=printed,
                                   stderr=subprocess.STDOUT, env=ENV)
        _, status, usage = os.wait4(process.pid, 0)
    return usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), out.read_text()


def tree_state(folder: Path, leave_out: Path | None = None) -> dict[str, tuple]:
    """Every entry under ``folder`` (but ``leave_out``) with its type, size and modification time, links unfollowed."""
    state = {}
    for path in sorted(folder.rglob("*")):
        if leave_out is not None and (path == leave_out or leave_out in path.parents):
            continue
        info = path.lstat()
        state[str(path.relative_to(folder))] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return state


def test_the_audit_of_an_hour_of_silence_takes_the_memory_of_a_short_clip(tmp_path):
    """Issue 20.3: a 55-minute silent FLAC (a few hundred KB) made the audit decode it whole, 1.4 GB above the audit
    of a 2-second clip; read block by block, it costs a few tens of MB more."""
    short = tmp_path / "short"
    short.mkdir()
    (short / "clip.flac").write_bytes(SHORT_CLIP.read_bytes())
    long = silent_flac(tmp_path / "long" / "silence.flac", 55)
    before = tree_state(tmp_path)
    baseline, status, _ = peak_rss_mb(tmp_path, "audit", str(short), "--methods", "checks")
    assert status == 0
    peak, status, printed = peak_rss_mb(tmp_path, "audit", str(long.parent), "--methods", "checks")
    assert status == 1 and f"| {long} | unreadable: is silent (peak below -60 dBFS) |" in printed, printed
    assert "| 3300.00 |" not in printed and "Traceback" not in printed
    print(f"peak RSS: {baseline:.0f} MB for a 2-s clip, {peak:.0f} MB for 55 minutes of silence")
    assert peak - baseline < 150, (baseline, peak)
    assert tree_state(tmp_path, leave_out=tmp_path / "out.txt") == {k: v for k, v in before.items()}


def hostile_folder(tmp_path: Path) -> tuple[Path, Path]:
    """(a folder of one recording and the entries a stranger may plant: links to a secret outside it and to the zero
    device, a pipe, a link loop, a link inside it; the secret)."""
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"RIFF the server's own file, not the user's")
    folder = tmp_path / "speaker"
    write_tone(folder / "good.wav", 1.5)
    (folder / "passwd.wav").symlink_to("/etc/passwd")
    (folder / "secret.wav").symlink_to(secret)
    (folder / "zero.wav").symlink_to("/dev/zero")
    (folder / "inside.wav").symlink_to(folder / "good.wav")
    (folder / "loop.flac").symlink_to(folder / "loop.flac")
    os.mkfifo(folder / "pipe.wav")
    return folder, secret


OUT_OF_FOLDER = "not a regular file: a link leading out of the folder (not followed)"
HOSTILE_ENTRIES = {"passwd.wav": OUT_OF_FOLDER, "secret.wav": OUT_OF_FOLDER, "zero.wav": OUT_OF_FOLDER,
                   "pipe.wav": "not a regular file: a pipe (not read)",
                   "loop.flac": "not a regular file: a broken link or a link loop"}


def test_the_audit_lists_every_entry_that_is_not_a_regular_file_and_follows_no_link_out(tmp_path, capsys):
    """Issue 20.5: the audit opened a link to the password file and left pipes and devices out of its CSV."""
    folder, secret = hostile_folder(tmp_path)
    before = tree_state(tmp_path)
    assert main(["audit", str(folder), "--methods", "checks", "--csv", str(tmp_path / "audit.csv")]) == 1
    assert "Traceback" not in capsys.readouterr().err
    with open(tmp_path / "audit.csv", newline="") as table:
        rows = {Path(row["file"]).name: row for row in csv.DictReader(table)}
    assert {name: row["reason"] for name, row in rows.items() if name in HOSTILE_ENTRIES} == HOSTILE_ENTRIES
    for read in ("good.wav", "inside.wav"):  # a link inside the folder is read (a tone: flagged for its SNR only)
        assert "unreadable" not in rows[read]["reason"] and "regular" not in rows[read]["reason"], rows[read]
    assert tree_state(tmp_path, leave_out=tmp_path / "audit.csv") == before


def test_convert_follows_no_link_out_of_an_input_folder(tmp_path, capsys):
    """Issue 20.5: ``convert`` opened a link to the password file, against the README's "never opened"."""
    folder, secret = hostile_folder(tmp_path)
    before = tree_state(tmp_path)
    assert main(["convert", "--model", str(VOICE_MODEL), str(folder), "-o", str(tmp_path / "out")]) == 1
    assert "Traceback" not in capsys.readouterr().err
    assert failures_csv(tmp_path / "out" / "failures.csv") == HOSTILE_ENTRIES
    assert audio_outputs(tmp_path / "out") == {"good.wav", "inside.wav"}
    assert tree_state(tmp_path, leave_out=tmp_path / "out") == before
