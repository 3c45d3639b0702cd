"""The learned stage of pitch-aligned voice training: kNN pseudo-targets, matched processing, the envelope
generator and discriminator, and selection keeping a trained step."""

from __future__ import annotations

import dataclasses
import hashlib
import logging

import numpy as np
import pytest
import torch

from conftest import harmonic_tone, mel_image
from voiceconv.audio.features import FeatureConfig, dct_matrix
from voiceconv.audio.world import DEFAULT_SETTINGS
from voiceconv.audio.knn import FramePool, KnnConfig, KnnVoiceChanger, blend_toward, frame_descriptions
from voiceconv.audio.world import Alignment, PitchStats
from voiceconv.audio.io import load_audio, save_audio
from voiceconv.data.speakers import load_training_audio
from voiceconv.errors import ConfigError
from voiceconv.losses import pseudo_target_loss
from voiceconv.models.cyclegan import CycleGAN, CycleGANConfig
from voiceconv.nn import build_discriminator, build_generator
from voiceconv.nn.generators import interpolate_bands
from voiceconv.train.loop import TrainConfig, fit
from voiceconv.train.selection import VoiceValidator, selection_score
from voiceconv.train.voice import (VoiceConversionTask, VoiceDataConfig, VoiceRecipe, best_strengths,
                                   copy_synthesize, load_voice_data)

FEATURES = FeatureConfig(n_mels=32)
ENVELOPE_MODEL = CycleGANConfig(generator="envelope1d", generator_channels=8, residual_channels=16, residual_blocks=1,
                                generator_output="envelope", input_bands=16, output_bands=8, discriminator_channels=8,
                                discriminator_layers=2, discriminator_bands=16, spectral_norm=True,
                                consistency_norm="l2", identity_weight=0.0, pull_weight=10.0)


def random_images(count: int, rows: int = 32, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(rows, 40 + 7 * i, generator=generator) for i in range(count)]


def test_a_speaker_matched_against_itself_gets_its_own_frames_back():
    images = random_images(3)
    pool = FramePool(images, KnnConfig(k=1, context=2, cepstra=12))
    offsets = np.cumsum([0] + [image.shape[1] for image in images])
    for image, offset in zip(images, offsets):
        assert torch.equal(pool.nearest(image)[:, 0], torch.arange(image.shape[1]) + offset)


@pytest.mark.parametrize("phone_weight", [0.0, 30.0])
def test_the_knn_voice_changer_of_a_speaker_onto_itself_returns_its_own_envelopes(phone_weight):
    waves = [harmonic_tone(1.0, f0=150.0 + 9 * i, seed=i) for i in range(3)]
    same = PitchStats(5.0, 0.2)
    changer = KnnVoiceChanger(waves, waves, 16000, Alignment(same, same, 1.0),
                              KnnConfig(k=1, blend=1.0, cepstra=12, phone_weight=phone_weight))
    for wav in waves:  # every frame finds itself (but a few at file and voicing edges, whose context differs)
        resynthesized = copy_synthesize(wav, 16000, changer.alignment.settings)
        assert np.sqrt(np.mean((changer(wav) - resynthesized) ** 2)) < 0.02 * np.sqrt(np.mean(resynthesized ** 2))


def test_a_pull_keeps_each_frame_level_and_moves_part_of_the_way():
    frames, matched = random_images(1, seed=1)[0], random_images(1, seed=2)[0] * 0.5 + 2.0
    whole, half = blend_toward(frames, matched, 1.0), blend_toward(frames, matched, 0.5)
    torch.testing.assert_close(whole.mean(dim=0), frames.mean(dim=0), atol=1e-4, rtol=0)  # level per frame kept
    torch.testing.assert_close(half, frames + 0.5 * (whole - frames), atol=1e-4, rtol=0)
    assert not torch.allclose(whole, frames, atol=0.1)  # the shape did move


def test_keep_variance_gives_matched_frames_the_targets_spread_over_time():
    """An average of k neighbours varies less from sound to sound than the target's frames do; keep_variance
    spreads the neighbours' means back to the target's per-utterance variance (and never narrows them)."""
    waves = [harmonic_tone(1.0, f0=150.0 + 9 * i, seed=i) for i in range(3)]
    same = PitchStats(5.0, 0.2)
    changer = KnnVoiceChanger(waves, waves, 16000, Alignment(same, same, 1.0),
                              KnnConfig(k=2, cepstra=12, keep_variance=True))
    target_variance = changer.variances[True]  # [cepstra]
    _, envelope = changer._log_envelope(waves[0])  # [bins, T]
    level = changer.cepstra @ envelope  # [cepstra, T]
    mean = level.mean(dim=1, keepdim=True)
    narrow = envelope + changer.cepstra.T @ ((mean - level) * 0.5)  # half the spread of the frames' cepstra
    assert ((changer.cepstra @ narrow).var(dim=1) < (changer.cepstra @ envelope).var(dim=1)).all()
    restored = changer.cepstra @ changer.with_target_variance(narrow, True)
    ratio = restored.var(dim=1) / target_variance
    gain = (restored.var(dim=1) / (changer.cepstra @ narrow).var(dim=1)).sqrt()
    assert (gain < 1.99).sum() >= 6 and ((ratio - 1).abs() < 1e-3)[gain < 1.99].all()  # the target's spread, where the gain bound allows
    assert (gain > 1 - 1e-4).all()  # never narrowed
    torch.testing.assert_close(restored.mean(dim=1), (changer.cepstra @ narrow).mean(dim=1), atol=1e-3, rtol=0)


