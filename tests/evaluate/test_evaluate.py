"""`voiceconv evaluate`: report structure, robustness to missing/broken files, baselines, CLI end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import SAMPLES

pytest.importorskip("resemblyzer", reason="needs the eval extra: pip install 'voiceconv[eval]'")

from voiceconv.audio import world  # noqa: E402
from voiceconv.audio.io import load_audio, save_audio  # noqa: E402
from voiceconv.audio.knn import KnnConfig  # noqa: E402
from voiceconv.evaluate.harness import (  # noqa: E402
    BASELINE_CEILING, BASELINE_KNN, BASELINE_TEACHER, BASELINE_WORLD, BASELINE_PITCH_SHIFT, BASELINE_SOURCE, SYSTEM,
    EvaluationRequest, EvaluationResult, evaluate, knn_baselines)
from voiceconv.data.transcripts import read_transcripts  # noqa: E402
from voiceconv.evaluate.report import build_report, markdown, write_report  # noqa: E402
from voiceconv.errors import VoiceconvError  # noqa: E402

KATHLEEN = sorted((SAMPLES / "audio").glob("kathleen_*.flac"))


@pytest.fixture
def kathleen_dirs(tmp_path):
    """Source = the two bundled clips; converted = one of them louder plus a corrupt file; transcripts for both."""
    source, converted = tmp_path / "source", tmp_path / "converted"
    source.mkdir()
    for path in KATHLEEN:
        shutil.copy(path, source / path.name)
    save_audio(converted / f"{KATHLEEN[0].stem}.wav", load_audio(KATHLEEN[0], 16000) * 0.5, 16000)
    (converted / f"{KATHLEEN[1].stem}.wav").write_bytes(b"RIFF\x00\x00garbage")
    (tmp_path / "texts.tsv").write_text(
        "kathleen_arctic_a0591\tWe are both children together.\n"
        "kathleen_arctic_a0592\tIt's only his indigestion I find fault with.\n")
    return source, converted, tmp_path / "texts.tsv"


def test_report_lists_metrics_and_skips_broken_or_missing_files(tmp_path, kathleen_dirs):
    source, converted, texts = kathleen_dirs
    request = EvaluationRequest(source_dir=source, target_ref_dir=source, converted_dir=converted,
                                parallel_dir=source, transcripts=texts)
    result = evaluate(request)
    report = write_report(result, {"test": True}, tmp_path / "out")
    rows = result.systems[SYSTEM]
    assert [row["file"] for row in rows] == [KATHLEEN[0].stem]
    row = rows[0]
    assert row["sim_target"] > 0.9  # same speaker, only the volume changed
    assert row["mcd_db"] < 1.0  # same recording at half volume: c0 excluded, so almost no distortion
    assert row["wer"] < 0.5 and 1.0 <= row["dnsmos_ovrl"] <= 5.0
    reasons = " ".join(s["reason"] for s in report["skipped"])
    assert "converted" in reasons and "no converted file" in reasons  # corrupt file reported, its utterance missing
    for name in ("report.json", "report.md", "distributions.png", "similarity.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert set(saved) >= {"summary", "utterances", "definitions", "skipped", "speakers"}
    assert saved["summary"][SYSTEM]["utterances"] == 1
    assert "mel-cepstral distortion" in (tmp_path / "out" / "report.md").read_text()


def test_convert_function_and_transcripts_with_missing_ids(tmp_path, kathleen_dirs):
    source, _, texts = kathleen_dirs
    texts.write_text("kathleen_arctic_a0591\tWe are both children together.\n")
    request = EvaluationRequest(source_dir=source, target_ref_dir=source, transcripts=texts)
    result = evaluate(request, convert=lambda wav, rate: wav)
    assert len(result.systems[SYSTEM]) == 2
    assert sum("wer" in row for row in result.systems[SYSTEM]) == 1
    assert any("no transcript" in s["reason"] for s in result.skipped)
    # F0 accuracy: the same voice asked for its own pitch is on it; asked for +3 semitones, it is 300 cents short
    assert all(row["f0_off_50c"] < 0.05 and abs(row["f0_median_cents"]) < 5 for row in result.systems[SYSTEM])
    shifted = evaluate(EvaluationRequest(source_dir=source, target_ref_dir=source, pitch="+3"),
                       convert=lambda wav, rate: wav)
    assert all(row["f0_median_cents"] == pytest.approx(-300, abs=5) and row["f0_off_50c"] > 0.95
               for row in shifted.systems[SYSTEM])


def test_exactly_one_converted_side_is_required(kathleen_dirs):
    source, converted, _ = kathleen_dirs
    with pytest.raises(VoiceconvError, match="exactly one"):
        evaluate(EvaluationRequest(source_dir=source, target_ref_dir=source))
    with pytest.raises(VoiceconvError, match="exactly one"):
        evaluate(EvaluationRequest(source_dir=source, target_ref_dir=source, converted_dir=converted),
                 convert=lambda wav, rate: wav)


def test_transcript_file_errors_name_the_line(tmp_path):
    (tmp_path / "t.tsv").write_text("a\thello\nno tab here\n")
    with pytest.raises(VoiceconvError, match="t.tsv:2"):
        read_transcripts(tmp_path / "t.tsv")


@pytest.mark.shared_data
def test_cli_with_baselines_on_vcc2016(tmp_path, shared_data):
    """SF1 -> TM1 with the source itself as 'converted': baselines must order as the reference figures say."""
    dev = shared_data / "vcc2016" / "dev"
    source, parallel = tmp_path / "SF1", tmp_path / "TM1"
    for folder, speaker in ((source, "SF1"), (parallel, "TM1")):
        folder.mkdir()
        for name in ("200001.flac", "200002.flac"):
            shutil.copy(dev / speaker / name, folder / name)
    out = tmp_path / "report"
    result = subprocess.run(
        [sys.executable, "-m", "voiceconv", "evaluate", "--source", source, "--converted", source,
         "--target-ref", dev / "TM1", "--source-ref", dev / "SF1", "--parallel", parallel, "--baselines",
         "--max-refs", "5", "-o", out], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "report.json").read_text())["summary"]
    report = json.loads((out / "report.json").read_text())
    assert set(summary) == {SYSTEM, BASELINE_SOURCE, BASELINE_PITCH_SHIFT, BASELINE_CEILING, BASELINE_WORLD, BASELINE_KNN}
    ceiling, unconverted = summary[BASELINE_CEILING], summary[BASELINE_SOURCE]
    assert ceiling["success_rate"] == 1.0 and unconverted["success_rate"] == 0.0
    assert ceiling["mcd_db"]["mean"] < 5.0 < 8.0 < unconverted["mcd_db"]["mean"]
    assert summary[BASELINE_PITCH_SHIFT]["log_f0_mean"]["mean"] < unconverted["log_f0_mean"]["mean"] - 0.3
    # The WORLD voice changer lands the F0 on TM1's and keeps the sound: MCD and DNSMOS near the source's.
    world_vc, target = summary[BASELINE_WORLD], report["speakers"]["target"]
    # 2 sentences against statistics of 5 reference files: within 0.2 of TM1's log-F0 mean (SF1 is 0.55 away)
    assert abs(world_vc["log_f0_mean"]["mean"] - target["log_f0_mean"]) < 0.2
    assert abs(unconverted["log_f0_mean"]["mean"] - target["log_f0_mean"]) > 0.4
    assert world_vc["mcd_db"]["mean"] < unconverted["mcd_db"]["mean"] + 0.5
    assert world_vc["dnsmos_ovrl"]["mean"] > unconverted["dnsmos_ovrl"]["mean"] - 0.5
    assert 0.76 <= report["baselines"][BASELINE_WORLD]["warp"] < 1.0  # female -> male: formants move down
    assert "| target-vocoded |" in result.stdout and "| world-vc |" in result.stdout
    assert "baseline world-vc: fitted envelope warp" in (out / "report.md").read_text()
    # The kNN voice changer keeps world-vc's pitch and moves the envelope toward TM1's frames.
    knn_vc = summary[BASELINE_KNN]
    assert abs(knn_vc["log_f0_mean"]["mean"] - world_vc["log_f0_mean"]["mean"]) < 0.05
    assert knn_vc["mcd_db"]["mean"] < world_vc["mcd_db"]["mean"]
    assert "| knn-vc |" in result.stdout and "nearest of" in (out / "report.md").read_text()


def test_a_model_at_another_rate_is_scored_at_the_harness_rate():
    """Converter returns the model's rate (22.05 kHz here); the metrics get audio at the rate they passed."""
    from types import SimpleNamespace

    from voiceconv.cli.evaluate import scored_at_input_rate

    class TwiceAsFast:  # converts by returning a 22.05 kHz tone of the input's duration
        features = SimpleNamespace(sample_rate=22050)

        def convert(self, wav, rate, direction, pitch):
            seconds = len(wav) / rate
            return np.sin(2 * np.pi * 220 * np.arange(int(seconds * 22050)) / 22050).astype(np.float32)

    convert = scored_at_input_rate(TwiceAsFast(), "a2b", "auto")
    out = convert(np.zeros(16000, dtype=np.float32), 16000)
    assert out.dtype == np.float32 and len(out) == 16000  # one second at 16 kHz
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) - 220) <= 1  # still a 220 Hz tone: resampled, not relabelled


