"""The one conversion of a segment: align -> image -> generator -> refine.

::

    waveform --(WORLD pitch alignment, done by the caller)--> aligned waveform
             --> log-mel image [1, n_mels, T] --> generator (normalized by the input's statistics,
                 mapped onto the target's) --> converted image [1, n_mels, T]
             --> refine: the change applied to the aligned input's own STFT (Griffin-Lim seeded by its phase)
             --> waveform, loudness matched to the input, checked for damage

:func:`segment` is that path. The :class:`~voiceconv.convert.converter.Converter` runs it on every window,
held-back model selection (:mod:`voiceconv.train.selection`) on every held-back recording, and training
media are rendered by a Converter of the weights being trained, so what TensorBoard plays is what the
exported model will say.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from voiceconv.audio.features import FeatureConfig, MelImageEncoder, SpeakerStats
from voiceconv.audio.io import loudness
from voiceconv.audio.vocoder import DEFAULT_ITERATIONS, GriffinLimVocoder
from voiceconv.modelfiles.checks import check_output
from voiceconv.modelfiles.voice import VoiceModel
from voiceconv.models.cyclegan import apply_generator
from voiceconv.models.directions import Direction, target_side

SIZE_MULTIPLE = 4  # the generators downsample twice by 2
MAX_GAIN_DB = 24.0  # loudness matching never amplifies or attenuates a window by more than this
# Refining the aligned input's STFT: 8 iterations scored within 0.02 DNSMOS and 0.03 dB MCD of 32 on Kathleen -> rms
# (8 held-out sentences), at a quarter of the vocoder's time; 4 kept every score of 8 within noise in five directions
# of three dev pairs (benchmarks/live_quality.py --windowing file file/4; over 119 sentences each way between Kathleen
# and rms, paired, WER -0.005 and -0.004, MCD and DNSMOS within 0.01) at 0.88x the file conversion's time (issue 22).
REFINE_ITERATIONS = 4

#: A generator as the pipeline runs it: normalized images ``[1, 1, n_mels, T]`` -> ``[1, 1, n_mels, T]``.
Generate = Callable[[torch.Tensor], torch.Tensor]


def convert_image(generate: Generate, image: torch.Tensor, source: SpeakerStats, target: SpeakerStats) -> torch.Tensor:
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


def vocoder_for(features: FeatureConfig, refine: bool, n_iter: int | None = None,
                device: torch.device | str = "cpu") -> GriffinLimVocoder:
    """The vocoder conversion uses: ``n_iter`` Griffin-Lim iterations, by default :data:`REFINE_ITERATIONS` when
    refining a pitch-aligned input's STFT (it starts consistent) and :data:`DEFAULT_ITERATIONS` otherwise."""
    default = REFINE_ITERATIONS if refine else DEFAULT_ITERATIONS
    return GriffinLimVocoder(features, n_iter=default if n_iter is None else n_iter, device=device)