def test_voiced_only_leaves_unvoiced_sounds_where_they_are():
    """With voiced_only the pull moves vowels and voiced consonants only: noise (a fricative's sound) comes out
    (nearly) as WORLD resynthesized it, while the default pulls it toward the target's unvoiced frames."""
    rng = np.random.default_rng(0)
    voices = [harmonic_tone(1.0, f0=150.0 + 9 * i, seed=i) for i in range(3)]
    hisses = [(0.05 * rng.standard_normal(16000)).astype(np.float32) for _ in range(3)]
    shaped = [np.convolve(hiss, np.ones(4) / 4, mode="same").astype(np.float32) for hiss in hisses]  # another hiss
    same = PitchStats(5.0, 0.2)
    alignment = Alignment(same, same, 1.0)
    config = KnnConfig(k=2, cepstra=12, blend=1.0)
    noise = hisses[0]
    resynthesized = copy_synthesize(noise, 16000, alignment.settings)
    pulled = KnnVoiceChanger(voices + hisses, voices + shaped, 16000, alignment, config)(noise)
    kept = KnnVoiceChanger(voices + hisses, voices + shaped, 16000, alignment,
                           dataclasses.replace(config, voiced_only=True))(noise)
    def moved(wav: np.ndarray) -> float:
        return float(np.sqrt(np.mean((wav - resynthesized) ** 2)))

    assert moved(pulled) > 0.1 * np.sqrt(np.mean(resynthesized ** 2))
    assert moved(kept) < 0.2 * moved(pulled)  # only the few frames the tracker calls voiced in noise move


def test_a_smoothed_pull_keeps_the_frames_quick_changes_and_averages_the_move():
    """With ``smooth_frames`` the move toward the neighbours is averaged over time: a constant move passes whole,
    while the source's own frame-to-frame changes stay in the result."""
    frames = random_images(1, seed=3)[0]  # [H, T]
    shifted_shape = frames + torch.linspace(-1.0, 1.0, frames.shape[0])[:, None]  # the same move in every frame
    torch.testing.assert_close(blend_toward(frames, shifted_shape, 0.5, smooth_frames=7),
                               blend_toward(frames, shifted_shape, 0.5), atol=1e-4, rtol=0)
    jumpy = random_images(1, seed=4)[0]
    smoothed = blend_toward(frames, jumpy, 1.0, smooth_frames=7) - frames  # [H, T]: the move actually made
    raw = blend_toward(frames, jumpy, 1.0) - frames
    assert smoothed.diff(dim=1).abs().mean() < 0.5 * raw.diff(dim=1).abs().mean()
    with pytest.raises(ValueError, match="odd"):
        KnnConfig(smooth_frames=4)


def test_frames_are_matched_on_their_shape_and_context():
    basis = dct_matrix(32, 4)
    assert torch.allclose(basis @ basis.T, torch.eye(4), atol=1e-5)  # orthonormal
    image = random_images(1)[0]
    config = KnnConfig(context=1, cepstra=6)
    described = frame_descriptions(image, config)
    assert described.shape == (image.shape[1], 6 * 3)
    torch.testing.assert_close(frame_descriptions(image + 5.0, config), described, atol=1e-4, rtol=0)  # level-free


def test_the_pull_compares_band_envelopes_only():
    x = torch.randn(2, 1, 32, 16)
    harmonics = torch.zeros_like(x)
    harmonics[:, :, ::2] = 1.0  # fine detail, alternating rows: averages out within every band of 4 rows
    harmonics[:, :, 1::2] = -1.0
    assert pseudo_target_loss(x + harmonics, x, bands=8) < 1e-10
    assert pseudo_target_loss(x + 0.5, x, bands=8) == pytest.approx(0.25)


