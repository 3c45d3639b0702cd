"""`voiceconv audit` and `voiceconv faces audit`: planted outliers are flagged with a reason, clean folders pass,
the folders are only read, and `voiceconv train` warns about flagged recordings."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from conftest import REPO, SAMPLES, harmonic_tone
from voiceconv import audit
from voiceconv.audit import AuditReport, FileAudit, audit_folders, audit_speaker_folder
from voiceconv.cli import main

RATE = 16000
FACE_MODEL = SAMPLES / "models" / "faces_vae.safetensors"


def speech_like(seconds: float, seed: int, rate: int = RATE, f0: float = 140.0) -> np.ndarray:
    """Syllable-like harmonic bursts with pauses over a faint noise floor ``[samples]``: speech's dynamics."""
    rng = np.random.default_rng(seed)
    parts, total = [], 0.0
    while total < seconds:
        burst = harmonic_tone(rng.uniform(0.15, 0.35), rate, f0 * rng.uniform(0.9, 1.1), seed)
        parts += [burst * np.hanning(len(burst)), np.zeros(int(rng.uniform(0.05, 0.2) * rate), np.float32)]
        total += (len(parts[-2]) + len(parts[-1])) / rate
    wav = np.concatenate(parts)
    return (wav + 1e-4 * rng.standard_normal(len(wav))).astype(np.float32)


@pytest.fixture
def clean_folder(tmp_path) -> Path:
    folder = tmp_path / "speaker"
    folder.mkdir()
    for i in range(10):
        sf.write(folder / f"clean_{i:02d}.wav", speech_like(2.0 + 0.2 * i, seed=i), RATE)
    return folder


def plant(folder: Path) -> dict[str, str]:
    """Outliers beside the clean files: {file name: a word its reason must hold}."""
    rng = np.random.default_rng(99)
    sf.write(folder / "noise.wav", (0.05 * rng.standard_normal(2 * RATE)).astype(np.float32), RATE)
    sf.write(folder / "clipped.wav", np.clip(speech_like(2.0, seed=1) * 30, -1, 1), RATE)
    sf.write(folder / "rate.wav", speech_like(2.0, seed=2, rate=22050), 22050)
    sf.write(folder / "short.wav", speech_like(0.2, seed=3), RATE)
    sf.write(folder / "broken.wav", speech_like(2.0, seed=4), RATE)
    data = (folder / "broken.wav").read_bytes()
    (folder / "broken.wav").write_bytes(data[: len(data) // 2])
    (folder / "notes.mp3").write_text("not audio at all")
    return {"noise.wav": "noisy", "clipped.wav": "clipped", "rate.wav": "sample rate", "short.wav": "too short",
            "broken.wav": "unreadable", "notes.mp3": "unreadable"}


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))}