@dataclass
class Pipeline:
    """The stages of one model on one device: what :func:`segment` runs.

    ``generators`` by direction; ``stats``: ``"a"``, ``"b"`` (the speakers, what outputs are mapped onto) and
    ``"a2b"``, ``"b2a"`` (what each direction's input is normalized with). ``refine``: the model was trained
    on pitch-aligned input, so its output is a change applied to the input's own STFT. ``name`` (the model
    file) is what a refusal of damaged output names.
    """

    name: str | Path
    features: FeatureConfig
    generators: Mapping[str, Generate]
    stats: Mapping[str, SpeakerStats]
    refine: bool
    encoder: MelImageEncoder
    vocoder: GriffinLimVocoder
    device: torch.device

    @classmethod
    def build(cls, name: str | Path, features: FeatureConfig, generators: Mapping[str, Generate],
              stats: Mapping[str, SpeakerStats], refine: bool, device: torch.device | str = "cpu",
              n_iter: int | None = None) -> Pipeline:
        """The pipeline with its encoder and vocoder made, ``stats`` moved to ``device``."""
        device = torch.device(device)
        return cls(name, features, generators, {group: s.to(device) for group, s in stats.items()}, refine,
                   MelImageEncoder(features, device), vocoder_for(features, refine, n_iter, device), device)

    @classmethod
    def from_model(cls, model: VoiceModel, device: torch.device | str = "cpu", n_iter: int | None = None) -> Pipeline:
        """The pipeline of a :class:`VoiceModel`: its generators built on ``device`` (the mask channel added when
        it fills in frames), its statistics (outputs mapped onto :attr:`VoiceModel.output_stats`), and refining
        when it was trained on pitch-aligned input."""
        generate = {direction: partial(apply_generator, net, mask_frames=model.config.mask_frames)
                    for direction, net in model.generators(device).items()}
        stats = {**model.stats, **model.output_stats}  # "a", "b": what outputs are mapped onto
        return cls.build(model.path, model.features, generate, stats, bool(model.alignment), device, n_iter)

    def with_refine_iterations(self, n_iter: int | None) -> Pipeline:
        """This pipeline refining with ``n_iter`` Griffin-Lim iterations (None, or a model that does not refine:
        this pipeline itself); everything else shared."""
        if n_iter is None or not self.refine or n_iter == self.vocoder.n_iter:
            return self
        vocoder = copy.copy(self.vocoder)  # the same windows and matrices
        vocoder.n_iter = n_iter
        return dataclasses.replace(self, vocoder=vocoder)

    @property
    def minimum_seconds(self) -> float:
        """Shortest input that can be converted: one STFT window."""
        return self.features.n_fft / self.features.sample_rate

    def image(self, wav: np.ndarray) -> torch.Tensor:
        """Log-mel image ``[1, n_mels, T]`` of a waveform ``[samples]``, on the pipeline's device."""
        return self.encoder(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)).to(self.device))

    def convert_image(self, image: torch.Tensor, direction: Direction) -> torch.Tensor:
        """Log-mel image ``[1, n_mels, T]`` (input of ``direction``, aligned) -> the target speaker's, float32."""
        converted = convert_image(self.generators[direction], image.to(self.device), self.stats[direction],
                                  self.stats[target_side(direction)])
        return converted.float()

    def vocode(self, converted: torch.Tensor, image: torch.Tensor, aligned: torch.Tensor) -> torch.Tensor:
        """Waveform ``[1, samples]`` of a converted image ``[1, n_mels, T]``. A pitch-aligned model's output is a
        change of its input (``image`` of ``aligned`` ``[1, samples]``), applied to the input's own STFT
        (refine); other models' images go through the mel pseudo-inverse, Griffin-Lim seeded by the input's
        phase either way."""
        if self.refine:
            return self.vocoder.refine(converted, image, aligned)
        return self.vocoder(converted, reference=aligned)


@torch.inference_mode()
def segment(pipeline: Pipeline, wav: np.ndarray, aligned: np.ndarray, direction: Direction) -> np.ndarray:
    """One segment ``[samples]`` and its pitch-aligned version ``[samples]`` -> converted ``[samples]``: image,
    generator, refine, loudness matched to ``wav``; damaged output (NaN, a constant) is refused with a
    :class:`~voiceconv.errors.ModelFileError` naming the model."""
    source = torch.from_numpy(np.ascontiguousarray(aligned, dtype=np.float32)).to(pipeline.device)
    image = pipeline.encoder(source)  # [1, n_mels, T]; the aligned input also seeds the phase: harmonics at its pitch
    converted = pipeline.convert_image(image, direction)  # [1, n_mels, T]
    reference = source[None, : pipeline.features.samples_for(image.shape[-1])]  # [1, samples]
    out = pipeline.vocode(converted, image, reference)[0].cpu().numpy()  # [(T-1) * hop]
    out = np.pad(out, (0, len(wav) - len(out)))
    return check_output(pipeline.name, out * matching_gain(wav, out, pipeline.features.sample_rate))


def matching_gain(source: np.ndarray, converted: np.ndarray, sample_rate: int) -> float:
    """Gain that gives ``converted`` the loudness of ``source`` (BS.1770), within +-MAX_GAIN_DB."""
    if not np.any(converted) or not np.any(source):
        return 1.0
    difference = loudness(source, sample_rate) - loudness(converted, sample_rate)
    return float(10 ** (np.clip(difference, -MAX_GAIN_DB, MAX_GAIN_DB) / 20))
