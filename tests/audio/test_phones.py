"""The phone model behind the kNN pull's phone-aware matching (voiceconv.audio.phones, recipes/phones)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch

from voiceconv.audio import phones, world

needs_flite = pytest.mark.skipif(shutil.which("flite") is None,
                                 reason="flite is not installed (apt-get install flite)")


def test_a_segmentation_labels_each_frame_with_the_phone_spoken_at_its_time():
    segmentation = phones.Segmentation.read("pau\t0.05\nk\t0.08\nae\t0.2\nt\t0.25\n")
    labels = segmentation.frame_labels(30, 0.01)  # frames at 0, 10, ..., 290 ms
    assert labels[:5] == ["pau"] * 5 and labels[5:8] == ["k"] * 3 and labels[8:20] == ["ae"] * 12
    assert labels[20:25] == ["t"] * 5 and labels[25:] == ["t"] * 5  # past the end: the last phone


def test_a_saved_phone_model_reads_back_the_same(tmp_path):
    torch.manual_seed(0)
    model = phones.PhoneModel(("aa", "pau", "s"), context=2, hidden=16).eval()
    phones.save_phone_model(model, tmp_path / "p.safetensors")
    again = phones.load_phone_model(tmp_path / "p.safetensors")
    inputs = torch.randn(5, phones.COLUMNS * 5)
    assert again.phones == model.phones and torch.allclose(again(inputs), model(inputs))


def test_phone_probabilities_cover_every_frame_and_sum_to_one():
    rng = np.random.default_rng(0)
    envelope = np.exp(rng.normal(size=(50, 513)))
    f0 = np.where(np.arange(50) % 10 < 6, 120.0, 0.0)
    probabilities = phones.shipped_model().posteriors(envelope, f0)
    assert probabilities.shape == (50, len(phones.shipped_model().phones))
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(50), atol=1e-5)


@needs_flite
@pytest.mark.parametrize("voice", ["slt", "kal16"])
def test_the_shipped_model_names_the_phones_of_a_sentence_it_never_heard(voice, tmp_path):
    """A sentence outside the training prompts, read by flite (whose segmentation is the answer): most frames'
    likeliest phone is the one spoken, far above chance (1/41) or always guessing the commonest phone."""
    run = subprocess.run(["flite", "-voice", voice, "-psdur", "-t", "Seven quiet foxes jumped over my brother's bike.",
                          "-o", str(tmp_path / "s.wav")], capture_output=True, text=True, check=True)
    wav, rate = sf.read(tmp_path / "s.wav", dtype="float32")
    segmentation = phones.Segmentation.read("".join(f"{item.replace(':', chr(9))}\n" for item in run.stdout.split()))
    settings = world.DEFAULT_SETTINGS
    frames = world.analyse(wav, rate, settings)
    truth = segmentation.frame_labels(len(frames.f0), settings.frame_period_ms / 1000.0)
    model = phones.shipped_model()
    guessed = [model.phones[i] for i in model.posteriors(frames.envelope, frames.f0).argmax(dim=1)]
    accuracy = np.mean([g == t for g, t in zip(guessed, truth)])
    commonest = max(set(truth), key=truth.count)
    assert accuracy >= 0.6 and accuracy > 2 * truth.count(commonest) / len(truth)
