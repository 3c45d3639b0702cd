"""The kNN voice changer ("knn-vc"), a standing baseline: the WORLD voice changer plus a pull of every frame's
spectral envelope toward the target speaker's nearest frames, with no network and no training.

After the WORLD alignment (log-Gaussian F0, one envelope warp; :mod:`voiceconv.audio.world`), each frame's
log envelope is described by its speaker-normalized cepstra with a few frames of context
(:mod:`voiceconv.data.pseudo_targets`), matched to the ``k`` nearest frames of the target's reference
recordings (voiced with voiced, unvoiced with unvoiced), and moved half way toward their mean log envelope,
the frame's own level kept (kNN-VC, Baas et al. 2023, on WORLD envelopes as in INCA, Erro et al. 2010); WORLD
resynthesizes it. It is the learned model's pseudo-target rendered by formula: a model that learns from such
targets must beat it.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from voiceconv.audio import world
from voiceconv.data.pseudo_targets import FramePool, PseudoTargetConfig, blend_toward

LOG_FLOOR = 1e-12


class KnnVoiceChanger:
    """Converts waveforms at ``sample_rate`` from the source speaker toward the target's reference frames."""

    def __init__(self, source_waves: Iterable[np.ndarray], target_waves: Iterable[np.ndarray], sample_rate: int,
                 alignment: world.Alignment, config: PseudoTargetConfig = PseudoTargetConfig()):
        self.sample_rate, self.alignment, self.config = sample_rate, alignment, config
        source = [self._aligned_log_envelope(wav) for wav in source_waves]  # [(voiced [T], log env [bins, T])]
        target = [self._log_envelope(wav) for wav in target_waves]
        self.source_stats = _statistics([envelope for _, envelope in source])
        self.target_stats = _statistics([envelope for _, envelope in target])
        voiced = np.concatenate([flags for flags, _ in target])
        frames = torch.from_numpy(np.concatenate([envelope for _, envelope in target], axis=1))  # [bins, N]
        normalized = _normalize(frames, self.target_stats)
        self.pools = {}  # voiced flag -> (FramePool, raw log envelopes [N_v, bins])
        for flag in (True, False):
            chosen = torch.from_numpy(voiced == flag)
            if int(chosen.sum()) >= config.k:
                self.pools[flag] = (FramePool([normalized[:, chosen]], config), frames[:, chosen].T.contiguous())

    @property
    def pool_size(self) -> int:
        """The target frames matched against."""
        return sum(len(frames) for _, frames in self.pools.values())

    def __call__(self, wav: np.ndarray) -> np.ndarray:
        """The converted waveform ``[samples]``, as long as ``wav``."""
        settings = self.alignment.settings
        frames = world.analyse(wav, self.sample_rate, settings)
        envelope = world.warp_envelope(frames.envelope, self.alignment.warp)
        log_envelope = torch.from_numpy(np.log(envelope + LOG_FLOOR).T.astype(np.float32))  # [bins, T]
        described = _normalize(log_envelope, self.source_stats)
        matched = log_envelope.clone()
        voiced = torch.from_numpy(frames.f0 > 0)
        for flag, (pool, pool_frames) in self.pools.items():
            chosen = voiced == flag
            if chosen.any():
                nearest = pool.nearest(described[:, chosen])  # [T_flag, k] (context from the chosen frames)
                matched[:, chosen] = pool_frames[nearest].mean(dim=1).T
        moved = blend_toward(log_envelope, matched, self.config.blend).T.double().numpy()  # [T, bins]
        changed = world.WorldFrames(world.transform_f0(frames.f0, self.alignment), np.exp(moved).copy(order="C"),
                                    frames.aperiodicity)
        out = world.synthesize(changed, self.sample_rate, len(wav), settings)
        return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)

    def _log_envelope(self, wav: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        frames = world.analyse(wav, self.sample_rate, self.alignment.settings)
        return frames.f0 > 0, np.log(frames.envelope + LOG_FLOOR).T.astype(np.float32)  # [T], [bins, T]

    def _aligned_log_envelope(self, wav: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        frames = world.analyse(wav, self.sample_rate, self.alignment.settings)
        warped = world.warp_envelope(frames.envelope, self.alignment.warp)
        return frames.f0 > 0, np.log(warped + LOG_FLOOR).T.astype(np.float32)


def _statistics(envelopes: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-bin mean and standard deviation ``[bins, 1]`` of log envelopes ``[bins, T_i]``."""
    pooled = torch.from_numpy(np.concatenate(envelopes, axis=1)).double()
    return pooled.mean(dim=1, keepdim=True).float(), pooled.std(dim=1, keepdim=True).clamp_min(1e-3).float()


def _normalize(log_envelope: torch.Tensor, stats: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    mean, std = stats
    return ((log_envelope.float() - mean) / std).contiguous()
