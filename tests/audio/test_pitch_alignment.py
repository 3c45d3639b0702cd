"""Pitch alignment: the WORLD voice changer, pitch-aligned models, --pitch, and model selection on held-back data."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from conftest import harmonic_tone, mel_image
from voiceconv.audio import world
from voiceconv.audio.features import FeatureConfig
from voiceconv.audio.io import save_audio
from voiceconv.convert import Converter
from voiceconv.errors import ConfigError
from voiceconv.errors import ModelFileError
from voiceconv.modelfiles.format import load_model_file
from voiceconv.models.base import TrainableModel
from voiceconv.models.cyclegan import CycleGANConfig
from voiceconv.nn import Generator212
from voiceconv.train.loop import TrainConfig, fit
from voiceconv.runfolder import read_history
from voiceconv.train.selection import best_entry, proxy_score, selection_score
from voiceconv.train.voice import VoiceDataConfig, VoiceRecipe, train_voice

RATE = 16000
TINY = CycleGANConfig(generator_channels=4, residual_channels=16, residual_blocks=1, discriminator_channels=4,
                      discriminator_layers=2, generator_output="envelope", output_bands=4)


def median_f0(wav: np.ndarray) -> float:
    f0, _ = world.extract_f0(wav, RATE)
    return float(np.median(f0[f0 > 0]))


def semitones(ratio: float) -> float:
    return 12.0 * math.log2(ratio)


# --- the WORLD voice changer ----------------------------------------------------------------------

def test_a_speaker_mapped_onto_its_own_statistics_comes_back_nearly_unchanged():
    wav = harmonic_tone(1.5, f0=150.0)
    own = world.speaker_profile([wav], RATE).pitch
    same = world.change_voice(wav, RATE, world.Alignment(own, own, warp=1.0))
    assert same.shape == wav.shape and same.dtype == np.float32
    assert abs(semitones(median_f0(same) / median_f0(wav))) < 0.1
    features = FeatureConfig(n_mels=64)
    before, after = mel_image(wav, features)[0, :, 4:-4], mel_image(same, features)[0, :, 4:-4]
    loud = before > -0.2  # the harmonics, not the noise floor between them
    assert (after[loud] - before[loud]).abs().mean() < 0.06  # under ~3.5 dB on harmonic bins


def test_converted_f0_lands_on_the_target_mean():
    wav = harmonic_tone(1.5, f0=140.0)
    source = world.speaker_profile([wav], RATE).pitch
    target = world.PitchStats(log_f0_mean=math.log(230.0), log_f0_std=0.05)
    converted = world.change_voice(wav, RATE, world.Alignment(source, target))
    f0, _ = world.extract_f0(converted, RATE)
    assert abs(np.log(f0[f0 > 0]).mean() - target.log_f0_mean) < 0.04  # within 4 %


def test_the_envelope_warp_is_fitted_back_from_a_known_warp():
    bins = 513
    frequency = np.arange(bins) / (bins - 1) * 8000
    formants = sum(np.exp(-((frequency - f) / 180.0) ** 2) for f in (700, 1200, 2500, 3500))
    source = world.SpeakerWorldProfile(world.PitchStats(5.0, 0.1), np.log(formants + 1e-3))
    warped = world.warp_envelope(np.exp(source.mean_log_envelope)[None], 0.88)[0]
    target = world.SpeakerWorldProfile(world.PitchStats(4.6, 0.1), np.log(warped) + 3.0)  # a level difference too
    assert world.fit_warp(source, target, RATE) == pytest.approx(0.88, abs=0.011)


@pytest.mark.parametrize("text, shift", [("auto", None), (None, None), ("source", 0.0), ("+2", 2.0), ("-3.5", -3.5),
                                         (1.25, 1.25)])
def test_pitch_settings_parse(text, shift):
    assert world.parse_pitch(text) == shift


@pytest.mark.parametrize("text", ["up", "+30", "nan", "inf", ""])
def test_bad_pitch_settings_are_refused(text):
    with pytest.raises(ConfigError, match="pitch"):
        world.parse_pitch(text)


def test_envelope_generator_starts_as_the_identity_and_keeps_harmonics():
    net = Generator212(1, 1, height=32, base_channels=4, residual_channels=8, n_residual=1, output="envelope", bands=4)
    x = torch.randn(2, 1, 32, 16)
    assert torch.equal(net(x), x)
    torch.nn.init.normal_(net.output.weight)
    delta = net(x) - x  # [2, 1, 32, 16]
    rows = delta[0, 0, :, 5]
    assert (rows[1:] - rows[:-1]).abs().max() < 0.5 * rows.abs().max()  # smooth along frequency: no row-scale detail


def test_envelope_correction_averaged_over_frames_cannot_change_faster():
    net = Generator212(1, 1, height=32, base_channels=4, residual_channels=8, n_residual=1, output="envelope", bands=4,
                       frames=9)
    x = torch.randn(2, 1, 32, 40)
    assert torch.equal(net(x), x)  # still the identity at the start
    torch.nn.init.normal_(net.output.weight)
    smoothed = net(x) - x  # [2, 1, 32, 40]
    net.frames = 1
    raw = net(x) - x
    step = lambda d: (d[..., 1:] - d[..., :-1]).abs().mean()  # noqa: E731  frame-to-frame change
    assert step(smoothed) < 0.4 * step(raw)
    torch.testing.assert_close(smoothed[..., 20], raw[..., 16:25].mean(-1))  # a centred 9-frame average
    with pytest.raises(ValueError, match="odd number of frames"):
        Generator212(1, 1, height=32, output="envelope", frames=4)


# --- pitch-aligned models ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def aligned_model(tmp_path_factory) -> Path:
    """A tiny pitch-aligned model between a high (240 Hz) and a low (100 Hz) synthetic speaker, 2 steps; 1 file each
    held back and scored every step."""
    root = tmp_path_factory.mktemp("aligned")
    for name, f0 in (("high", 240.0), ("low", 100.0)):
        for i in range(4):
            save_audio(root / name / f"{i}.wav", harmonic_tone(1.5, f0=f0 + 7 * i, seed=i), RATE)
    recipe = VoiceRecipe(features=FeatureConfig(), model=TINY,  # 128 mels: enough to resolve a 100 Hz voice
                         data=VoiceDataConfig(crop_frames=16, min_seconds=2.0, media_utterances=1, align="f0",
                                              held_back=1),
                         train=TrainConfig(steps=2, batch_size=2, log_every=1, media_every=100, checkpoint_every=100,
                                           validate_every=1, threads=1))
    outcome = train_voice(dataclasses.replace(recipe, data=dataclasses.replace(
        recipe.data, speaker_a=str(root / "high"), speaker_b=str(root / "low"))), root / "run")
    return outcome.model_path


def test_model_files_carry_the_alignment(aligned_model):
    tensors, header = load_model_file(aligned_model)
    alignment = world.Alignment.from_dict(header["alignment"])
    assert alignment.source.median_hz == pytest.approx(250, rel=0.1)  # the 3 training files: 240-254 Hz
    assert alignment.target.median_hz == pytest.approx(110, rel=0.1)
    assert alignment.warp == 1.0  # align: f0 fits no warp
    assert {"stats.a2b.mean", "stats.b2a.std"} <= set(tensors)
    assert header["model"]["generator_output"] == "envelope"


def test_auto_pitch_lands_on_the_target_and_plus_n_moves_the_source_by_n_semitones(aligned_model):
    converter = Converter(aligned_model)
    wav = harmonic_tone(2.0, f0=245.0, seed=5)
    own = median_f0(wav)
    auto = median_f0(converter.convert(wav, RATE, "a2b", pitch="auto"))
    assert abs(semitones(auto / 110.0)) < 1.0  # the low speaker's pitch
    for shift in (3.0, -2.5):
        moved = median_f0(converter.convert(wav, RATE, "a2b", pitch=f"{shift:+g}"))
        assert abs(semitones(moved / own) - shift) < 0.5
    source = median_f0(converter.convert(wav, RATE, "a2b", pitch="source"))
    assert abs(semitones(source / own)) < 0.5


def test_model_selection_ran_on_held_back_files_and_kept_the_best(aligned_model):
    run = aligned_model.parent
    history = read_history(run)
    assert [entry["step"] for entry in history] == [0, 1, 2]  # the untrained model is a candidate too
    best = load_model_file(run / "best.safetensors")[1]["training"]["selected"]
    assert best == best_entry(history)


def test_files_from_before_alignment_still_load_and_take_pitch_shifts(aligned_model, tmp_path):
    tensors, header = load_model_file(aligned_model)
    old_tensors = {k: v for k, v in tensors.items() if not k.startswith(("stats.a2b", "stats.b2a"))}
    old_header = {k: v for k, v in header.items() if k != "alignment"}
    old_header["model"] = {k: v for k, v in header["model"].items() if k not in ("generator_output", "output_bands")}
    old_header["model"]["generator_output"] = "envelope"  # the weights are an envelope generator's
    old = tmp_path / "old.safetensors"
    save_file(old_tensors, str(old), metadata={"voiceconv": json.dumps(old_header)})
    converter = Converter(old)
    assert converter.alignment("a2b") is None  # its generator moves the pitch itself
    assert converter.alignment("a2b", "+2").pitch_shift == 2.0  # a shift applies to its input
    wav = harmonic_tone(2.0, f0=245.0, seed=5)
    plain, shifted = converter.convert(wav, RATE, "a2b"), converter.convert(wav, RATE, "a2b", pitch="+2")
    assert plain.shape == shifted.shape == wav.shape and np.isfinite(shifted).all()
    assert not np.allclose(plain, shifted, atol=1e-3)


def test_a_damaged_alignment_field_is_one_line_naming_the_file(aligned_model, tmp_path):
    tensors, header = load_model_file(aligned_model)
    header["alignment"]["warp"] = "wide"
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata={"voiceconv": json.dumps(header)})
    with pytest.raises(ModelFileError, match="bad.safetensors.*alignment"):
        Converter(bad)
    wav = tmp_path / "in.wav"
    save_audio(wav, harmonic_tone(1.0), RATE)
    result = subprocess.run([sys.executable, "-m", "voiceconv", "convert", "--model", bad, wav, "-o", tmp_path / "o"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "alignment" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_refuses_a_bad_pitch_as_a_usage_error(aligned_model, tmp_path):
    wav = tmp_path / "in.wav"
    save_audio(wav, harmonic_tone(1.0), RATE)
    result = subprocess.run([sys.executable, "-m", "voiceconv", "convert", "--model", aligned_model, wav,
                             "-o", tmp_path / "o", "--pitch", "higher"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--pitch" in result.stderr and not (tmp_path / "o").exists()


# --- model selection -------------------------------------------------------------------------------

def test_best_entry_picks_the_highest_finite_score_and_the_earliest_of_ties():
    history = [{"step": 250, "score": 0.1}, {"step": 500, "score": 0.4}, {"step": 750, "score": math.nan},
               {"step": 1000, "score": 0.4}, {"step": 1250, "score": -0.2}]
    assert best_entry(history)["step"] == 500
    assert best_entry([{"step": 1, "score": math.nan}]) is None


def test_the_criterion_rewards_identity_and_penalises_lost_words_and_sound():
    assert selection_score(0.2, 0.3, 3.0) > selection_score(0.1, 0.3, 3.0)  # more identity
    assert selection_score(0.2, 0.3, 3.0) > selection_score(0.3, 0.6, 3.0)  # not at the cost of the words
    assert selection_score(0.2, 0.3, 3.0) > selection_score(0.2, 0.3, 2.5)
    assert proxy_score(2.0, 1.0, 0.9) > proxy_score(1.0, 2.0, 0.9)
    assert proxy_score(2.0, 1.0, 0.9) > proxy_score(2.0, 1.0, 0.5)


class _Scored(TrainableModel):
    """A model that learns nothing; its task reports a fixed sequence of validation scores."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.optimizers = {"sgd": torch.optim.SGD([self.weight], lr=0.1)}

    def train_step(self, batch):
        self.optimize((self.weight - 1).pow(2).sum(), self.optimizers["sgd"], [self.weight])
        return {"loss": float(self.weight.detach())}