def test_the_envelope_generator_starts_as_the_identity_and_changes_only_the_envelope():
    generator = build_generator("envelope1d", in_ch=1, out_ch=1, height=32, base_channels=8, residual_channels=16,
                                n_residual=1, input_bands=16, bands=8)
    x = torch.randn(2, 1, 32, 24)
    assert torch.equal(generator(x), x)
    torch.nn.init.normal_(generator.output.weight, std=0.1)
    change = (generator(x) - x).detach()[:, 0]  # [2, 32 rows, 24 frames]
    one_band_each = interpolate_bands(torch.eye(8)[None, None, :, :], 32)[0, 0]  # [32 rows, 8 bands]
    in_band_space = one_band_each @ torch.linalg.pinv(one_band_each) @ change  # projected on the bands
    assert change.abs().mean() > 1e-3
    torch.testing.assert_close(in_band_space, change, atol=1e-5, rtol=0)  # 8 band values per frame, nothing finer


def test_a_band_discriminator_cannot_see_what_an_envelope_generator_cannot_change():
    torch.manual_seed(0)
    discriminator = build_discriminator("patch", in_ch=1, base_channels=8, n_layers=2, input_bands=16,
                                        spectral_norm=True)
    x = torch.randn(2, 1, 32, 24)
    stripes = torch.zeros_like(x)
    stripes[:, :, ::2], stripes[:, :, 1::2] = 1.0, -1.0  # harmonic-like detail within each 2-row band
    torch.testing.assert_close(discriminator(x + stripes), discriminator(x))
    assert not torch.allclose(discriminator(x + 1.0), discriminator(x))


def envelope_recipe(steps: int = 2, **data) -> VoiceRecipe:
    return VoiceRecipe(features=FEATURES, model=ENVELOPE_MODEL,
                       data=VoiceDataConfig(crop_frames=16, min_seconds=2.0, media_utterances=1, align="f0+warp",
                                            pull=KnnConfig(k=2, cepstra=8, reference_files=3), **data),
                       train=TrainConfig(steps=steps, batch_size=2, log_every=1, media_every=2, checkpoint_every=2,
                                         keep_checkpoints=2, threads=1))


def test_matched_processing_passes_the_discriminators_real_speech_through_the_inputs_world_settings(
        speakers, tmp_path):
    data = load_voice_data(envelope_recipe(matched=True), speakers, tmp_path / "cache", ("high", "low"))
    assert data.alignment.settings == DEFAULT_SETTINGS
    high = [load_training_audio(path, FEATURES) for path in sorted(speakers[0].glob("*.wav"))]
    copied = [mel_image(copy_synthesize(wav, 16000, data.alignment.settings), FEATURES)[0] for wav in high]
    natural = [mel_image(wav, FEATURES)[0] for wav in high]
    stats = data.speakers["a"].stats
    for image, resynthesized, recorded in zip(data.speakers["a"].images, copied, natural):
        torch.testing.assert_close(stats.denormalize(image), resynthesized, atol=1e-4, rtol=0)
        assert (resynthesized - recorded).abs().mean() > 1e-3  # WORLD leaves its fingerprint: not the recording
    unmatched = load_voice_data(envelope_recipe(matched=False), speakers, tmp_path / "cache", ("high", "low"))
    for image, recorded in zip(unmatched.speakers["a"].images, natural):
        torch.testing.assert_close(unmatched.speakers["a"].stats.denormalize(image), recorded, atol=1e-4, rtol=0)
    # What a converted image is mapped onto on its way out stays the natural recordings' statistics.
    for side in "ab":
        assert torch.equal(data.output_stats[side].mean, unmatched.speakers[side].stats.mean)
        assert not torch.allclose(data.output_stats[side].mean, data.speakers[side].stats.mean, atol=1e-3)


def test_training_pulls_each_direction_toward_its_pseudo_targets(speakers, tmp_path):
    data = load_voice_data(envelope_recipe(matched=True), speakers, tmp_path / "cache", ("high", "low"))
    for direction, corpus in data.inputs.items():
        assert [target.shape for target in corpus.targets] == [image.shape for image in corpus.images]
        pull = torch.cat(corpus.targets, dim=-1) - torch.cat(corpus.images, dim=-1)  # [n_mels, frames]
        assert pull.abs().mean() > 0.01  # frames move toward the other speaker's nearest frames ...
        assert pull.mean(dim=-1).abs().max() < 1e-4  # ... beyond the per-band mapping the formula stage makes
    task = VoiceConversionTask(envelope_recipe(), data)
    batch = task.batch(2, torch.Generator().manual_seed(0))
    assert {"A", "B", "A2B", "B2A", "A2B_target", "B2A_target"} == set(batch)
    losses = task.model.train_step(batch)
    assert {"pull_AB", "pull_BA"} <= set(losses) and all(np.isfinite(list(losses.values())))


