"""Griffin-Lim resynthesis: shape, fidelity of the round trip, batching, phase initialisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import harmonic_tone
from voiceconv.audio.features import FeatureConfig, MelImageEncoder
from voiceconv.audio.io import load_audio
from voiceconv.audio.vocoder import GriffinLimVocoder


def spectral_convergence(wav: torch.Tensor, reference: torch.Tensor, encoder: MelImageEncoder) -> float:
    """|| |STFT(ref)| - |STFT(wav)| ||_F / || |STFT(ref)| ||_F: 0 for a perfect magnitude match."""
    a, b = encoder.magnitude(wav), encoder.magnitude(reference)
    frames = min(a.shape[-1], b.shape[-1])
    return float(torch.linalg.norm(b[..., :frames] - a[..., :frames]) / torch.linalg.norm(b[..., :frames]))


@pytest.fixture
def encoder():
    return MelImageEncoder(FeatureConfig())


def test_round_trip_length_and_fidelity(tone, encoder):
    wav = torch.from_numpy(tone)
    out = GriffinLimVocoder(encoder.config)(encoder(wav))  # [1, samples]
    assert out.shape == (1, encoder.config.samples_for(encoder.config.frames_for(len(tone))))
    assert torch.isfinite(out).all()
    assert spectral_convergence(out[0], wav, encoder) < 0.5  # 80 mel bands cannot hold every harmonic
    assert (encoder(out[0]) - encoder(wav[: out.shape[-1]])).abs().mean() < 0.06  # mean error in [-1, 1] units: 0.06 = 3.6 dB


def test_more_iterations_fit_the_magnitude_better(tone, encoder):
    wav = torch.from_numpy(tone)
    image = encoder(wav)
    errors = [spectral_convergence(GriffinLimVocoder(encoder.config, n_iter=n)(image)[0], wav, encoder) for n in (0, 32)]
    assert errors[1] < 0.7 * errors[0]


def test_batch_matches_single_items(encoder):
    wavs = torch.stack([torch.from_numpy(harmonic_tone(f0=f0)) for f0 in (110.0, 220.0)])
    vocoder = GriffinLimVocoder(encoder.config, n_iter=8)
    batch = vocoder(encoder(wavs))  # [2, samples]
    single = vocoder(encoder(wavs[1]))  # [1, samples]
    torch.testing.assert_close(batch[1], single[0], atol=1e-4, rtol=1e-4)


def test_reference_phase_starts_close_to_the_source(tone, encoder):
    wav = torch.from_numpy(tone)
    vocoder = GriffinLimVocoder(encoder.config, n_iter=0)
    seeded = vocoder(encoder(wav), reference=wav)[0]
    random = vocoder(encoder(wav))[0]
    assert spectral_convergence(seeded, wav, encoder) < 0.5 * spectral_convergence(random, wav, encoder)


@pytest.mark.parametrize("kwargs", [{"n_iter": -1}, {"momentum": 1.0}, {"momentum": -0.1}])
def test_invalid_settings_are_rejected(kwargs):
    with pytest.raises(ValueError):
        GriffinLimVocoder(FeatureConfig(), **kwargs)


@pytest.mark.shared_data
def test_copy_synthesis_of_real_speech_keeps_its_mel_cepstrum(shared_data, encoder):
    pytest.importorskip("pyworld", reason="needs the eval extra: pip install 'voiceconv[eval]'")
    from voiceconv.evaluate.mcd import mel_cepstral_distortion

    wav = load_audio(shared_data / "vcc2016" / "dev" / "TM1" / "200001.flac", 16000)
    out = GriffinLimVocoder(encoder.config)(encoder(torch.from_numpy(wav)))[0].numpy()
    assert mel_cepstral_distortion(out, wav, 16000) < 5.0
    assert mel_cepstral_distortion(wav, wav, 16000) == pytest.approx(0.0, abs=1e-9)
    noise = np.random.default_rng(0).standard_normal(len(wav)).astype(np.float32) * 0.1
    assert mel_cepstral_distortion(noise + wav, wav, 16000) > mel_cepstral_distortion(out, wav, 16000)
