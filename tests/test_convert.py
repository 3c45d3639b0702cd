"""The one conversion path on the bundled default model: long audio in windows, loudness, files, bad input."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import SAMPLES, harmonic_tone
from voiceconv.audio.io import audio_files, load_audio, loudness
from voiceconv.audio.world import DEFAULT_SETTINGS, WorldSettings, extract_f0, parse_pitch
from voiceconv.convert import Converter
from voiceconv.convert.windowing import CrossfadeJoiner
from voiceconv.errors import AudioError, SilentAudioError, TooShortError, VoiceconvError
from voiceconv.modelfiles.format import load_model_file, save_model_file
from voiceconv.runtime import torch_threads

MODEL = SAMPLES / "models" / "kathleen_rms.safetensors"
RATE = 16000


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """About 12 s of real speech: the bundled clips, back to back."""
    clips = [load_audio(p, RATE) for p in audio_files(SAMPLES / "audio")]
    return np.concatenate(clips * 3)


@pytest.fixture(scope="module")
def converter() -> Converter:
    return Converter(MODEL, window_seconds=3.0)


def test_windowed_conversion_has_no_seams(converter, speech):
    """Windows of 3 s agree with one window over everything, and no worse at the joins than elsewhere."""
    whole = Converter(MODEL, window_seconds=1000.0).convert(speech, RATE)
    windowed = converter.convert(speech, RATE)
    assert windowed.shape == whole.shape == speech.shape
    difference = (converter.encoder(torch.from_numpy(windowed)) - converter.encoder(torch.from_numpy(whole)))[0]
    per_frame = difference.abs().mean(0)  # [T]
    windows = converter.windowing.plan(converter.features)[0]
    stride = windows.stride // converter.features.hop_length
    joins = torch.cat([per_frame[k * stride - 4 : k * stride + 4] for k in range(1, len(speech) // windows.stride)])
    assert per_frame.mean() < 0.12  # image units: [-1, 1] spans 120 dB
    assert joins.mean() < 1.5 * per_frame.mean()


def test_world_chunks_are_cut_in_pauses_and_join_back_to_the_input(converter):
    """WORLD aligns the input in chunks cut at its quietest moments; joined with their cross-fades, unchanged
    chunks give back the input exactly, so only the cuts' placement decides where a seam could be."""
    bursts = [np.concatenate([harmonic_tone(0.9, RATE, seed=i), np.zeros(int(0.3 * RATE), np.float32)])
              for i in range(12)]  # 0.9 s of sound, 0.3 s of silence, 12 times
    wav = np.concatenate(bursts)
    chunks = converter.windowing.plan(converter.features)[1]  # the chunks the converter's WORLD alignment uses
    cutter = chunks.cutter()
    pieces = [piece for block in np.array_split(wav, 37) for piece in cutter.push(block)] + cutter.finish()
    cuts = [kept[1] for _, _, kept, is_last in pieces if not is_last]
    assert len(cuts) >= 3 and pieces[-1][3]
    for cut in cuts:  # inside a silence, with room for the cross-fade
        assert np.abs(wav[cut - len(chunks.fade_in) : cut + len(chunks.fade_in)]).max() == 0.0
    joiner = CrossfadeJoiner(chunks.fade_in)  # as the converter joins aligned chunks
    joined = np.concatenate([joiner.add(piece) for piece in pieces])
    np.testing.assert_allclose(joined, wav, atol=1e-6)


def test_a_file_conversion_gives_the_same_samples_however_many_chunks_world_aligns_at_once(speech):
    """While a window converts, WORLD aligns the chunks after it on several threads (as many as torch has, by
    default); each chunk is aligned on its own, so the output never depends on how many run at once."""
    converter = Converter(MODEL, window_seconds=1.0, align_chunk_seconds=0.5)  # a dozen chunks
    outputs = [converter.convert(speech[: 6 * RATE], RATE, windowing=dataclasses.replace(converter.windowing,
                                                                                         world_threads=threads))
               for threads in (1, 3)]
    np.testing.assert_array_equal(*outputs)


def test_long_input_is_consumed_lazily(converter):
    """The first output block arrives after reading about two windows (the next one is aligned while the first
    converts): memory does not grow with the input."""
    consumed = itertools.count()
    block = harmonic_tone(0.5, RATE)

    def endless():
        while True:
            next(consumed)
            yield block

    with torch_threads(2):  # WORLD aligns as many chunks at once as torch has threads
        first = next(converter.convert_stream(endless()))
    blocks_read = next(consumed)
    windows = converter.windowing.plan(converter.features)[0]
    window_blocks = (windows.stride + windows.margin) / len(block)
    assert len(first) > 0 and blocks_read <= 2 * window_blocks + 2