def test_the_pull_moves_the_envelope_generator_toward_its_targets():
    torch.manual_seed(0)
    model = CycleGAN(1, 32, dataclasses.replace(ENVELOPE_MODEL, generator_lr=2e-3, cycle_weight=0.0))
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(4, 1, 32, 16, generator=generator)
    batch = {"A": torch.randn(4, 1, 32, 16, generator=generator), "B": torch.randn(4, 1, 32, 16, generator=generator),
             "A2B": inputs, "B2A": inputs, "A2B_target": inputs + 0.5, "B2A_target": inputs - 0.5}
    history = [model.train_step(batch) for _ in range(60)]
    assert history[0]["pull_AB"] == pytest.approx(0.25, abs=1e-4)  # the identity start
    assert history[-1]["pull_AB"] < 0.3 * history[0]["pull_AB"]
    assert history[-1]["pull_BA"] < 0.3 * history[0]["pull_BA"]


def test_an_envelope_recipe_trains_exports_and_converts(speakers, tmp_path):
    from voiceconv.convert import Converter

    recipe = envelope_recipe(steps=2, matched=True)
    data = load_voice_data(recipe, speakers, tmp_path / "cache", ("high", "low"))
    outcome = fit(VoiceConversionTask(recipe, data), recipe.train, tmp_path / "run")
    converter = Converter(outcome.model_path)
    torch.testing.assert_close(converter.stats["b"].mean, data.output_stats["b"].mean)  # natural statistics ship
    out = converter.convert(harmonic_tone(1.0, f0=230.0), 16000, "a2b")
    assert out.shape == (16000,) and np.isfinite(out).all() and np.abs(out).max() > 0.01


def test_selection_judges_held_back_words_against_the_speaker_folders_transcripts(speakers, tmp_path):
    (speakers[0] / "transcripts.tsv").write_text("0\tthe first words\n1\tthe held back words\n", encoding="utf-8")
    recipe = envelope_recipe(held_back=1)
    data = load_voice_data(recipe, speakers, tmp_path / "cache", ("high", "low"))
    assert data.held_back["a"] == [speakers[0] / "1.wav"]
    assert data.transcripts == {speakers[0] / "1.wav": "the held back words"}  # the low folder has none
    validator = VoiceValidator(FEATURES, data.held_back, data.alignment, data.training_files, data.transcripts)
    assert [u.transcript for u in validator.utterances["a2b"]] == ["the held back words"]
    assert [u.transcript for u in validator.utterances["b2a"]] == [None]  # judged against the input's recognition


def test_a_small_folder_holds_back_at_most_a_quarter_of_its_recordings_and_says_so(speakers, tmp_path, caplog):
    for index in range(3, 8):  # the high speaker: 8 recordings, the low one keeps its 3
        save_audio(speakers[0] / f"{index}.wav", harmonic_tone(1.5, f0=240.0 + 7 * index, seed=index), 16000)
    with caplog.at_level(logging.WARNING):
        data = load_voice_data(envelope_recipe(held_back=24), speakers, tmp_path / "cache", ("high", "low"))
    assert [len(data.held_back[side]) for side in "ab"] == [2, 1]
    assert [len(data.training_files[side]) for side in "ab"] == [6, 2]
    assert "holding back 2 of its 8 recordings" in caplog.text and str(speakers[0]) in caplog.text


class WaveformDigestRecognizer:
    """A stand-in for pocketsphinx whose "words" name the waveform they were read from."""

    @staticmethod
    def recognize(wav: np.ndarray, rate: int) -> str:
        return hashlib.sha1(np.round(wav, 4).astype(np.float32).tobytes()).hexdigest()


def test_selection_reads_a_held_back_recording_as_conversion_does_with_its_edge_silence(speakers, tmp_path):
    held_back = speakers[0] / "1.wav"
    speech = load_audio(held_back, 16000)
    silence = np.zeros(8000, np.float32)  # half a second each side, as VCC2016's recordings have
    save_audio(held_back, np.concatenate([silence, speech, silence]), 16000)
    data = load_voice_data(envelope_recipe(held_back=1), speakers, tmp_path / "cache", ("high", "low"))
    validator = VoiceValidator(FEATURES, data.held_back, data.alignment, data.training_files)
    (utterance,) = validator.utterances["a2b"]
    assert len(utterance.wav) == len(speech) + 16000  # what the recognizer reads of the source and the output
    assert len(load_training_audio(held_back, FEATURES)) < len(speech) + 8000  # training's crops: trimmed


