"""Training media are rendered by the conversion pipeline: what TensorBoard plays is what the exported model says."""

from __future__ import annotations

import numpy as np
import torch

from voiceconv.audio.features import FeatureConfig
from voiceconv.convert import Converter
from voiceconv.data.speakers import load_training_audio
from voiceconv.models.cyclegan import CycleGANConfig
from voiceconv.train.loop import TrainConfig
from voiceconv.train.voice import VoiceConversionTask, VoiceDataConfig, VoiceRecipe, load_voice_data

TINY_MODEL = CycleGANConfig(generator_channels=8, residual_channels=16, residual_blocks=1, discriminator_channels=8,
                            discriminator_layers=2)


class RecordingWriter:
    """What a SummaryWriter was given: images and audio by tag."""

    def __init__(self):
        self.images: dict[str, torch.Tensor] = {}
        self.audio: dict[str, tuple[torch.Tensor, int]] = {}

    def add_image(self, tag: str, image: torch.Tensor, step: int) -> None:
        self.images[tag] = image

    def add_audio(self, tag: str, audio: torch.Tensor, step: int, sample_rate: int) -> None:
        self.audio[tag] = (audio, sample_rate)


def test_a_training_media_clip_equals_the_converter_on_the_exported_weights(speakers, tmp_path):
    """A pitch-aligned tiny model one step into training: each direction's media clip is, sample for sample,
    ``Converter.convert`` of the same recording through the model file exported at that step."""
    recipe = VoiceRecipe(features=FeatureConfig(n_mels=32), model=TINY_MODEL,
                         data=VoiceDataConfig(crop_frames=16, min_seconds=2.0, media_utterances=1, align="f0"),
                         train=TrainConfig(steps=1, batch_size=2, threads=1))
    task = VoiceConversionTask(recipe, load_voice_data(recipe, speakers, tmp_path / "cache", ("high", "low")))
    task.model.train_step(task.batch(2, torch.Generator().manual_seed(0)))  # weights moved off their start
    writer = RecordingWriter()
    task.log_media(writer, step=1)
    task.export(tmp_path / "model.safetensors", {"steps": 1})
    converter = Converter(tmp_path / "model.safetensors")
    rate = recipe.features.sample_rate
    assert set(writer.audio) == {"a2b/0/audio", "b2a/0/audio"}
    assert set(writer.images) == {f"{d}/0/{name}" for d in ("a2b", "b2a") for name in ("source", "converted")}
    for direction, side in (("a2b", "a"), ("b2a", "b")):
        wav = load_training_audio(task.data.training_files[side][0], recipe.features)
        expected = converter.convert(wav, rate, direction)  # [samples]
        audio, audio_rate = writer.audio[f"{direction}/0/audio"]
        assert audio_rate == rate and audio.shape == (1, len(expected))
        np.testing.assert_allclose(audio[0].numpy(), np.clip(expected, -1, 1), atol=1e-6, rtol=0)
        assert np.abs(expected).max() > 0.01  # it is sound, not silence
