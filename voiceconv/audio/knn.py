"""kNN frame matching, the formula stage's pull toward the target: every frame of the source speaker moved part of
the way toward the mean of the target speaker's nearest frames.

Unpaired data has no target for a source frame. kNN-VC (Baas et al. 2023)
and the INCA alignment (Erro et al. 2010) make one: describe each frame in a
speaker-normalized space, match it to the target speaker's nearest frames,
and take their mean. Here a frame is WORLD's log spectral envelope (after
the pitch alignment of :mod:`voiceconv.audio.world`); it is described by the
first cepstral coefficients (a DCT along frequency, c1..c_n: the envelope's
shape without its level) of its envelope normalized by its speaker's per-bin
mean and deviation, stacked over a few neighbouring frames so that matches
share their phonetic context, and matched voiced with voiced, unvoiced with
unvoiced. With ``phone_weight`` > 0 a frame is also described by the
probabilities of the phones (:mod:`voiceconv.audio.phones`, a small phone
model trained on flite voices), so that a match is the same sound as well as
a near spectrum. The frame keeps its own level and moves part of the way
(``blend``) toward the neighbours' mean log envelope::

    e' = e + blend * (mean_k(target frames nearest e) - e),  level(e') = level(e)

Taking the neighbours whole (blend 1) replaces the words with the target's
nearest sounds; half way kept them on two held-out pairs (shared/DESIGN.md,
kNN probe), so it is the default.

:class:`KnnVoiceChanger` is the WORLD voice changer with this pull. It is a
standing baseline of ``voiceconv evaluate --baselines`` ("knn-vc"), and its
output is the pseudo-target the CycleGAN's generators regress toward in
training (``model.pull_weight``): a model trained toward it must beat it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from voiceconv.audio import world
from voiceconv.audio import phones
from voiceconv.audio.features import SpeakerStats, dct_matrix

CHUNK_FRAMES = 2048  # source frames matched at once: bounds the distance matrix to CHUNK_FRAMES x pool frames


@dataclass(frozen=True)
class KnnConfig:
    """How frames are matched and moved (see the module docstring)."""

    k: int = 8  # nearest target frames averaged
    context: int = 2  # frames on each side stacked into a frame's description
    cepstra: int = 24  # cepstral coefficients c1..c_n describing a frame
    blend: float = 0.5  # how far the target moves toward the neighbours' mean (0 = the source itself)
    smooth_frames: int = 1  # the move is averaged over this many frames (odd; 1 = frame by frame)
    voiced_only: bool = False  # leave unvoiced frames (the noise of fricatives and bursts) where they are
    keep_variance: bool = False  # give the neighbours' means the target's variance over time (global variance)
    reference_files: int = 60  # training: the target recordings (evenly spread) whose frames are matched against
    # weight of a frame's phone probabilities (voiceconv.audio.phones, square roots) beside its description: a match
    # must then be the same sound as well as a near spectrum. 0 matches on the spectrum alone.
    phone_weight: float = 0.0

    def __post_init__(self):
        for name, low, high in (("k", 1, 256), ("context", 0, 16), ("cepstra", 1, 128), ("reference_files", 1, 10000)):
            if not low <= getattr(self, name) <= high:
                raise ValueError(f"pull.{name} must be between {low} and {high}, got {getattr(self, name)}")
        if not 0.0 <= self.blend <= 1.0:
            raise ValueError(f"pull.blend must be between 0 and 1, got {self.blend}")
        if self.smooth_frames < 1 or self.smooth_frames % 2 == 0:
            raise ValueError(f"pull.smooth_frames must be an odd number >= 1, got {self.smooth_frames}")
        if not 0.0 <= self.phone_weight <= 1000.0:
            raise ValueError(f"pull.phone_weight must be between 0 and 1000, got {self.phone_weight}")


def frame_descriptions(image: torch.Tensor, config: KnnConfig) -> torch.Tensor:
    """A normalized image ``[H, T]`` -> one row per frame ``[T, cepstra * (2 context + 1)]``: the frame's cepstra
    c1..c_n and its neighbours' (edge frames repeated)."""
    rows, frames = image.shape
    cepstra = dct_matrix(rows, config.cepstra + 1)[1:] @ image  # [cepstra, T], c0 (the level) left out
    padded = torch.nn.functional.pad(cepstra[None], (config.context, config.context), mode="replicate")[0]
    shifted = [padded[:, offset:offset + frames] for offset in range(2 * config.context + 1)]
    return torch.cat(shifted, dim=0).T.contiguous()  # [T, cepstra * (2 context + 1)]