class _ScoredTask:
    def __init__(self, scores):
        self.model, self.scores, self.exports = _Scored(), list(scores), []

    def batch(self, batch_size, generator):
        return {"x": torch.zeros(1)}

    def log_media(self, writer, step):
        pass

    def validate(self):
        return {"score": self.scores.pop(0)}

    def export(self, path: Path, info: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(info))
        self.exports.append((path.name, info["steps"]))


def test_the_loop_keeps_the_best_step_of_a_constructed_sequence(tmp_path):
    task = _ScoredTask([0.0, 0.1, 0.5, 0.3, 0.5, -1.0])  # steps 0 (before training), 2, 4, 6, 8, 10
    config = TrainConfig(steps=10, batch_size=1, log_every=100, media_every=100, checkpoint_every=100,
                         validate_every=2, threads=1)
    fit(task, config, tmp_path)
    assert [step for name, step in task.exports if name == "best.safetensors"] == [0, 2, 4]
    selected = json.loads((tmp_path / "best.safetensors").read_text())["selected"]
    assert selected["step"] == 4 and selected["score"] == 0.5
    assert [entry["step"] for entry in read_history(tmp_path)] == [0, 2, 4, 6, 8, 10]


def test_a_resumed_run_keeps_selecting_against_the_earlier_scores(tmp_path):
    config = TrainConfig(steps=4, batch_size=1, log_every=100, media_every=100, checkpoint_every=100,
                         validate_every=2, threads=1)
    fit(_ScoredTask([0.0, 0.1, 0.9]), config, tmp_path)  # steps 0, 2, 4: the best is step 4
    resumed = _ScoredTask([0.5, 0.3])  # steps 6 and 8 score below step 4
    fit(resumed, dataclasses.replace(config, steps=8), tmp_path, resume=True)
    assert not [step for name, step in resumed.exports if name == "best.safetensors"]
    assert json.loads((tmp_path / "best.safetensors").read_text())["selected"]["step"] == 4