def test_parallel_word_reference_judges_words_against_the_other_speakers_same_sentence(speakers, tmp_path):
    (speakers[1] / "transcripts.tsv").write_text("1\tthe low words\n", encoding="utf-8")
    data = load_voice_data(envelope_recipe(held_back=1, word_reference="parallel"), speakers, tmp_path / "cache",
                           ("high", "low"))
    high, low = speakers[0] / "1.wav", speakers[1] / "1.wav"
    assert data.parallel == {high: low, low: high}
    asr = WaveformDigestRecognizer()
    judge, plain = (VoiceValidator(FEATURES, data.held_back, data.alignment, data.training_files, data.transcripts,
                                   data.parallel, reference) for reference in ("parallel", "input"))
    a2b, b2a = judge.utterances["a2b"][0], judge.utterances["b2a"][0]
    readings = judge._word_references(a2b, asr)
    assert readings == {"input": asr.recognize(a2b.aligned, 16000), "recording": asr.recognize(a2b.wav, 16000),
                        "parallel": asr.recognize(load_audio(low, 16000), 16000)}
    assert readings["parallel"] != readings["input"]
    assert judge._judged_reference(readings) == "parallel" and plain._judged_reference(readings) == "input"
    both = judge._word_references(b2a, asr)
    assert both["transcript"] == "the low words"  # the words read come first, whatever the judge
    assert judge._judged_reference(both) == plain._judged_reference(both) == "transcript"


class KnownReadings:
    """Stand-ins for the recognizer and the other judges: the aligned input reads as "input", the other
    speaker's recording as "parallel", anything else (the converted speech) as "converted"; words against
    the input's reading are a quarter wrong, against the parallel reading half."""

    def __init__(self, aligned: np.ndarray, recorded: np.ndarray, parallel: np.ndarray):
        self.known = {"input": aligned, "recording": recorded, "parallel": parallel}

    def recognize(self, wav, rate):
        same = [name for name, known in self.known.items() if wav.shape == known.shape and np.array_equal(wav, known)]
        return same[0] if same else "converted"

    @staticmethod
    def word_error_rate(reference, heard):
        return {"input": 0.25, "recording": 0.125, "parallel": 0.5}[reference]

    @staticmethod
    def embed(wav, rate):
        return np.ones(3)

    @staticmethod
    def dnsmos(wav, rate):
        return {"ovrl": 3.0}


def test_selection_reports_the_wer_against_every_reading_and_judges_by_the_chosen_one(speakers, tmp_path):
    from voiceconv.convert import Converter
    from voiceconv.modelfiles.voice import VoiceModel

    recipe = envelope_recipe(held_back=1)
    data = load_voice_data(recipe, speakers, tmp_path / "cache", ("high", "low"))
    pipeline = Converter(VoiceModel.from_tensors(*VoiceConversionTask(recipe, data).model_file({})))
    for reference, judged in (("input", 0.25), ("parallel", 0.5), ("recording", 0.125)):
        validator = VoiceValidator(FEATURES, data.held_back, data.alignment, data.training_files, {}, data.parallel,
                                   reference)
        utterance = validator.utterances["a2b"][0]
        fake = KnownReadings(utterance.aligned, utterance.wav, load_audio(speakers[1] / "1.wav", 16000))
        readings = {"a2b": [validator._word_references(utterance, fake)]}
        scores = validator._full_scores(pipeline, (fake, lambda x, y: 0.0, fake, fake, {"a": None, "b": None},
                                                   readings), {"a2b": [utterance]})
        assert scores["wer"] == judged and scores["wer_input"] == 0.25 and scores["wer_parallel"] == 0.5
        assert scores["wer_recording"] == 0.125  # voiceconv evaluate's reference, reported beside them
        assert scores["wer_vs_parallel"] == (reference == "parallel") and "wer_transcript" not in scores


class HeardSpeech(KnownReadings):
    """A recognizer that keeps every waveform it is given."""

    def __init__(self):
        super().__init__(np.zeros(1), np.zeros(1), np.zeros(1))
        self.heard = []

    def recognize(self, wav, rate):
        self.heard.append(wav)
        return "recording"


def test_selection_judges_the_speech_that_conversion_itself_outputs(speakers, tmp_path):
    from voiceconv.convert import Converter
    from voiceconv.modelfiles.voice import VoiceModel

    longer_than_a_window = np.concatenate([harmonic_tone(1.5, f0=247.0 + 3 * k, seed=k) for k in range(8)])
    save_audio(speakers[0] / "1.wav", longer_than_a_window, 16000)  # 12 s: conversion cuts it into windows
    recipe = envelope_recipe(held_back=1)
    data = load_voice_data(recipe, speakers, tmp_path / "cache", ("high", "low"))
    model = VoiceModel.from_tensors(*VoiceConversionTask(recipe, data).model_file({}))
    validator = VoiceValidator(FEATURES, data.held_back, data.alignment, data.training_files)
    (utterance,) = validator.utterances["a2b"]
    fake = HeardSpeech()
    validator._full_scores(Converter(model), (fake, lambda x, y: 0.0, fake, fake, {"a": None, "b": None},
                                              {"a2b": [{"input": "input", "recording": "recording"}]}), {"a2b": [utterance]})
    converted = Converter(model).convert(utterance.wav, 16000, "a2b")  # what voiceconv convert and evaluate hear
    np.testing.assert_allclose(fake.heard[-1], converted, atol=1e-5)