class FramePool:
    """Frames to match against: their descriptions ``[N, D]`` (with squared norms) from normalized images, with
    ``extras`` ``[T_i, E]`` per image (columns appended to its frames' descriptions) when given."""

    def __init__(self, images: list[torch.Tensor], config: KnnConfig, extras: list[torch.Tensor] | None = None):
        self.config = config
        extras = extras or [torch.zeros(image.shape[1], 0) for image in images]
        self.descriptions = torch.cat([torch.cat([frame_descriptions(image, config), extra], dim=1)
                                       for image, extra in zip(images, extras)])  # [N, D + E]
        self.norms = self.descriptions.pow(2).sum(dim=1)  # [N]
        if len(self.descriptions) < config.k:
            raise ValueError(f"{len(self.descriptions)} target frames are fewer than k={config.k}")

    def nearest(self, image: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """Indices ``[T, k]`` of the pool's frames nearest each frame of a normalized image ``[H, T]`` (with its
        ``extra`` columns ``[T, E]`` when the pool has some)."""
        described = frame_descriptions(image, self.config)
        return self.nearest_described(described if extra is None else torch.cat([described, extra], dim=1))

    def nearest_described(self, descriptions: torch.Tensor) -> torch.Tensor:
        """Indices ``[N, k]`` of the pool's frames nearest each of ``descriptions`` ``[N, D]``."""
        nearest = []
        for chunk in descriptions.split(CHUNK_FRAMES):
            distances = self.norms[None] - 2.0 * chunk @ self.descriptions.T  # [t, N]: squared, up to ||chunk||^2
            nearest.append(distances.topk(self.config.k, dim=1, largest=False).indices)  # [t, k]
        return torch.cat(nearest)


def blend_toward(frames: torch.Tensor, matched: torch.Tensor, blend: float, smooth_frames: int = 1
                 ) -> torch.Tensor:
    """``frames`` ``[H, T]`` moved by ``blend`` toward ``matched`` ``[H, T]`` once the latter has each frame's
    level (its mean over rows) replaced by the former's; the move is averaged over ``smooth_frames`` frames
    centred on each (edges repeated), so the frame's own quick changes (the phones) stay its own."""
    matched = matched - matched.mean(dim=0, keepdim=True) + frames.mean(dim=0, keepdim=True)
    return frames + blend * moving_average(matched - frames, smooth_frames)


def moving_average(frames: torch.Tensor, width: int) -> torch.Tensor:
    """``frames`` ``[H, T]`` averaged along time over ``width`` (odd) frames centred on each, edges repeated."""
    if width <= 1:
        return frames
    padded = torch.nn.functional.pad(frames[None], (width // 2, width // 2), mode="replicate")  # [1, H, T + w - 1]
    return torch.nn.functional.avg_pool1d(padded, width, stride=1)[0]  # [H, T]


LOG_FLOOR = 1e-12
MAX_VARIANCE_GAIN = 2.0  # keep_variance widens a coefficient's spread over time at most this much


class KnnVoiceChanger:
    """The WORLD voice changer of ``alignment`` with each frame's envelope pulled toward the target's frames among
    ``target_waves``; ``source_waves`` give the source speaker's normalization (all at ``sample_rate``). With
    ``config.phone_weight`` > 0, frames are also described by ``phone_model``'s probabilities (the shipped
    :func:`voiceconv.audio.phones.shipped_model` when none is given)."""

    def __init__(self, source_waves: Iterable[np.ndarray], target_waves: Iterable[np.ndarray], sample_rate: int,
                 alignment: world.Alignment, config: KnnConfig = KnnConfig(),
                 phone_model: phones.PhoneModel | None = None):
        self.sample_rate, self.alignment, self.config = sample_rate, alignment, config
        self.phone_model = (phone_model or phones.shipped_model()) if config.phone_weight > 0 else None
        source = [self._log_envelope(wav, alignment.warp)[1] for wav in source_waves]  # [bins, T_i] each
        target = [self._target_frames(wav) for wav in target_waves]  # (voiced [T_i], [bins, T_i], [T_i, phones])
        self.source_stats = _statistics(source)
        voiced = torch.cat([flags for flags, _, _ in target])
        frames = torch.cat([envelope for _, envelope, _ in target], dim=1)  # [bins, N]
        sounds = torch.cat([columns for _, _, columns in target])  # [N, phones] (or [N, 0])
        normalized = _statistics([frames]).normalize(frames)
        self.pools = {}  # voiced flag -> (FramePool, raw log envelopes [N_v, bins])
        self.cepstra = dct_matrix(frames.shape[0], config.cepstra + 1)[1:]  # [cepstra, bins]: c1..c_n
        self.variances = {}  # keep_variance: voiced flag -> the target's cepstral variance over an utterance [cepstra]
        for flag in (True, False):
            chosen = voiced == flag
            if int(chosen.sum()) >= config.k:
                self.pools[flag] = (FramePool([normalized[:, chosen]], config, [sounds[chosen]]),
                                    frames[:, chosen].T.contiguous())
                if config.keep_variance:
                    self.variances[flag] = _utterance_variance(
                        [self.cepstra @ envelope[:, flags == flag] for flags, envelope, _ in target])

    @property
    def pool_size(self) -> int:
        """The target frames matched against."""
        return sum(len(frames) for _, frames in self.pools.values())

    def __call__(self, wav: np.ndarray) -> np.ndarray:
        """The converted waveform ``[samples]``, as long as ``wav``."""
        settings = self.alignment.settings
        frames = world.analyse(wav, self.sample_rate, settings)
        log_envelope, matched = self.match(frames)  # [bins, T] each
        moved = blend_toward(log_envelope, matched, self.config.blend, self.config.smooth_frames)  # [bins, T]
        moved = moved.T.double().numpy()  # [T, bins]
        changed = world.WorldFrames(world.transform_f0(frames.f0, self.alignment), np.exp(moved).copy(order="C"),
                                    frames.aperiodicity)
        out = world.synthesize(changed, self.sample_rate, len(wav), settings)
        return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)

    def match(self, frames: world.WorldFrames) -> tuple[torch.Tensor, torch.Tensor]:
        """A source utterance's (its WORLD ``frames``) warped log envelope ``[bins, T]`` and, frame by frame, the mean
        log envelope of its nearest target frames ``[bins, T]`` (the frame itself where it is not matched)."""
        voiced, log_envelope = self._log_envelope(None, self.alignment.warp, frames)  # [T], [bins, T]
        described = self.source_stats.normalize(log_envelope)
        sounds = self.phone_columns(frames)  # [T, phones] (or [T, 0])
        matched = log_envelope.clone()
        for flag, (pool, pool_frames) in self.pools.items():
            chosen = voiced == flag
            if chosen.any() and (flag or not self.config.voiced_only):
                nearest = pool.nearest(described[:, chosen], sounds[chosen])  # [T_flag, k] (context: chosen frames)
                matched[:, chosen] = pool_frames[nearest].mean(dim=1).T
                if self.config.keep_variance:
                    matched[:, chosen] = self.with_target_variance(matched[:, chosen], flag)
        return log_envelope, matched

    def _target_frames(self, wav: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A target recording's voicing ``[T]``, log envelope ``[bins, T]`` and phone columns ``[T, phones]``."""
        frames = world.analyse(wav, self.sample_rate, self.alignment.settings)
        return (*self._log_envelope(None, frames=frames), self.phone_columns(frames))

    def phone_columns(self, frames: world.WorldFrames) -> torch.Tensor:
        """The columns ``[T, phones]`` that a frame's phone probabilities add to its description: their square roots
        times ``phone_weight`` (so two sure, different phones lie ``2 phone_weight^2`` apart in squared distance).
        ``[T, 0]`` without a phone model."""
        if self.phone_model is None:
            return torch.zeros(len(frames.f0), 0)
        return self.config.phone_weight * self.phone_model.posteriors(frames.envelope, frames.f0).sqrt()

    def with_target_variance(self, matched: torch.Tensor, flag: bool) -> torch.Tensor:
        """Neighbours' means ``[bins, T]`` with their cepstra c1..c_n spread over time as much as the target's
        frames spread in an utterance: an average of k frames is smoother than any one frame, which blurs the
        contrast between sounds (global variance compensation, Toda et al. 2007, on the matched frames)."""
        if matched.shape[1] < 2:
            return matched
        cepstra = self.cepstra @ matched  # [cepstra, T]
        mean = cepstra.mean(dim=1, keepdim=True)
        scale = (self.variances[flag] / cepstra.var(dim=1).clamp_min(1e-8)).sqrt().clamp(1.0, MAX_VARIANCE_GAIN)
        return matched + self.cepstra.T @ ((cepstra - mean) * (scale[:, None] - 1.0))  # only c1..c_n change

    def _log_envelope(self, wav: np.ndarray | None, warp: float = 1.0, frames: world.WorldFrames | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Voicing ``[T]`` and the log envelope ``[bins, T]``, warped by ``warp``, of ``wav`` (or of its ``frames``)."""
        frames = frames or world.analyse(wav, self.sample_rate, self.alignment.settings)
        envelope = world.warp_envelope(frames.envelope, warp)
        return torch.from_numpy(frames.f0 > 0), torch.from_numpy(np.log(envelope + LOG_FLOOR).T.astype(np.float32))


def _utterance_variance(cepstra: list[torch.Tensor]) -> torch.Tensor:
    """The mean over utterances of each coefficient's variance over an utterance's frames: ``[n, T_i]`` -> ``[n]``."""
    variances = [c.var(dim=1) for c in cepstra if c.shape[1] >= 2]
    return torch.stack(variances).mean(dim=0) if variances else torch.ones(cepstra[0].shape[0])


def _statistics(envelopes: list[torch.Tensor]) -> SpeakerStats:
    """Per-bin mean and standard deviation of log envelopes ``[bins, T_i]``."""
    pooled = torch.cat(envelopes, dim=1).double()  # [bins, N]
    return SpeakerStats(pooled.mean(dim=1).float(), pooled.std(dim=1).clamp_min(1e-3).float())
