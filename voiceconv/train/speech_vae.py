"""The face VAE's code on speech: training a VAE of one speaker's log-mel crops (using it:
:mod:`voiceconv.speech_vae`).

The crops are the speaker corpus's (:mod:`voiceconv.data.speakers`), mapped back
to the [-1, 1] log-mel image range so the decoder's tanh covers them. To hear
what the VAE keeps, :func:`reconstruct_audio` cuts a recording's image into
crop-wide windows, passes each through encoder (posterior mean) and decoder,
and plays the result with Griffin-Lim.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from voiceconv.audio.features import FeatureConfig
from voiceconv.audio.vocoder import GriffinLimVocoder
from voiceconv.config import to_dict
from voiceconv.data.speakers import SpeakerCorpus, load_speaker
from voiceconv.errors import ConfigError
from voiceconv.families import SPEECH_VAE
from voiceconv.modelfiles.format import save_model_file
from voiceconv.models.vae import VAE, VAEConfig
from voiceconv.speech_vae import reconstruct_image
from voiceconv.train.loop import TrainConfig, TrainingOutcome, fit
from voiceconv.train.recipes import prepare_run_dir
from voiceconv.train.voice import speaker_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpeechVAEDataConfig:
    speaker: str = ""  # folder of one speaker's recordings (or --speaker DIR)
    crop_frames: int = 64  # crop width; a multiple of 2 ** len(model.channels)
    min_seconds: float = 60.0
    media_utterances: int = 2


@dataclass(frozen=True)
class SpeechVAERecipe:
    kind: Literal[SPEECH_VAE] = SPEECH_VAE
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: VAEConfig = field(default_factory=VAEConfig)
    data: SpeechVAEDataConfig = field(default_factory=SpeechVAEDataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


class SpeechVAETask:
    """A VAE on ``[1, n_mels, crop_frames]`` log-mel crops of one speaker, in [-1, 1]."""

    def __init__(self, recipe: SpeechVAERecipe, corpus: SpeakerCorpus):
        self.recipe, self.corpus = recipe, corpus
        self.model = VAE(1, recipe.features.n_mels, recipe.data.crop_frames, recipe.model, seed=recipe.train.seed)

    def batch(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        crops = self.corpus.crops(batch_size, self.recipe.data.crop_frames, generator)  # [B, 1, n_mels, W], normalized
        return {"images": self.corpus.stats.denormalize(crops).clamp(-1, 1)}  # back to the image range

    @torch.no_grad()
    def log_media(self, writer, step: int) -> None:
        vocoder = GriffinLimVocoder(self.recipe.features)
        for index, normalized in enumerate(self.corpus.images[: self.recipe.data.media_utterances]):
            image = self.corpus.stats.denormalize(normalized)[None]  # [1, n_mels, T]
            rebuilt = reconstruct_image(self.model, image)
            pair = torch.stack([image, rebuilt]).flip(-2)  # [2, 1, n_mels, T], low frequencies at the bottom
            writer.add_images(f"speech/{index}", ((pair + 1) / 2).clamp(0, 1), step)  # original, then rebuilt
            writer.add_audio(f"speech/{index}/audio", vocoder(rebuilt).clamp(-1, 1), step,
                             sample_rate=self.recipe.features.sample_rate)

    def export(self, path: Path, info: dict) -> None:
        header = {"kind": SPEECH_VAE, "features": to_dict(self.recipe.features), "model": to_dict(self.recipe.model),
                  "image": {"channels": 1, "height": self.recipe.features.n_mels, "width": self.recipe.data.crop_frames,
                            "range": [-1, 1]},
                  "speaker": {"name": self.corpus.name},
                  "training": {**info, "recipe": to_dict(self.recipe)}}
        save_model_file(path, {k: v for k, v in self.model.state_dict().items() if k != "steps_done"}, header)


def train_speech_vae(recipe: SpeechVAERecipe, run_dir: Path, resume: bool = False) -> TrainingOutcome:
    """Train a VAE on crops of ``recipe.data.speaker`` into ``run_dir``."""
    if not recipe.data.speaker:
        raise ConfigError("a speech VAE needs one speaker: --speaker DIR (or data.speaker in the recipe)")
    prepare_run_dir(recipe, run_dir, resume)
    folder = Path(recipe.data.speaker)
    corpus = load_speaker(folder, recipe.features, run_dir / "cache", recipe.data.min_seconds,
                          recipe.data.crop_frames, speaker_name(folder))
    log.info("speaker %s: %d utterances; %d unreadable file(s) skipped", corpus.name, len(corpus.images),
             len(corpus.skipped))
    return fit(SpeechVAETask(recipe, corpus), recipe.train, run_dir, resume=resume)
