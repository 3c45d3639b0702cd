"""The one conversion path: waveform -> log-mel image -> generator -> image -> Griffin-Lim -> waveform.

The Python API, the CLI, evaluation and the training loop's validation media
all go through :func:`convert_image` and :class:`Converter`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from voiceconv.audio.features import FeatureConfig, MelImageEncoder
from voiceconv.audio.io import prepare_waveform
from voiceconv.audio.vocoder import DEFAULT_ITERATIONS, GriffinLimVocoder
from voiceconv.config import from_dict
from voiceconv.data.speakers import SpeakerStats
from voiceconv.errors import VoiceconvError
from voiceconv.modelfile import ModelFileError, load_model_file, prefixed
from voiceconv.models.cyclegan import CycleGANConfig, apply_generator, build_image_generator

Direction = Literal["a2b", "b2a"]
SIZE_MULTIPLE = 4  # the generators downsample twice by 2


def convert_image(generate: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor,
                  source: SpeakerStats, target: SpeakerStats) -> torch.Tensor:
    """Convert a log-mel image ``[1, n_mels, T]`` in [-1, 1] to the target speaker's ``[1, n_mels, T]`` in [-1, 1].

    Normalizes with the source speaker's statistics, pads the width to a
    multiple of 4 (edge frames repeated), runs ``generate`` on ``[1, 1, n_mels, T']``,
    crops, and maps back with the target speaker's statistics.
    """
    frames = image.shape[-1]
    pad = (-frames) % SIZE_MULTIPLE
    normalized = source.normalize(image)[None]  # [1, 1, n_mels, T]
    normalized = F.pad(normalized, (0, pad, 0, 0), mode="replicate")
    converted = generate(normalized)[0, :, :, :frames]  # [1, n_mels, T]
    return target.denormalize(converted).clamp(-1.0, 1.0)


class Converter:
    """A loaded voice model: converts waveforms between its two speakers."""

    def __init__(self, model_path: str | Path, device: str = "cpu", n_iter: int = DEFAULT_ITERATIONS):
        tensors, header = load_model_file(model_path)
        if header.get("kind") != "voice-cyclegan":
            raise ModelFileError(f"{model_path}: a {header.get('kind')!r} model, not a voice conversion model")
        self.path, self.header, self.device = Path(model_path), header, torch.device(device)
        self.features = from_dict(FeatureConfig, header["features"])
        config = from_dict(CycleGANConfig, header["model"])
        self.mask_frames = config.mask_frames
        in_ch = 2 if config.mask_frames else 1
        self.generators = {}
        for direction, name in (("a2b", "G_AB"), ("b2a", "G_BA")):
            net = build_image_generator(config, in_ch, 1, self.features.n_mels)
            net.load_state_dict(prefixed(tensors, name))
            self.generators[direction] = net.to(self.device).eval()
        self.stats = {side: SpeakerStats(**prefixed(tensors, f"stats.{side}")).to(self.device) for side in "ab"}
        self.encoder = MelImageEncoder(self.features, self.device)
        self.vocoder = GriffinLimVocoder(self.features, n_iter=n_iter, device=self.device)

    @property
    def speakers(self) -> dict[str, str]:
        return {side: self.header["speakers"][side]["name"] for side in "ab"}

    @torch.inference_mode()
    def convert_image(self, image: torch.Tensor, direction: Direction = "a2b") -> torch.Tensor:
        """Log-mel image ``[1, n_mels, T]`` of one speaker -> the other speaker's image."""
        source, target = ("a", "b") if direction == "a2b" else ("b", "a")
        net = self.generators[_check_direction(direction)]
        return convert_image(lambda x: apply_generator(net, x, self.mask_frames), image.to(self.device),
                             self.stats[source], self.stats[target])

    @torch.inference_mode()
    def convert(self, wav: np.ndarray, sample_rate: int, direction: Direction = "a2b") -> np.ndarray:
        """Mono waveform ``[samples]`` at ``sample_rate`` -> converted waveform at the model's sample rate."""
        if sample_rate != self.features.sample_rate:
            import soxr

            wav = soxr.resample(np.asarray(wav, dtype=np.float32), sample_rate, self.features.sample_rate, "HQ")
        wav = prepare_waveform(wav, self.features.sample_rate, min_seconds=self.features.n_fft / self.features.sample_rate)
        source = torch.from_numpy(wav).to(self.device)
        image = self.encoder(source)  # [1, n_mels, T]
        converted = self.convert_image(image, direction)
        out = self.vocoder(converted, reference=source[None, : self.features.samples_for(image.shape[-1])])
        return out[0].cpu().numpy()


def _check_direction(direction: str) -> str:
    if direction not in ("a2b", "b2a"):
        raise VoiceconvError(f"direction must be 'a2b' or 'b2a', got {direction!r}")
    return direction
