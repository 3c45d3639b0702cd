"""`voiceconv convert` on many files: folder trees, bad files, resuming after a kill, --jobs, torchrun shards."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import SAMPLES
from helpers import ENV, audio_outputs, failures_csv, partial_files, write_tone
from voiceconv.batch import WORKER_DIED, BatchUsageError, in_worker_pool, plan_batch, write_failures
from voiceconv.cli import main

MODEL = SAMPLES / "models" / "kathleen_rms.safetensors"




def command(*args) -> list[str]:
    return [sys.executable, "-m", "voiceconv", "convert", "--model", str(MODEL), *map(str, args)]


def voiceconv(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), capture_output=True, text=True, timeout=180, env={**ENV, **(env or {})})


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}








def assert_converted(source: Path, output: Path) -> None:
    """``output`` is a complete audio file as long as ``source`` (within 50 ms)."""
    info = sf.info(output)
    assert abs(info.duration - sf.info(source).duration) < 0.05, (output, info.duration)
    assert np.abs(sf.read(output)[0]).max() > 0.01


def test_folder_tree_with_bad_files_then_rerun(tmp_path, capsys):
    tree = tmp_path / "in"
    good = {"a.wav": write_tone(tree / "a.wav", 1.2),
            "sub/b.wav": write_tone(tree / "sub" / "b.flac", 1.5, seed=1),
            "sub/deeper/c.wav": write_tone(tree / "sub" / "deeper" / "c.wav", 1.0, 44100, seed=2),
            "sub/deeper/d.wav": write_tone(tree / "sub" / "deeper" / "d.flac", 1.3, 11025, seed=3)}
    (tree / "sub" / "corrupt.wav").write_bytes(b"RIFF" + os.urandom(3000))
    (tree / "notes.wav").write_text("meeting notes, not audio\n")
    (tree / "sub" / "empty.wav").write_bytes(b"")
    (tree / "readme.txt").write_text("left out: not an audio extension and no --glob")
    (tree / ".hidden.wav").write_bytes(b"left out: hidden")
    explicit = tmp_path / "extra" / "memo.txt"
    explicit.parent.mkdir()
    explicit.write_text("named on the command line, so it is tried")
    out = tmp_path / "out"
    inputs = lambda: {k: v for k, v in digests(tmp_path).items() if not k.startswith("out/")}  # noqa: E731
    before = inputs()

    assert main(["convert", "--model", str(MODEL), str(tree), str(explicit), str(tmp_path / "missing.wav"),
                 "-o", str(out)]) == 1
    stdout, stderr = capsys.readouterr()
    assert "converted 4, skipped 0 (output already there), failed 5" in stdout and "Traceback" not in stderr
    assert audio_outputs(out) == set(good)
    for name, source in good.items():
        assert_converted(source, out / name)
        assert sf.info(out / name).samplerate == 16000
    failed = failures_csv(out / "failures.csv")
    assert set(failed) == {"corrupt.wav", "notes.wav", "empty.wav", "memo.txt", "missing.wav"}
    assert "cannot be decoded" in failed["corrupt.wav"]
    assert "not an audio file" in failed["notes.wav"] and "not an audio file" in failed["memo.txt"]
    assert "empty" in failed["empty.wav"] and "no such file" in failed["missing.wav"]
    assert inputs() == before and not partial_files(tmp_path)

    times = {name: (out / name).stat().st_mtime_ns for name in good}
    assert main(["convert", "--model", str(MODEL), str(tree), str(explicit), str(tmp_path / "missing.wav"),
                 "-o", str(out)]) == 1
    assert "converted 0, skipped 4 (output already there), failed 5" in capsys.readouterr().out
    assert {name: (out / name).stat().st_mtime_ns for name in good} == times
    assert set(failures_csv(out / "failures.csv")) == set(failed)
    assert inputs() == before


def test_killed_and_terminated_runs_resume_to_a_complete_set(tmp_path):
    sources = [write_tone(tmp_path / "in" / f"clip{i}.wav", 3.0, seed=i) for i in range(6)]
    out = tmp_path / "out"

    def run_until_an_output_appears_then(sig: int) -> subprocess.CompletedProcess:
        present = len(audio_outputs(out)) if out.exists() else 0
        process = subprocess.Popen(command(tmp_path / "in", "-o", out), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=ENV)
        deadline = time.monotonic() + 120
        while (not out.exists() or len(audio_outputs(out)) == present) and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(sig)
        stdout, stderr = process.communicate(timeout=60)
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

    killed = run_until_an_output_appears_then(signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    done = audio_outputs(out)
    assert 1 <= len(done) < len(sources), "the kill should land midway"
    for name in done:
        assert_converted(tmp_path / "in" / name, out / name)  # whatever exists is complete
    stale = out / ".clip5.k1ll3d_x.partial.wav"  # what a kill during a write leaves behind
    stale.write_bytes(b"RIFF half a file")

    terminated = run_until_an_output_appears_then(signal.SIGTERM)
    assert terminated.returncode == 130, terminated.stderr
    assert "interrupted" in terminated.stderr and "Traceback" not in terminated.stderr
    assert not partial_files(out)
    assert len(done) < len(audio_outputs(out)) < len(sources)

    present = len(audio_outputs(out))
    finished = voiceconv(tmp_path / "in", "-o", out)
    assert finished.returncode == 0, finished.stderr
    assert f"converted {len(sources) - present}, skipped {present}" in finished.stdout
    assert audio_outputs(out) == {s.name for s in sources}
    for source in sources:
        assert_converted(source, out / source.name)
    assert not partial_files(tmp_path) and not (out / "failures.csv").exists()


def test_out_dir_inside_an_input_folder(tmp_path, capsys):
    write_tone(tmp_path / "in" / "a.wav", 1.0)
    inside = tmp_path / "in" / "converted"
    assert main(["convert", "--model", str(MODEL), str(tmp_path / "in"), "-o", str(inside)]) == 2
    assert "inside the input folder" in capsys.readouterr().err
    assert not inside.exists()

    write_tone(inside / "a.wav", 1.0, seed=5)  # an earlier run's output, which must not be converted again
    assert main(["convert", "--model", str(MODEL), str(tmp_path / "in"), "-o", str(inside),
                 "--allow-out-inside-input", "--overwrite"]) == 0
    assert "converted 1, skipped 0" in capsys.readouterr().out
    assert audio_outputs(inside) == {"a.wav"}
    assert_converted(tmp_path / "in" / "a.wav", inside / "a.wav")


def test_two_jobs_make_the_same_outputs_as_one(tmp_path, capsys):
    for i, name in enumerate(["a.wav", "b/c.wav", "b/d.wav"]):
        write_tone(tmp_path / "in" / name, 1.0 + 0.2 * i, seed=i)
    assert main(["convert", "--model", str(MODEL), str(tmp_path / "in"), "-o", str(tmp_path / "one")]) == 0
    assert main(["convert", "--model", str(MODEL), str(tmp_path / "in"), "-o", str(tmp_path / "two"),
                 "--jobs", "2"]) == 0
    assert "converted 3" in capsys.readouterr().out
    assert audio_outputs(tmp_path / "one") == audio_outputs(tmp_path / "two") == {"a.wav", "b/c.wav", "b/d.wav"}
    for name in audio_outputs(tmp_path / "one"):
        one, _ = sf.read(tmp_path / "one" / name)
        parallel, _ = sf.read(tmp_path / "two" / name)
        assert one.shape == parallel.shape and np.abs(one - parallel).max() < 0.01


def test_torchrun_ranks_split_the_files_without_overlap(tmp_path):
    """Two ranks at once, as torchrun starts them: each converts its share, none converts another's."""
    for i in range(5):
        write_tone(tmp_path / "in" / f"{i}.wav", 1.0, seed=i)
    (tmp_path / "in" / "3.wav").write_bytes(b"RIFF" + bytes(100))  # a failure in rank 1's share (1.wav, 3.wav)
    out = tmp_path / "out"
    ranks = [subprocess.Popen(command(tmp_path / "in", tmp_path / "missing.wav", "-o", out), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env={**ENV, "RANK": str(r), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"})
             for r in range(2)]
    (first, errors_0), (second, errors_1) = (rank.communicate(timeout=180) for rank in ranks)
    assert [rank.returncode for rank in ranks] == [1, 1], errors_0 + errors_1  # rank 0 reports the missing input
    assert "rank 0 of 2: converted 3, skipped 0 (output already there), failed 1" in first
    assert "rank 1 of 2: converted 1, skipped 0 (output already there), failed 1" in second
    assert audio_outputs(out) == {"0.wav", "1.wav", "2.wav", "4.wav"}
    assert set(failures_csv(out / "failures.rank0.csv")) == {"missing.wav"}
    assert set(failures_csv(out / "failures.rank1.csv")) == {"3.wav"}
    assert not (out / "failures.csv").exists()


def test_usage_errors_exit_2_and_a_bad_model_file_1(tmp_path, capsys):
    source = write_tone(tmp_path / "a.wav", 1.0)
    (tmp_path / "model.safetensors").write_text("not a model")
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit) as exit_info:
        main(["convert", "--model", str(MODEL), str(source), "-o", str(tmp_path / "out"), "--jobs", "0"])
    assert exit_info.value.code == 2
    assert main(["convert", "--model", str(tmp_path / "model.safetensors"), str(source), "-o",
                 str(tmp_path / "out")]) == 1  # a bad model file is a bad file, as in every verb, not a usage error
    assert main(["convert", "--model", str(MODEL), str(source), "-o", str(tmp_path / "file")]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert "positive integer" in errors[-3] and "model.safetensors" in errors[-2] and "is a file" in errors[-1]
    assert not (tmp_path / "out").exists()


def test_plan_mirrors_folders_and_reports_clashes(tmp_path):
    for name in ["x.wav", "x.flac", "sub/y.ogg", "sub/.hidden.wav", ".git/z.wav", "notes.txt", "song.m4a"]:
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / name).write_bytes(b"contents are not read while planning")
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"

    items, failures = plan_batch([tmp_path / "in", tmp_path / "empty", tmp_path / "in" / "notes.txt"], out,
                                 audio_format="flac")
    assert [(i.source.relative_to(tmp_path), i.destination.relative_to(out)) for i in items] == [
        (Path("in/notes.txt"), Path("notes.flac")), (Path("in/song.m4a"), Path("song.flac")),
        (Path("in/sub/y.ogg"), Path("sub/y.flac")), (Path("in/x.flac"), Path("x.flac"))]
    reasons = {path.relative_to(tmp_path): reason for path, reason in failures}
    assert "already the output of" in reasons[Path("in/x.wav")]
    assert "no audio files" in reasons[Path("empty")]

    items, _ = plan_batch([tmp_path / "in"], out, glob="*.txt")
    assert [i.destination.relative_to(out) for i in items] == [Path("notes.wav")]
    (out / "x.wav").parent.mkdir()
    (out / "x.wav").write_bytes(b"")
    items, failures = plan_batch([out / "x.wav", tmp_path / "in" / "sub"], out)
    assert [i.source.name for i in items] == ["y.ogg"]
    assert "would overwrite an input" in failures[0][1]


def test_plan_refuses_or_leaves_out_an_output_folder_inside_an_input(tmp_path):
    (tmp_path / "in" / "out").mkdir(parents=True)
    (tmp_path / "in" / "a.wav").write_bytes(b"")
    (tmp_path / "in" / "out" / "a.wav").write_bytes(b"")
    with pytest.raises(BatchUsageError, match="inside the input folder"):
        plan_batch([tmp_path / "in"], tmp_path / "in" / "out")
    items, failures = plan_batch([tmp_path / "in"], tmp_path / "in" / "out", allow_out_inside_input=True)
    assert [i.source for i in items] == [tmp_path / "in" / "a.wav"] and not failures
    with pytest.raises(BatchUsageError, match="aac"):
        plan_batch([tmp_path / "in"], tmp_path / "elsewhere", audio_format="aac")


def test_write_failures_writes_csv_and_removes_a_stale_one(tmp_path):
    path = write_failures(tmp_path, [(Path("a, b.wav"), 'is "odd"\nreally')])
    assert failures_csv(path) == {"a, b.wav": 'is "odd"\nreally'}
    assert write_failures(tmp_path, []) is None and not path.exists()


CRASHING_TASK = '''
import os

def start():
    pass

def convert(name):
    if name == "crash.wav":
        os._exit(3)
    return name.upper()
'''


def test_a_worker_that_dies_fails_only_its_own_file(tmp_path, monkeypatch):
    (tmp_path / "crashing_task.py").write_text(CRASHING_TASK)
    monkeypatch.syspath_prepend(str(tmp_path))
    import crashing_task

    names = ["a.wav", "b.wav", "crash.wav", "c.wav", "d.wav", "e.wav"]
    results = dict(in_worker_pool(names, 2, (crashing_task.start, ()), crashing_task.convert))
    assert results.pop("crash.wav").reason == WORKER_DIED
    assert results == {name: name.upper() for name in names if name != "crash.wav"}


def test_every_file_converted_or_failed_reports_progress(tmp_path):
    """The page's progress bar: on_file(done, total) after each file, failures included, ending at total."""
    from voiceconv.batch import run_batch
    from voiceconv.web.page import _progress_reporter

    write_tone(tmp_path / "in" / "a.wav", 1.2)
    write_tone(tmp_path / "in" / "b.wav", 1.2, seed=1)
    (tmp_path / "in" / "broken.wav").write_bytes(b"not audio")
    items, failures = plan_batch([tmp_path / "in"], tmp_path / "out", glob="*", audio_format="wav")
    calls, shown = [], []
    reporter = _progress_reporter(lambda fraction, desc, unit: shown.append((fraction, desc, unit)))
    report = run_batch(MODEL, items, progress=False, planning_failures=failures,
                       on_file=lambda done, total: (calls.append((done, total)), reporter(done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)] and len(report.converted) == 2 and len(report.failures) == 1
    assert shown[0][0] == (1, 3) and shown[0][2] == "files" and "s left" in shown[0][1]
    assert shown[-1][1] == "3 of 3 files converted"