@pytest.mark.parametrize("input_lufs", [-40.0, -16.0])
def test_output_loudness_matches_input(converter, speech, input_lufs):
    quiet_or_loud = speech * 10 ** ((input_lufs - loudness(speech, RATE)) / 20)
    converted = converter.convert(quiet_or_loud.astype(np.float32), RATE)
    assert abs(loudness(converted, RATE) - input_lufs) < 1.0


@pytest.mark.parametrize("suffix,rate", [(".wav", None), (".flac", 44100), (".ogg", 22050)])
def test_convert_file_format_and_rate(converter, tmp_path, suffix, rate):
    source = SAMPLES / "audio" / "kathleen_arctic_a0591.flac"
    result = converter.convert_file(source, tmp_path / f"out{suffix}", "b2a", sample_rate=rate)
    info = sf.info(result.destination)
    assert info.samplerate == (rate or RATE) and info.channels == 1
    assert abs(info.duration - sf.info(source).duration) < 0.05
    assert [p.name for p in tmp_path.iterdir()] == [f"out{suffix}"]


def test_convert_file_never_touches_its_input(converter, tmp_path):
    source = tmp_path / "clip.wav"
    sf.write(source, harmonic_tone(1.0, RATE), RATE)
    before = source.read_bytes()
    with pytest.raises(VoiceconvError, match="overwrite the input"):
        converter.convert_file(source, tmp_path / "." / "clip.wav")
    assert source.read_bytes() == before


def test_bad_input_leaves_no_output(converter, tmp_path):
    """A file that fails midway (here: truncated) leaves neither the output nor a temporary file."""
    cut = tmp_path / "in" / "long.flac"
    cut.parent.mkdir()
    sf.write(cut, np.tile(harmonic_tone(1.0, RATE), 8), RATE)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])  # the header still declares 8 s
    with pytest.raises(AudioError, match="long.flac"):
        converter.convert_file(cut, tmp_path / "out" / "long.wav")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("wav,error", [(np.zeros(RATE, np.float32), SilentAudioError),
                                       (harmonic_tone(0.03, RATE), TooShortError)])
def test_stream_rejects_silent_and_too_short_input(converter, wav, error):
    with pytest.raises(error):
        list(converter.convert_stream([wav], name="clip.wav"))


@pytest.mark.parametrize("pitch", ["+5", "-5", "+8", "-8", "source"])
def test_pitch_setting_lands_within_a_quarter_semitone(converter, pitch):
    """``--pitch source`` / ``+N`` moves the speaker's own F0 contour by N semitones through the whole path (WORLD
    alignment, generator, refine vocoder, loudness, windows): frame by frame against the input's F0 moved by N, the
    output's F0 is within 25 cents (median over the frames voiced in both) by Harvest and by DIO, on the two
    held-out Kathleen sentences through the shipped model."""
    shift = parse_pitch(pitch)
    for path in audio_files(SAMPLES / "audio"):
        wav = load_audio(path, RATE)
        converted = converter.convert(wav, RATE, pitch=pitch)
        for method in ("harvest", "dio"):
            settings = WorldSettings(method, frame_period_ms=5.0)
            f0_in, f0_out = extract_f0(wav, RATE, settings)[0], extract_f0(converted, RATE, settings)[0]
            frames = min(len(f0_in), len(f0_out))
            f0_in, f0_out = f0_in[:frames], f0_out[:frames]
            voiced = (f0_in > 0) & (f0_out > 0)
            cents = 1200 * np.log2(f0_out[voiced] / f0_in[voiced]) - 100 * shift
            assert voiced.sum() > 100, (path.name, method)
            assert abs(np.median(cents)) < 25, (path.name, method, np.median(cents))


def test_a_model_keeps_its_own_world_analysis_unless_told_otherwise(converter, tmp_path):
    """Model files store their WORLD settings: the shipped model analyses as it was trained (DIO decimated by 2,
    D4C every 32 ms); a file from before those fields existed converts exactly as it was trained (DIO + StoneMask,
    CheapTrick and D4C at its 10-ms F0 frames); ``world=`` swaps only the analysis."""
    own = converter.alignment("a2b").settings
    assert own == DEFAULT_SETTINGS
    tensors, header = load_model_file(MODEL)
    header["alignment"]["world"] = {"f0_method": "dio", "frame_period_ms": 10.0, "dio_speed": 1}  # an older file
    older = Converter(save_model_file(tmp_path / "older.safetensors", tensors, header))
    assert older.alignment("a2b").settings == WorldSettings("dio", 10.0, 1, stonemask=True, envelope_period_ms=None,
                                                            aperiodicity_period_ms=None)
    coarse = WorldSettings(dio_speed=2, envelope_period_ms=16.0, aperiodicity_period_ms=16.0)
    other = Converter(MODEL, world=coarse)
    for direction in ("a2b", "b2a"):
        assert other.alignment(direction).settings == coarse
        assert dataclasses.replace(other.alignment(direction), settings=own) == converter.alignment(direction)