# --- analysis settings (issue 22): old model files analyse exactly as before ---------------------------

def test_a_header_from_before_the_analysis_settings_reads_as_the_old_analysis():
    stored = {"source": {"log_f0_mean": 5.0, "log_f0_std": 0.15}, "target": {"log_f0_mean": 4.6, "log_f0_std": 0.13},
              "warp": 0.87, "world": {"f0_method": "dio", "frame_period_ms": 10.0, "dio_speed": 1}}
    settings = world.Alignment.from_dict(stored).settings
    assert (settings.stonemask, settings.envelope_period_ms, settings.aperiodicity_period_ms) == (True, None, None)
    assert world.Alignment.from_dict(stored).to_dict() == stored  # written back without the new fields
    coarse = world.Alignment.from_dict(stored).settings
    coarse = dataclasses.replace(coarse, envelope_period_ms=16.0, aperiodicity_period_ms=16.0, stonemask=False)
    aligned = dataclasses.replace(world.Alignment.from_dict(stored), settings=coarse)
    assert world.Alignment.from_dict(json.loads(json.dumps(aligned.to_dict()))) == aligned
    with pytest.raises(ValueError, match="WORLD settings"):
        world.Alignment.from_dict({**stored, "world": {"envelope_period_ms": 0.1}})


def test_the_old_analysis_is_pyworlds_own_calls_bit_for_bit():
    import pyworld

    wav = harmonic_tone(1.0, f0=140.0).astype(np.float64)
    frames = world.analyse(wav, RATE, world.WorldSettings())
    f0, times = pyworld.dio(wav, RATE, f0_floor=world.F0_FLOOR_HZ, f0_ceil=world.F0_CEIL_HZ, frame_period=10.0)
    f0 = pyworld.stonemask(wav, f0, times, RATE)
    assert np.array_equal(frames.f0, f0)
    assert np.array_equal(frames.envelope, pyworld.cheaptrick(wav, f0, times, RATE, f0_floor=world.F0_FLOOR_HZ))
    assert np.array_equal(frames.aperiodicity, pyworld.d4c(wav, f0, times, RATE))


