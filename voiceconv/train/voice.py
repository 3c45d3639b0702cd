"""Training a voice-conversion CycleGAN between two speakers: the recipe, the task and ``train_voice``."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from voiceconv.audio.features import FeatureConfig
from voiceconv.audio.vocoder import GriffinLimVocoder
from voiceconv.config import apply_overrides, from_dict, load_yaml, save_yaml, to_dict
from voiceconv.convert import convert_image
from voiceconv.data.speakers import SpeakerCorpus, load_speaker
from voiceconv.errors import ConfigError
from voiceconv.modelfile import save_model_file
from voiceconv.models.cyclegan import CycleGAN, CycleGANConfig
from voiceconv.train.loop import TrainConfig, TrainingOutcome, fit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VoiceDataConfig:
    """How speaker folders become training crops."""

    crop_frames: int = 64  # width of the random crops (64 frames = 1.0 s at hop 256, 16 kHz)
    min_seconds: float = 60.0  # refuse speakers with less usable audio than this
    media_utterances: int = 2  # fixed utterances converted into TensorBoard every media_every steps


@dataclass(frozen=True)
class VoiceRecipe:
    """Everything that defines a voice-conversion training run."""

    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: CycleGANConfig = field(default_factory=CycleGANConfig)
    data: VoiceDataConfig = field(default_factory=VoiceDataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


class VoiceConversionTask:
    """CycleGAN on unpaired crops of two speakers' normalized log-mel images."""

    def __init__(self, recipe: VoiceRecipe, speaker_a: SpeakerCorpus, speaker_b: SpeakerCorpus):
        if recipe.data.crop_frames % 4:
            raise ConfigError(f"data.crop_frames={recipe.data.crop_frames} must be a multiple of 4")
        self.recipe, self.speakers = recipe, {"a": speaker_a, "b": speaker_b}
        self.model = CycleGAN(channels=1, height=recipe.features.n_mels, config=recipe.model,
                              total_steps=recipe.train.steps, seed=recipe.train.seed)

    def batch(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        width = self.recipe.data.crop_frames
        return {"A": self.speakers["a"].crops(batch_size, width, generator),  # [B, 1, n_mels, width]
                "B": self.speakers["b"].crops(batch_size, width, generator)}

    @torch.no_grad()
    def log_media(self, writer, step: int) -> None:
        """Spectrograms and audio of the first utterances of each speaker, converted to the other."""
        vocoder = GriffinLimVocoder(self.recipe.features)
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        for source, target, generate in (("a", "b", self.model.a_to_b), ("b", "a", self.model.b_to_a)):
            corpus = self.speakers[source]
            for index, normalized in enumerate(corpus.images[: self.recipe.data.media_utterances]):
                image = corpus.stats.denormalize(normalized)[None].to(device)  # [1, n_mels, T] in [-1, 1]
                converted = convert_image(generate, image, corpus.stats.to(device), self.speakers[target].stats.to(device))
                tag = f"{source}2{target}/{index}"
                writer.add_image(f"{tag}/source", (image.flip(-2).float().cpu() + 1) / 2, step)
                writer.add_image(f"{tag}/converted", (converted.flip(-2).float().cpu() + 1) / 2, step)
                audio = vocoder(converted.float().cpu())  # [1, samples]
                writer.add_audio(f"{tag}/audio", audio.clamp(-1, 1), step, sample_rate=self.recipe.features.sample_rate)
        self.model.train(was_training)

    def export(self, path: Path, info: dict) -> None:
        tensors = {f"G_AB.{k}": v for k, v in self.model.G_AB.state_dict().items()}
        tensors |= {f"G_BA.{k}": v for k, v in self.model.G_BA.state_dict().items()}
        for side, corpus in self.speakers.items():
            tensors[f"stats.{side}.mean"], tensors[f"stats.{side}.std"] = corpus.stats.mean, corpus.stats.std
        header = {
            "kind": "voice-cyclegan",
            "features": to_dict(self.recipe.features),
            "model": to_dict(self.recipe.model),
            "speakers": {side: {"name": c.name, "training_seconds": round(c.frames * self.recipe.features.hop_length
                                                                           / self.recipe.features.sample_rate, 1)}
                         for side, c in self.speakers.items()},
            "training": {**info, "recipe": to_dict(self.recipe)},
        }
        save_model_file(path, tensors, header)


def load_recipe(path: str | Path, overrides: list[str] = (), steps: int | None = None) -> VoiceRecipe:
    """A recipe YAML with ``--set`` overrides and an optional step count applied."""
    recipe = apply_overrides(load_yaml(VoiceRecipe, path), list(overrides))
    if steps is not None:
        recipe = replace(recipe, train=replace(recipe.train, steps=steps))
    return recipe


def train_voice(recipe: VoiceRecipe, speaker_a: Path, speaker_b: Path, run_dir: Path, resume: bool = False,
                names: tuple[str | None, str | None] = (None, None)) -> TrainingOutcome:
    """Train speaker A <-> speaker B into ``run_dir`` (checkpoints, logs, ``model.safetensors``).

    Speakers are named after their folders (the parent folder for generic names such as ``train``)
    unless ``names`` says otherwise.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_resumable(recipe, run_dir, resume)
    save_yaml(recipe, run_dir / "recipe.yaml")
    corpora = [load_speaker(folder, recipe.features, run_dir / "cache", recipe.data.min_seconds,
                            recipe.data.crop_frames, name or speaker_name(folder))
               for folder, name in zip((speaker_a, speaker_b), names)]
    for corpus in corpora:
        seconds = corpus.frames * recipe.features.hop_length / recipe.features.sample_rate
        log.info("speaker %s: %d utterances, %.1f min; %d unreadable file(s) skipped",
                 corpus.name, len(corpus.images), seconds / 60, len(corpus.skipped))
        for reason in corpus.skipped:
            log.warning("skipped: %s", reason)
    return fit(VoiceConversionTask(recipe, *corpora), recipe.train, run_dir, resume=resume)


def speaker_name(folder: Path) -> str:
    """A speaker's default name: its folder's name, or the parent's for generic names like ``train``."""
    folder = folder.resolve()
    generic = {"train", "training", "wav", "wavs", "audio", "data", "clips", "recordings"}
    return folder.parent.name if folder.name.lower() in generic and folder.parent.name else folder.name


def _check_resumable(recipe: VoiceRecipe, run_dir: Path, resume: bool) -> None:
    saved = run_dir / "recipe.yaml"
    if not resume or not saved.is_file():
        return
    previous = load_yaml(VoiceRecipe, saved)
    if replace(previous, train=replace(previous.train, steps=0)) != replace(recipe, train=replace(recipe.train, steps=0)):
        raise ConfigError(f"{saved}: the run was started with a different recipe; resume with the same recipe "
                          "(only the step count may change) or use a new --out folder")