def test_the_words_rule_ships_the_most_similar_strength_that_keeps_the_starts_words_and_sound():
    start = {"similarity_margin": 0.01, "wer": 0.30, "dnsmos": 3.0, "score": -0.29}

    def candidate(margin, wer, dnsmos=3.0):
        return {"similarity_margin": margin, "wer": wer, "dnsmos": dnsmos,
                "score": selection_score(margin, wer, dnsmos)}

    scored = {"a2b": {0.5: candidate(0.03, 0.31), 1.0: candidate(0.05, 0.32), 1.5: candidate(0.20, 0.34),
                      2.0: candidate(0.30, 0.30, dnsmos=2.5)},  # the most similar: too many words, or lost sound
              "b2a": {0.5: candidate(0.02, 0.40), 1.0: candidate(0.04, 0.45)}}  # every trained strength loses words
    by_score = best_strengths(scored)
    assert (by_score["strength_a2b"], by_score["strength_b2a"]) == (1.5, 0.5)  # the score trades words for identity
    by_words = best_strengths(scored, start={"a2b": start, "b2a": start}, tolerance=0.03)
    assert (by_words["strength_a2b"], by_words["strength_b2a"]) == (1.0, 0.0)  # b2a: its untrained start
    assert by_words["score"] == pytest.approx((0.05 + 0.01) / 2) == by_words["similarity_margin"]
    assert by_words["selection_score"] == pytest.approx((scored["a2b"][1.0]["score"] + start["score"]) / 2)
    assert by_words["wer"] == pytest.approx(0.31) and "rank" not in by_words


class MovesAndLosesWordsWithTheCorrection:
    """A held-back validator on which a stronger correction moves the voice and loses words: similarity margin
    0.1 and WER 0.05 per unit of the learned correction, so the selection score rises with the strength."""

    available = True

    def __init__(self, learned: torch.Tensor):
        self.learned = learned

    def __call__(self, model, device, directions):
        strength = float(model.tensors["G_AB.output.weight"].norm() / self.learned.norm())
        margin, wer = 0.1 * strength, 0.1 + 0.05 * strength
        return {"score": selection_score(margin, wer, 3.0), "similarity_margin": margin, "wer": wer, "dnsmos": 3.0}


@pytest.mark.parametrize("selection, strength", [("score", 1.0), ("words", 0.5)])
def test_the_words_rule_keeps_a_resumed_runs_trained_step_within_the_starts_words(speakers, tmp_path, selection,
                                                                                   strength):
    recipe = envelope_recipe(strengths=(0.25, 0.5, 1.0), selection=selection)
    task = VoiceConversionTask(recipe, load_voice_data(recipe, speakers, tmp_path / "cache", ("high", "low")))
    torch.nn.init.normal_(task.model.G_AB.output.weight, std=0.05)  # as if trained
    task.model.steps_done += 1  # resumed: no step-0 scores in this process, the start is scored anew
    task._validator = MovesAndLosesWordsWithTheCorrection(task.model.G_AB.output.weight.detach().clone())
    entry = task.validate()
    assert entry["strength_a2b"] == strength  # words: 0.5 adds 0.025 WER to the start's, 1 adds 0.05


def test_parallel_word_reference_without_parallel_recordings_warns_and_judges_the_input(speakers, tmp_path, caplog):
    for path in speakers[1].glob("*.wav"):
        path.rename(path.with_name(f"low_{path.name}"))
    data = load_voice_data(envelope_recipe(held_back=1, word_reference="parallel"), speakers, tmp_path / "cache",
                           ("high", "low"))
    assert data.parallel == {}
    assert "1 of 1 held-back recordings of" in caplog.text and "judged against the aligned input" in caplog.text


@pytest.mark.parametrize("values, message", [({"smooth_frames": 2}, "smooth_frames must be an odd number"),
                                             ({"phone_weight": -1.0}, "phone_weight must be between 0 and 1000"),
                                             ({"k": 0}, "k must be between 1 and 256"),
                                             ({"context": 100000}, "context must be between 0 and 16"),
                                             ({"blend": 1.5}, "blend must be between 0 and 1")])
def test_a_pull_setting_out_of_range_is_a_config_error_naming_it(values, message):
    from voiceconv.config import from_dict
    with pytest.raises(ConfigError, match=message):
        from_dict(KnnConfig, values, "data.pull")