def test_aperiodicity_on_a_second_thread_gives_the_same_frames():
    from concurrent.futures import ThreadPoolExecutor

    wav = np.concatenate([np.zeros(4000, np.float32), harmonic_tone(1.0, f0=150.0)])
    alone = world.analyse(wav, RATE)
    with ThreadPoolExecutor(1) as pool:
        beside = world.analyse(wav, RATE, pool=pool)
    for name in ("f0", "envelope", "aperiodicity"):
        np.testing.assert_array_equal(getattr(beside, name), getattr(alone, name))


def test_a_lead_in_only_leads_f0_in_and_the_frames_after_it_are_analysed_from_there():
    """Live chunks carry a lead-in only so that F0 is tracked with what came before: the frames returned start
    after it, with the F0 of the whole waveform, and their envelope and aperiodicity are those of the waveform
    from there on."""
    wav = np.concatenate([np.zeros(1600, np.float32), harmonic_tone(1.0, f0=150.0)])
    full = world.analyse(wav, RATE)
    lead = world.analyse(wav, RATE, lead_in_frames=37)
    start = world.lead_in_samples(37, RATE, world.DEFAULT_SETTINGS)
    rest = world.analyse(wav[start:], RATE)
    np.testing.assert_array_equal(lead.f0, full.f0[37:])
    assert len(lead.envelope) == len(lead.aperiodicity) == len(lead.f0)
    # CheapTrick adds a tiny safeguard noise from a running generator: equal to ~1e-10, not bit for bit
    voiced = lead.f0 > 0
    assert voiced.any() and np.array_equal(voiced[5:-5], rest.f0[5:len(lead.f0) - 5] > 0)
    np.testing.assert_allclose(lead.envelope[voiced][5:-5], rest.envelope[:len(lead.f0)][voiced][5:-5], rtol=1e-3)
    with pytest.raises(ValueError, match="lead-in"):
        world.analyse(wav, RATE, lead_in_frames=10**6)