def test_a_clean_folder_passes(clean_folder, tmp_path, capsys):
    report = audit_speaker_folder(clean_folder, needed_minutes=0.2, methods=())
    assert len(report.files) == 10 and report.flagged == []
    assert all(f.seconds > 1.9 and f.sample_rate == RATE and f.snr_db > 15 and f.clipped_share == 0
               for f in report.files)
    assert report.speakers[0].enough and report.speakers[0].minutes > 0.2
    assert main(["audit", str(clean_folder), "--methods", "checks", "--csv", str(tmp_path / "a.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "a.csv").open()))
    assert len(rows) == 10 and {r["flagged"] for r in rows} == {"no"} and {r["reason"] for r in rows} == {""}
    assert "# Training data audit" in capsys.readouterr().out


def test_planted_outliers_are_flagged_with_their_reason(clean_folder, tmp_path, capsys):
    expected = plant(clean_folder)
    before = snapshot(clean_folder)
    code = main(["audit", str(clean_folder), "--methods", "checks", "--csv", str(tmp_path / "audit.csv"),
                 "--markdown", str(tmp_path / "audit.md")])
    assert code == 1
    with (tmp_path / "audit.csv").open(newline="") as f:
        reader = csv.reader(f)
        assert next(reader) == ["file", "flagged", "reason"]
        rows = {Path(file).name: (flagged, reason) for file, flagged, reason in reader}
    assert len(rows) == 16
    for name, word in expected.items():
        assert rows[name][0] == "yes" and word in rows[name][1], (name, rows[name])
    assert all(rows[f"clean_{i:02d}.wav"] == ("no", "") for i in range(10))
    out = capsys.readouterr().out
    assert "## Flagged files" in out and "noise.wav" in out and out == (tmp_path / "audit.md").read_text()
    assert snapshot(clean_folder) == before  # the audited folder is only read


def test_the_speaker_summary_counts_unflagged_minutes_against_the_need(clean_folder):
    plant(clean_folder)
    report = audit_folders([clean_folder], needed_minutes=5.0, methods=())
    summary = report.speakers[0]
    clean_seconds = sum(f.sound_seconds for f in report.files if f.path.name.startswith("clean"))
    assert summary.files == 16 and summary.flagged == 6
    assert summary.minutes == pytest.approx(clean_seconds / 60, abs=0.01) and not summary.enough
    assert "NO: add recordings" in report.markdown()


def test_a_missing_folder_is_a_one_line_error(tmp_path, capsys):
    assert main(["audit", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nowhere" in err and "not a folder" in err


def test_a_folder_without_audio_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["audit", str(tmp_path / "empty")]) == 1
    assert "no audio files" in capsys.readouterr().err


def test_needed_minutes_come_from_the_recipe_unless_given():
    from voiceconv.cli.audit import needed_minutes

    assert needed_minutes(REPO / "recipes" / "kathleen_rms.yaml", None) == pytest.approx(1.0)  # min_seconds: 60
    assert needed_minutes(REPO / "recipes" / "kathleen_rms.yaml", 7.5) == 7.5
    assert needed_minutes(None, None) == audit.DEFAULT_NEEDED_MINUTES


def test_the_cache_gives_back_the_same_report_without_reading_the_audio(clean_folder, tmp_path, monkeypatch):
    plant(clean_folder)
    first = audit_folders([clean_folder], methods=(), cache_dir=tmp_path / "cache")
    monkeypatch.setattr(audit.folders, "measure_file", lambda *args: pytest.fail("audio read again"))
    again = audit_folders([clean_folder], methods=(), cache_dir=tmp_path / "cache")
    assert [(f.path, f.reason, f.snr_db) for f in again.files] == [(f.path, f.reason, f.snr_db) for f in first.files]


def test_without_the_speaker_encoder_the_likelihood_check_runs_and_says_so(clean_folder, monkeypatch):
    from voiceconv.evaluate import speaker
    from voiceconv.evaluate.extras import MissingExtraError

    def missing():
        raise MissingExtraError("resemblyzer is needed but is not installed")

    monkeypatch.setattr(speaker, "SpeakerEncoder", missing)
    sf.write(clean_folder / "chirp.wav", music_like(2.5), RATE)
    report = audit_folders([clean_folder])
    assert report.methods == ["checks", "likelihood"] and "skipped" in report.notes[0]
    assert [f.path.name for f in report.flagged] == ["chirp.wav"] and "spectrograms" in report.flagged[0].reason


def music_like(seconds: float) -> np.ndarray:
    """Bell-like chords: pure high partials with sharp attacks, nothing like the speech_like harmonics."""
    t = np.arange(int(seconds * RATE)) / RATE
    notes = [np.sin(2 * np.pi * f * t) for f in (2093.0, 2637.0, 3136.0)]
    envelope = np.exp(-(t % 0.25) / 0.05)
    return (0.2 * envelope * sum(notes)).astype(np.float32)


def test_train_warns_about_flagged_recordings_before_it_starts(clean_folder, tmp_path, capsys):
    plant(clean_folder)
    other = tmp_path / "other"
    other.mkdir()
    for i in range(6):
        sf.write(other / f"b_{i}.wav", speech_like(2.0, seed=20 + i, f0=220.0), RATE)
    args = ["train", str(REPO / "recipes" / "kathleen_rms.yaml"), "--speaker-a", str(clean_folder),
            "--speaker-b", str(other), "--out", str(tmp_path / "run"), "--set", "data.held_back=1"]
    assert main(args) == 1  # then training refuses: far less than the recipe's 60 s of audio
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("voiceconv train: warning: ")]
    for name, word in plant_reasons().items():
        assert any(name in line and word in line for line in warnings), (name, err)
    assert "only" in err and "usable audio" in err
    assert main([*args, "--no-audit"]) == 1
    assert "warning" not in capsys.readouterr().err


def plant_reasons() -> dict[str, str]:
    return {"noise.wav": "noisy", "clipped.wav": "clipped", "broken.wav": "unreadable"}


def test_file_audit_reason_joins_every_reason():
    clean = FileAudit(Path("a.wav"), "s")
    both = FileAudit(Path("b.wav"), "s", reasons=["clipped: 5.0% of samples at full scale", "noisy: SNR 3 dB"])
    report = AuditReport([clean, both], [], ["checks"])
    assert not clean.flagged and clean.reason == ""
    assert report.flagged == [both] and both.reason == "clipped: 5.0% of samples at full scale; noisy: SNR 3 dB"
    assert report.csv_text().splitlines() == ["file,flagged,reason", "a.wav,no,",
                                              "b.wav,yes,clipped: 5.0% of samples at full scale; noisy: SNR 3 dB"]


@pytest.mark.shared_data
def test_another_voice_among_kathleen_recordings_is_flagged(shared_data, tmp_path):
    folder = tmp_path / "kathleen"
    folder.mkdir()
    for path in sorted((shared_data / "kathleen" / "wav").glob("*.flac"))[:24]:
        (folder / path.name).write_bytes(path.read_bytes())
    for speaker in ("TM1", "SF1"):
        source = shared_data / "vcc2016" / "train" / speaker / "100010.flac"
        (folder / f"zz_{speaker}.flac").write_bytes(source.read_bytes())
    report = audit_folders([folder])
    assert report.methods == ["checks", "embedding"]
    assert sorted(f.path.name for f in report.flagged) == ["zz_SF1.flac", "zz_TM1.flac"]
    assert all("unlike the folder's speaker" in f.reason for f in report.flagged)


def test_faces_audit_flags_broken_images_and_a_non_face(tmp_path, capsys):
    folder = tmp_path / "faces"
    folder.mkdir()
    for path in sorted((SAMPLES / "faces").glob("*.*")):
        if path.suffix in (".jpg", ".png"):
            (folder / path.name).write_bytes(path.read_bytes())
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), np.uint8)).save(folder / "zz_static.png")
    (folder / "zz_truncated.jpg").write_bytes((SAMPLES / "faces" / "caltech_image_0081.jpg").read_bytes()[:600])
    before = snapshot(folder)
    assert main(["faces", "audit", str(folder), "--model", str(FACE_MODEL), "--csv", str(tmp_path / "f.csv")]) == 1
    rows = {Path(r["file"]).name: r for r in csv.DictReader((tmp_path / "f.csv").open())}
    assert rows["zz_truncated.jpg"]["flagged"] == "yes" and "unreadable" in rows["zz_truncated.jpg"]["reason"]
    assert rows["zz_static.png"]["flagged"] == "yes" and "unlike a face" in rows["zz_static.png"]["reason"]
    assert [name for name, r in rows.items() if r["flagged"] == "yes"] == ["zz_static.png", "zz_truncated.jpg"]
    assert "# Face folder audit" in capsys.readouterr().out
    assert snapshot(folder) == before


def test_the_audit_library_loads_no_training_code_and_no_gradio():
    import json
    import subprocess
    import sys

    probe = ("import json, sys; import voiceconv.audit, voiceconv.faces.audit; "
             "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('voiceconv.', 'gradio')))))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert "voiceconv.audit" in loaded
    training = ("voiceconv.train", "voiceconv.faces.recipes", "voiceconv.faces.tasks", "voiceconv.faces.debias")
    assert [m for m in loaded if m.startswith((*training, "gradio"))] == []
