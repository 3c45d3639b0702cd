"""The `voiceconv` command as a user runs it: subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import SAMPLES
from voiceconv.audio.io import save_audio
from voiceconv.audio.pipeline import audio_to_spectrogram_png

def voiceconv(*args, check_rc: int | None = 0) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "voiceconv", *map(str, args)], capture_output=True, text=True,
                            timeout=120)
    if check_rc is not None:
        assert result.returncode == check_rc, result.stderr
    return result


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_version_and_help_for_every_verb(capsys):
    import argparse

    from voiceconv.cli import build_parser, main

    [verbs] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert {"spectrogram", "synthesize", "evaluate", "train", "convert", "faces"} <= set(verbs.choices)
    assert voiceconv("--version").stdout.startswith("voiceconv ")  # the installed entry point, once
    for verb in verbs.choices:  # every verb's help in this process: a subprocess each cost 34 s in CI
        with pytest.raises(SystemExit) as exited:
            main([verb, "--help"])
        assert exited.value.code == 0, verb
        assert "usage: voiceconv " + verb in capsys.readouterr().out, verb


def test_spectrogram_then_synthesize_round_trip(tmp_path):
    source = SAMPLES / "audio" / "kathleen_arctic_a0592.flac"
    before = digest(source)
    voiceconv("spectrogram", source, tmp_path / "k.png")
    voiceconv("synthesize", tmp_path / "k.png", tmp_path / "k.wav", "--iterations", "16")
    wav, rate = sf.read(tmp_path / "k.wav")
    original, _ = sf.read(source)
    assert rate == 16000 and abs(len(wav) - len(original)) < 256
    assert np.abs(wav).max() > 0.05
    assert digest(source) == before


@pytest.mark.parametrize("suffix", [".flac", ".ogg"])
def test_synthesize_writes_the_format_of_the_extension(tmp_path, tone, suffix):
    save_audio(tmp_path / "in.wav", tone, 16000)
    voiceconv("spectrogram", tmp_path / "in.wav", tmp_path / "in.png", "--set", "n_mels=64")
    voiceconv("synthesize", tmp_path / "in.png", tmp_path / f"out{suffix}", "--iterations", "4")
    assert sf.info(tmp_path / f"out{suffix}").format == suffix[1:].upper()


@pytest.mark.parametrize(
    "make_args, phrase",
    [
        (lambda p: ["spectrogram", p / "missing.wav", p / "x.png"], "no such file"),
        (lambda p: ["spectrogram", p / "notes.txt", p / "x.png"], "not an audio file"),
        (lambda p: ["spectrogram", p / "in.wav", p / "x.png", "--set", "n_mel=64"], "valid keys"),
        (lambda p: ["spectrogram", p / "in.wav", p / "in.wav"], "overwrite the input"),
        (lambda p: ["synthesize", p / "notes.txt", p / "x.wav"], "not a readable image"),
        (lambda p: ["synthesize", p / "in.png", p / "x.aac"], "cannot write .aac"),
        (lambda p: ["synthesize", p / "in.png", p / "x.wav", "--momentum", "1.5"], "momentum"),
    ],
)
def test_user_errors_are_one_line_with_exit_code_1(tmp_path, tone, make_args, phrase):
    save_audio(tmp_path / "in.wav", tone, 16000)
    (tmp_path / "notes.txt").write_text("not audio")
    audio_to_spectrogram_png(tmp_path / "in.wav", tmp_path / "in.png")
    before = digest(tmp_path / "in.wav")
    result = voiceconv(*make_args(tmp_path), check_rc=1)
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert phrase in result.stderr
    assert digest(tmp_path / "in.wav") == before
    assert not list(tmp_path.glob("*.partial*"))


def test_usage_errors_exit_2():
    assert voiceconv("spectrogram", check_rc=2).returncode == 2
    assert voiceconv("no-such-verb", check_rc=2).returncode == 2
