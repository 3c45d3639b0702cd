"""A speaker's recordings as cached, normalized log-mel images, and random fixed-width crops of them.

Features are computed once per folder and cached on disk in a safetensors
file whose name is a hash of the feature config and of every file's path,
size and modification time, so a changed, added or removed recording (or a
different feature config) recomputes the cache. Unreadable files are
reported once and skipped.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from voiceconv.audio.features import FeatureConfig, MelImageEncoder, SpeakerStats
from voiceconv.audio.io import audio_files, load_audio
from voiceconv.config import to_dict
from voiceconv.errors import AudioError, VoiceconvError
from voiceconv.files import atomic_output, fingerprint

log = logging.getLogger(__name__)


class SpeakerCorpus:
    """All utterances of one speaker as log-mel images ``[n_mels, T_i]``, normalized by the speaker's stats."""

    def __init__(self, name: str, images: list[torch.Tensor], stats: SpeakerStats, skipped: list[str]):
        self.name, self.images, self.stats, self.skipped = name, images, stats, skipped
        self.lengths = torch.tensor([image.shape[-1] for image in images], dtype=torch.float)
        self.targets: list[torch.Tensor] | None = None  # a pseudo-target [n_mels, T_i] per image, when made

    @property
    def frames(self) -> int:
        return int(self.lengths.sum())

    def crops(self, batch: int, width: int, generator: torch.Generator) -> torch.Tensor:
        """``[batch, 1, n_mels, width]`` random crops; utterances drawn in proportion to their length."""
        return self._cut(self.images, self._positions(batch, width, generator), width)

    def crops_with_targets(self, batch: int, width: int, generator: torch.Generator
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random crops ``[batch, 1, n_mels, width]`` and their pseudo-targets' crops at the same places."""
        if self.targets is None:
            raise ValueError(f"speaker {self.name} has no pseudo-targets")
        positions = self._positions(batch, width, generator)
        return self._cut(self.images, positions, width), self._cut(self.targets, positions, width)

    def _positions(self, batch: int, width: int, generator: torch.Generator) -> list[tuple[int, int]]:
        """``batch`` (utterance, first frame) pairs, utterances drawn in proportion to their length."""
        picks = torch.multinomial(self.lengths, batch, replacement=True, generator=generator)
        return [(index, int(torch.randint(0, self.images[index].shape[-1] - width + 1, (), generator=generator)))
                for index in picks.tolist()]

    @staticmethod
    def _cut(images: list[torch.Tensor], positions: list[tuple[int, int]], width: int) -> torch.Tensor:
        return torch.stack([images[index][:, start:start + width] for index, start in positions])[:, None]


WaveTransform = Callable[[np.ndarray], np.ndarray]  # a waveform [samples] -> another, e.g. the WORLD pitch alignment


def split_held_back(files: list[Path], count: int) -> tuple[list[Path], list[Path]]:
    """(training files, held-back files spread evenly over the sorted list): held-back files are never trained on;
    model selection scores on them. ``count`` are asked for and at most a quarter of ``files`` (at least one) are
    given, so that a small folder still trains on most of its speech."""
    if count <= 0:
        return files, []
    count = min(count, max(1, len(files) // 4))
    if count >= len(files):
        raise VoiceconvError(f"cannot hold back {count} of {len(files)} recordings: add recordings or lower "
                             "data.held_back")
    picks = set(np.linspace(0, len(files) - 1, count + 2)[1:-1].round().astype(int).tolist())
    return [f for i, f in enumerate(files) if i not in picks], [f for i, f in enumerate(files) if i in picks]


def load_speaker(folder: str | Path, config: FeatureConfig, cache_dir: str | Path, min_seconds: float,
                 crop_frames: int, name: str | None = None, files: list[Path] | None = None,
                 transform: WaveTransform | None = None, transform_key: str = "") -> SpeakerCorpus:
    """Load (or compute and cache) a speaker's images; errors clearly when there is too little audio.

    ``files`` (default: every audio file under ``folder``) selects the recordings. ``transform`` is applied to
    each waveform before its image is made (the pitch alignment); ``transform_key`` names it in the cache key.
    """
    folder = Path(folder)
    files = audio_files(folder) if files is None else files
    key = fingerprint(files, {"features": to_dict(config), "transform": transform_key})
    cache = Path(cache_dir) / f"{folder.name}{'-' + transform_key if transform_key else ''}-{key}.safetensors"
    raw, skipped = _read_cache(cache) if cache.is_file() else _compute(files, config, cache, transform)
    usable = [image for image in raw if image.shape[-1] >= crop_frames]
    seconds = sum(image.shape[-1] for image in usable) * config.hop_length / config.sample_rate
    if seconds < min_seconds:
        raise VoiceconvError(
            f"{folder}: only {math.floor(seconds * 10) / 10:.1f} s of usable audio in {len(usable)} file(s) "
            f"({len(files)} found, {len(skipped)} unreadable, {len(raw) - len(usable)} shorter than one "
            f"{crop_frames}-frame crop); at least {min_seconds:g} s are needed: add recordings")
    stats = _statistics(usable)
    return SpeakerCorpus(name or folder.name, [stats.normalize(image) for image in usable], stats, skipped)


def load_training_audio(path: Path, config: FeatureConfig) -> np.ndarray:
    """A training recording as the corpus reads it: mono at the feature rate, edge silence trimmed."""
    return load_audio(path, config.sample_rate, trim_silence=True, min_seconds=config.n_fft / config.sample_rate)


def _compute(files: list[Path], config: FeatureConfig, cache: Path,
             transform: WaveTransform | None = None) -> tuple[list[torch.Tensor], list[str]]:
    encoder = MelImageEncoder(config)
    images, skipped = [], []
    for path in files:
        try:
            wav = load_training_audio(path, config)
        except AudioError as err:
            log.warning("skipping %s", err)
            skipped.append(str(err))
            continue
        if transform is not None:
            wav = transform(wav)
        images.append(encoder(torch.from_numpy(wav))[0])  # [n_mels, T]
    tensors = {f"{i:06d}": image.contiguous() for i, image in enumerate(images)}
    with atomic_output(cache) as tmp:
        save_file(tensors, str(tmp), metadata={"skipped": json.dumps(skipped)})
    return images, skipped


def _read_cache(cache: Path) -> tuple[list[torch.Tensor], list[str]]:
    from safetensors import safe_open

    with safe_open(str(cache), "pt") as f:
        skipped = json.loads((f.metadata() or {}).get("skipped", "[]"))
    tensors = load_file(str(cache))
    return [tensors[key] for key in sorted(tensors)], skipped


def _statistics(images: list[torch.Tensor]) -> SpeakerStats:
    frames = torch.cat(images, dim=-1)  # [n_mels, total_frames]
    return SpeakerStats(mean=frames.mean(dim=-1), std=frames.std(dim=-1).clamp_min(1e-3))