def test_a_strength_scales_the_learned_correction_and_zero_gives_the_untrained_start():
    from voiceconv.modelfiles.layout import GENERATOR_PREFIXES
    from voiceconv.modelfiles.voice import generator_weights, with_strength

    torch.manual_seed(0)
    trained = CycleGAN(1, 32, ENVELOPE_MODEL)
    for net in (trained.G_AB, trained.G_BA):
        torch.nn.init.normal_(net.output.weight, std=0.05)  # a learned correction
        torch.nn.init.normal_(net.output.bias, std=0.05)
    tensors = {f"{prefix}.{k}": v for d, prefix in GENERATOR_PREFIXES.items()
               for k, v in getattr(trained, prefix).state_dict().items()}
    x = torch.randn(2, 1, 32, 24)
    full = trained.G_AB(x)
    for strength in (0.0, 0.5, 1.5):
        scaled = CycleGAN(1, 32, ENVELOPE_MODEL).G_AB
        scaled.load_state_dict(generator_weights(with_strength(tensors, strength), "a2b"))
        torch.testing.assert_close(scaled(x), x + strength * (full - x), atol=1e-5, rtol=1e-5)


class ScoresByCorrection:
    """A held-back validator that prefers half of the learned correction: its score falls with the distance of
    the model's correction weights from half of ``reference``'s."""

    available = True

    def __init__(self, reference: torch.Tensor):
        self.reference = reference

    def __call__(self, model, device, directions):
        weight = model.tensors["G_AB.output.weight"] if directions == ("a2b",) else model.tensors["G_BA.output.weight"]
        distance = float((weight - 0.5 * self.reference).abs().sum())
        return {"score": -distance, "wer": distance}


def test_selection_ships_a_trained_step_at_the_strength_that_scored_best(speakers, tmp_path):
    from voiceconv.modelfiles.voice import VoiceModel

    recipe = envelope_recipe(strengths=(0.5, 1.0))
    task = VoiceConversionTask(recipe, load_voice_data(recipe, speakers, tmp_path / "cache", ("high", "low")))
    torch.nn.init.normal_(task.model.G_AB.output.weight, std=0.05)  # as if trained
    task.model.steps_done += 1
    learned = task.model.G_AB.output.weight.detach().clone()
    task._validator = ScoresByCorrection(learned)
    entry = task.validate()
    assert entry["strength_a2b"] == 0.5 and entry["a2b_score_at_0.5"] == 0.0 and entry["a2b_score_at_1"] < 0.0
    assert entry["a2b_wer_at_1"] == -entry["a2b_score_at_1"]  # every part of every candidate is kept
    task.export(tmp_path / "best.safetensors", {"steps": 1, "selected": entry})
    shipped = VoiceModel.from_file(tmp_path / "best.safetensors")
    torch.testing.assert_close(shipped.tensors["G_AB.output.weight"], 0.5 * learned)
    assert shipped.header["training"]["selected"]["strength_a2b"] == 0.5
    task.export(tmp_path / "model.safetensors", {"steps": 1})  # any other export is the model as trained
    torch.testing.assert_close(VoiceModel.from_file(tmp_path / "model.safetensors").tensors["G_AB.output.weight"],
                               learned)


def test_the_untrained_start_is_scored_once_whatever_the_strengths(speakers, tmp_path):
    recipe = envelope_recipe(strengths=(0.5, 1.0))
    task = VoiceConversionTask(recipe, load_voice_data(recipe, speakers, tmp_path / "cache", ("high", "low")))
    calls = []
    task._validator = type("Counting", (), {"available": True,
                                            "__call__": lambda self, model, device, directions:
                                            calls.append(directions) or {"score": 0.0}})()
    assert "strength_a2b" in task.validate() and calls == [("a2b",), ("b2a",)]  # each direction once


@pytest.mark.parametrize("strengths, message", [((), r"values in \[0, 2\]"), ((0.0,), "one of them above 0"),
                                                ((1.0, 3.0), r"values in \[0, 2\]"), ((-0.5, 1.0), r"in \[0, 2\]")])
def test_selection_strengths_out_of_range_are_a_config_error(speakers, tmp_path, strengths, message):
    recipe = envelope_recipe(strengths=strengths)
    with pytest.raises(ConfigError, match=message):
        VoiceConversionTask(recipe, load_voice_data(recipe, speakers, tmp_path / "cache", ("high", "low")))


def test_a_wer_tolerance_out_of_range_is_a_config_error(speakers, tmp_path):
    recipe = envelope_recipe(selection="words", wer_tolerance=-0.1)
    with pytest.raises(ConfigError, match=r"data.wer_tolerance=-0.1 must be between 0 and 1"):
        VoiceConversionTask(recipe, load_voice_data(recipe, speakers, tmp_path / "cache", ("high", "low")))