def test_the_voice_changer_is_silent_over_a_lead_in_and_converts_after_it():
    wav = harmonic_tone(1.0, f0=150.0)
    own = world.PitchStats(math.log(150.0), 0.1)
    alignment = world.Alignment(own, own, warp=1.1, pitch_shift=3.0)
    whole = world.change_voice(wav, RATE, alignment)
    led = world.change_voice(wav, RATE, alignment, lead_in=4000)
    assert len(led) == len(wav) and not led[:4000].any()
    after = slice(4000 + 1024, len(wav) - 1024)  # away from the edges of both analyses
    assert abs(np.log(np.std(led[after]) / np.std(whole[after]))) < 0.1  # as loud
    assert world.change_voice(wav[:500], RATE, alignment, lead_in=4000).shape == (500,)  # a lead-in past the end


def test_coarse_envelope_and_aperiodicity_follow_the_fine_ones_at_f0s_frames():
    wav = np.concatenate([np.zeros(4000, np.float32), harmonic_tone(1.0, f0=150.0), np.zeros(4000, np.float32)])
    fine = world.analyse(wav, RATE, world.WorldSettings())
    coarse = world.analyse(wav, RATE, world.WorldSettings(envelope_period_ms=16.0, aperiodicity_period_ms=16.0))
    assert coarse.envelope.shape == fine.envelope.shape and np.array_equal(coarse.f0, fine.f0)
    voiced = fine.f0 > 0
    log_difference = np.abs(np.log(coarse.envelope[voiced]) - np.log(fine.envelope[voiced]))
    assert np.median(log_difference) < 0.1  # under 0.5 dB on the typical bin
    # every voiced frame, the voicing edges included, keeps a voiced frame's aperiodicity (not an unvoiced 1.0)
    assert np.abs(coarse.aperiodicity[voiced, :100] - fine.aperiodicity[voiced, :100]).max() < 0.5
    converted = world.change_voice(wav, RATE, world.Alignment(world.PitchStats(5.0, 0.1), world.PitchStats(5.3, 0.1),
                                                              settings=world.WorldSettings(envelope_period_ms=16.0)))
    assert converted.shape == wav.shape and np.isfinite(converted).all()