def test_a_models_own_kNN_teacher_is_scored_beside_it():
    """The knn-teacher baseline renders the pull the model was trained toward, with its settings in the report
    (without a teacher there is no such row: test_cli_with_baselines_on_vcc2016)."""
    waves = [load_audio(path, 16000) for path in KATHLEEN]
    alignment = world.fit_alignment(waves[:1], waves[1:], 16000)
    teacher = KnnConfig(blend=0.75, smooth_frames=7, phone_weight=30.0)
    sources = {"clip": waves[0]}
    fitted, converted = knn_baselines({BASELINE_KNN: KnnConfig(), BASELINE_TEACHER: teacher, "absent": None},
                                      waves[:1], waves, alignment, sources)
    assert set(converted) == set(fitted) == {BASELINE_KNN, BASELINE_TEACHER}
    assert all(len(converted[name]["clip"]) == len(waves[0]) for name in converted)
    assert not np.allclose(converted[BASELINE_TEACHER]["clip"], converted[BASELINE_KNN]["clip"])
    assert (fitted[BASELINE_TEACHER]["blend"], fitted[BASELINE_TEACHER]["smooth_frames"],
            fitted[BASELINE_TEACHER]["phone_weight"]) == (0.75, 7, 30.0)
    assert fitted[BASELINE_KNN]["phone_weight"] == 0.0  # the standing baseline is unchanged
    result = EvaluationResult(baselines=fitted)
    text = markdown(build_report(result, {}))
    assert "baseline knn-teacher: the world-vc alignment, each envelope moved 0.75 of the way" in text
    assert "averaged over 7 frames, matched on phones too (weight 30)" in text


def test_the_teacher_is_read_from_the_models_recipe(capsys):
    """The shipped model's recipe pull becomes the teacher; a broken or absent one leaves the row out, saying so."""
    from voiceconv.cli.evaluate import model_teacher
    from voiceconv.modelfiles.format import read_header

    header = read_header(SAMPLES / "models" / "kathleen_rms.safetensors")
    pull = header["training"]["recipe"]["data"]["pull"]
    assert model_teacher(header, "model") == KnnConfig(**pull)
    broken = {"training": {"recipe": {"model": {"pull_weight": 30.0}, "data": {"pull": {"k": 0}}}}}
    assert model_teacher(broken, "stranger.safetensors") is None
    assert "stranger.safetensors" in capsys.readouterr().err
    for header in ({}, {"training": []}, {"training": {"recipe": {"model": {"pull_weight": 0.0}}}}):
        assert model_teacher(header, "model") is None