def test_an_input_spread_model_shifts_each_band_and_keeps_the_inputs_spread(speakers, tmp_path):
    from voiceconv.convert.pipeline import Pipeline
    from voiceconv.modelfiles.voice import VoiceModel

    spreads = {}
    for spread in ("target", "input"):
        recipe = dataclasses.replace(envelope_recipe(),
                                     model=dataclasses.replace(ENVELOPE_MODEL, output_spread=spread))
        data = load_voice_data(recipe, speakers, tmp_path / "cache", ("high", "low"))
        task = VoiceConversionTask(recipe, data)
        task.export(tmp_path / f"{spread}.safetensors", {"steps": 0})
        spreads[spread] = (Pipeline.from_model(VoiceModel.from_file(tmp_path / f"{spread}.safetensors")), data, task)
    pipeline, data, _ = spreads["input"]
    source, target = data.inputs["a2b"].stats, data.output_stats["b"]
    image = source.denormalize(data.inputs["a2b"].images[0])[None]  # [1, n_mels, T]: an aligned input
    shifted = (image + (target.mean - source.mean)[None, :, None]).clamp(-1, 1)
    torch.testing.assert_close(pipeline.convert_image(image, "a2b"), shifted, atol=1e-5, rtol=0)
    assert (spreads["target"][0].convert_image(image, "a2b") - shifted).abs().mean() > 1e-3  # the full mapping
    # The pull moves each frame by the same decibels, expressed in each model's output units ...
    for spread, (_, spread_data, _) in spreads.items():
        corpus = spread_data.inputs["a2b"]
        units = (corpus.stats.std if spread == "input" else spread_data.speakers["b"].stats.std)[:, None]
        moves = [(t - x) * units for t, x in zip(corpus.targets, corpus.images)]  # [n_mels, T_i] each
        spreads[spread] += (torch.cat(moves, dim=-1),)
    torch.testing.assert_close(spreads["input"][3], spreads["target"][3], atol=1e-4, rtol=1e-4)
    # ... and a discriminator judges real speech in the units of the output it judges.
    batches = {spread: entry[2].batch(2, torch.Generator().manual_seed(0)) for spread, entry in spreads.items()}
    scale = (data.speakers["b"].stats.std / source.std)[:, None]  # [n_mels, 1]
    torch.testing.assert_close(batches["input"]["B"], batches["target"]["B"] * scale)
    torch.testing.assert_close(batches["input"]["A2B"], batches["target"]["A2B"])


class PrefersHalfThereAndNothingBack:
    """A held-back validator under which G_AB is best at half its learned correction and G_BA at none of it: each
    direction's score falls with the distance of its correction from what it prefers. Counts its calls."""

    available = True

    def __init__(self, learned: dict[str, torch.Tensor]):
        self.preferred = {"a2b": 0.5 * learned["a2b"], "b2a": torch.zeros_like(learned["b2a"])}
        self.calls = []

    def __call__(self, model, device, directions):
        (direction,) = directions
        self.calls.append(direction)
        weight = model.tensors[f"{'G_AB' if direction == 'a2b' else 'G_BA'}.output.weight"]
        return {"score": -float((weight - self.preferred[direction]).abs().sum()), "wer": 0.1}


def test_selection_ships_each_direction_at_its_own_strength_and_keeps_an_unhelped_direction_untrained(
        speakers, tmp_path):
    from voiceconv.modelfiles.voice import VoiceModel, with_strength

    recipe = envelope_recipe(strengths=(0.0, 0.5, 1.0))
    task = VoiceConversionTask(recipe, load_voice_data(recipe, speakers, tmp_path / "cache", ("high", "low")))
    untrained = {"a2b": task.model.G_AB.output.weight.detach().clone(),
                 "b2a": task.model.G_BA.output.weight.detach().clone()}
    for net in (task.model.G_AB, task.model.G_BA):
        torch.nn.init.normal_(net.output.weight, std=0.05)  # as if trained
    learned = {"a2b": task.model.G_AB.output.weight.detach().clone(),
               "b2a": task.model.G_BA.output.weight.detach().clone()}
    task._validator = PrefersHalfThereAndNothingBack(learned)
    tensors, header = task.model_file({})
    task._untrained = {d: task._validator(VoiceModel.from_tensors(with_strength(tensors, 0.0), header), "cpu", (d,))
                       for d in ("a2b", "b2a")}  # as the step-0 validation leaves them
    task._validator.calls.clear()
    task.model.steps_done += 1
    entry = task.validate()
    assert (entry["strength_a2b"], entry["strength_b2a"]) == (0.5, 0.0)
    assert entry["score"] == pytest.approx(0.0, abs=1e-6) and entry["wer"] == pytest.approx(0.1)
    assert sorted(task._validator.calls) == ["a2b", "a2b", "b2a", "b2a"]  # strength 0: step 0's scores reused
    task.export(tmp_path / "best.safetensors", {"steps": 1, "selected": entry})
    shipped = VoiceModel.from_file(tmp_path / "best.safetensors")
    torch.testing.assert_close(shipped.tensors["G_AB.output.weight"], 0.5 * learned["a2b"])
    torch.testing.assert_close(shipped.tensors["G_BA.output.weight"], 0 * untrained["b2a"])
