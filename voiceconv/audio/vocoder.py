"""Griffin-Lim vocoder: log-mel image -> mel magnitude -> linear magnitude -> waveform.

The mel -> linear step multiplies by the precomputed pseudo-inverse of the mel
filterbank and clamps at a small floor (magnitudes cannot be negative). Phase
is then recovered with the fast Griffin-Lim algorithm (Perraudin, Balazs &
Sondergaard 2013), batched and on whatever device the input lives on.

When the converted image is a change of a known input (a pitch-aligned
waveform), :meth:`GriffinLimVocoder.refine` rebuilds the linear magnitude
from the input's own STFT instead: the change (converted minus input image,
in dB) is read off at each mel band's centre frequency, interpolated onto
the linear bins and applied as a gain, so the harmonics keep the full
frequency resolution the mel image never had; Griffin-Lim then starts from
the input's phase.
"""

from __future__ import annotations

import numpy as np
import torch

from voiceconv.audio.features import FeatureConfig, image_to_mel, mel_centres, mel_filterbank, stft_window

DEFAULT_ITERATIONS = 32
DEFAULT_MOMENTUM = 0.99


class GriffinLimVocoder:
    """Turns log-mel images ``[B, 1, n_mels, frames]`` (or ``[1, n_mels, frames]``) into waveforms ``[B, samples]``."""

    def __init__(
        self,
        config: FeatureConfig,
        n_iter: int = DEFAULT_ITERATIONS,
        momentum: float = DEFAULT_MOMENTUM,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ):
        if n_iter < 0:
            raise ValueError(f"n_iter must be >= 0, got {n_iter}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.config = config
        self.n_iter = n_iter
        self.momentum = momentum
        self.seed = seed
        self.window = stft_window(config, device)
        self.mel_pinv = torch.linalg.pinv(mel_filterbank(config).T).to(device)  # [n_freqs, n_mels]
        self.mel_to_bins = _interpolation_matrix(config).to(device)  # [n_freqs, n_mels]

    def mel_to_linear(self, mel: torch.Tensor) -> torch.Tensor:
        """Mel magnitude ``[..., n_mels, T]`` -> linear magnitude ``[..., n_freqs, T]`` (non-negative)."""
        floor = 10 ** (self.config.min_db / 20)
        return torch.matmul(self.mel_pinv, mel).clamp_min(floor)

    def __call__(self, image: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        """Waveforms ``[B, samples]`` for images ``[B, 1, n_mels, T]``.

        ``reference`` (``[B, samples]``), when given, seeds the phase with its
        STFT phase instead of random phase.
        """
        image = image.reshape(-1, *image.shape[-2:])  # [B, n_mels, T]
        magnitude = self.mel_to_linear(image_to_mel(image, self.config))  # [B, n_freqs, T]
        return self.griffin_lim(magnitude, reference)

    def refine(self, image: torch.Tensor, input_image: torch.Tensor, input_wav: torch.Tensor) -> torch.Tensor:
        """Waveforms ``[B, samples]`` for converted images ``[B, 1, n_mels, T]`` that changed ``input_image`` (the
        image of ``input_wav`` ``[B, samples]``): the input's STFT magnitude times the change, then Griffin-Lim
        from the input's phase."""
        image, input_image = image.reshape(-1, *image.shape[-2:]), input_image.reshape(-1, *image.shape[-2:])
        scale = (self.config.max_db - self.config.min_db) / 2  # image units -> dB
        change_db = torch.matmul(self.mel_to_bins, (image - input_image) * scale)  # [B, n_freqs, T]
        spec = self._stft(input_wav.reshape(image.shape[0], -1).to(image.device))
        frames = min(spec.shape[-1], image.shape[-1])
        magnitude = spec[..., :frames].abs() * torch.pow(10.0, change_db[..., :frames] / 20.0)
        return self.griffin_lim(magnitude, spec=spec)  # the input's phase, from the STFT already at hand

    def griffin_lim(self, magnitude: torch.Tensor, reference: torch.Tensor | None = None,
                    spec: torch.Tensor | None = None) -> torch.Tensor:
        """Fast Griffin-Lim: linear magnitude ``[B, n_freqs, T]`` -> waveform ``[B, (T-1)*hop]``, from the phase of
        ``reference`` ``[B, samples]`` (or of its STFT ``spec``, when already computed), else a random one."""
        length = self.config.samples_for(magnitude.shape[-1])
        phase = self._initial_phase(magnitude, reference, spec)  # unit-modulus complex [B, n_freqs, T]
        previous = torch.zeros_like(phase)
        for _ in range(self.n_iter):
            rebuilt = self._stft(self._istft(magnitude * phase, length))  # projection onto consistent STFTs
            accelerated = rebuilt + self.momentum * (rebuilt - previous)
            phase = accelerated / accelerated.abs().clamp_min(1e-16)
            previous = rebuilt
        return self._istft(magnitude * phase, length)

    def _initial_phase(self, magnitude: torch.Tensor, reference: torch.Tensor | None,
                       spec: torch.Tensor | None = None) -> torch.Tensor:
        if spec is None and reference is not None:
            spec = self._stft(reference.reshape(magnitude.shape[0], -1).to(magnitude.device))
        if spec is not None:
            frames = min(spec.shape[-1], magnitude.shape[-1])
            phase = torch.ones_like(magnitude, dtype=spec.dtype)
            phase[..., :frames] = spec[..., :frames] / spec[..., :frames].abs().clamp_min(1e-16)
            return phase
        # One random phase pattern shared by the batch: results do not depend on batching.
        generator = torch.Generator(device=magnitude.device).manual_seed(self.seed)
        angles = torch.rand(magnitude.shape[-2:], generator=generator, device=magnitude.device) * (2 * torch.pi)
        return torch.polar(torch.ones_like(angles), angles).expand(magnitude.shape)

    def _stft(self, wav: torch.Tensor) -> torch.Tensor:
        c = self.config
        return torch.stft(wav, c.n_fft, c.hop_length, c.win_length, self.window,
                          center=True, pad_mode="reflect", return_complex=True)

    def _istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        c = self.config
        return torch.istft(spec, c.n_fft, c.hop_length, c.win_length, self.window, center=True, length=length)


def _interpolation_matrix(config: FeatureConfig) -> torch.Tensor:
    """``[n_freqs, n_mels]`` weights that linearly interpolate values at the mel bands' centre frequencies
    onto the STFT bins (held constant below the first centre and above the last)."""
    centres = mel_centres(config)  # [n_mels] Hz
    frequencies = np.linspace(0, config.sample_rate / 2, config.n_freqs)
    position = torch.from_numpy(np.interp(frequencies, centres, np.arange(config.n_mels)))
    below = position.floor().long().clamp(max=config.n_mels - 1)
    above = (below + 1).clamp(max=config.n_mels - 1)
    weight = (position - below).float()
    matrix = torch.zeros(config.n_freqs, config.n_mels)
    rows = torch.arange(config.n_freqs)
    matrix[rows, below] += 1.0 - weight
    matrix[rows, above] += weight
    return matrix
