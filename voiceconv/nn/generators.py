"""Image-to-image generators ``[B, in_ch, H, W] -> [B, out_ch, H, W]``.

* :class:`Generator212`: the 2-1-2D generator of CycleGAN-VC2 (Kaneko et al. 2019),
  for log-mel spectrogram images (H = n_mels, W = frames).
* :class:`EnvelopeGenerator1d`: CycleGAN-VC's 1D gated CNN (Kaneko & Kameoka 2018) on the spectral
  envelope: it reads the image pooled into a few frequency bands and adds a band-smooth correction to it,
  for pitch-aligned voice conversion at a fraction of the 2-1-2D generator's cost.
* :class:`ResnetGenerator`: the image CycleGAN generator (Zhu et al. 2017, after
  Johnson et al. 2016), for faces and other RGB images.

Use :func:`build_generator` to build one by registry name.
"""

from __future__ import annotations

import torch
from torch import nn

from voiceconv.errors import ConfigError
from voiceconv.nn.blocks import Downsample2d, GLUConv1d, GLUConv2d, ResidualGLU1d, ResnetBlock2d, Upsample2d

#: How a generator's last layer meets its input: ``none`` = the layer's output is the image (the papers);
#: ``full`` = input + output; ``envelope`` = input + output smoothed along frequency into ``bands`` bands.
OUTPUT_MODES = ("none", "full", "envelope")
#: The generators' default widths, the one source of them (``CycleGANConfig`` takes its defaults from here):
#: base channels (the first and last convolutions) and the residual blocks' channels. The paper's Generator212
#: is twice as wide (base 128, residual 256); these CPU-sized widths give it 8.6M parameters at height 80.
GENERATOR_CHANNELS = 64
RESIDUAL_CHANNELS = 128


def _check_input(x: torch.Tensor, in_ch: int, multiple: int, height: int | None = None) -> None:
    """Raise ValueError unless ``x`` is ``[B, in_ch, H, W]``, H and W multiples of ``multiple`` and >= ``2 * multiple``.

    The lower bound keeps at least 2 rows and frames at the bottleneck, which
    instance norm and reflection padding need.
    """
    if x.ndim != 4 or x.shape[1] != in_ch:
        raise ValueError(f"expected input of shape [B, {in_ch}, H, W], got {list(x.shape)}")
    h, w = x.shape[-2:]
    if height is not None and h != height:
        raise ValueError(f"input height {h} does not match the generator's height {height}")
    for name, size in (("height", h), ("width", w)):
        if size % multiple or size < 2 * multiple:
            raise ValueError(f"input {name} {size} must be a multiple of {multiple} and at least {2 * multiple}")


class Generator212(nn.Module):
    """CycleGAN-VC2's 2-1-2D generator (Kaneko, Kameoka, Tanaka & Hojo, ICASSP 2019).

    2D gated convolutions downsample the spectrogram in frequency and time, a
    1D stack of gated residual blocks transforms it along time (all frequency
    rows folded into channels), and 2D gated sub-pixel convolutions upsample it
    back; the output layer is linear::

        [B, in_ch, H, W]
          -> GLUConv2d (5x15)              [B, base, H, W]
          -> Downsample2d x2               [B, 2 base, H/4, W/4]
          -> reshape, Conv1d 1x1 + IN      [B, residual, W/4]
          -> ResidualGLU1d x n_residual    [B, residual, W/4]
          -> Conv1d 1x1 + IN, reshape      [B, 2 base, H/4, W/4]
          -> Upsample2d x2                 [B, base, H, W]
          -> Conv2d (5x15)                 [B, out_ch, H, W]

    With base 128, residual 256 and 6 blocks the layer widths are those of the
    paper; each gated convolution computes twice its width (values and gates),
    which makes 34.3M parameters at height 80 (the defaults, half as wide:
    8.6M). ``height`` (the
    number of mel bands) fixes the 2D<->1D reshapes; height and width (frames)
    must be multiples of 4, at least 8.

    MaskCycleGAN-VC's filling in frames (Kaneko et al. 2021) is ``in_ch=2``:
    the caller concatenates the masked spectrogram and its binary mask along
    channels, ``torch.cat([x * mask, mask], dim=1)``, and sets ``out_ch=1``.

    ``output="envelope"`` makes the generator start from the identity and keep
    the input's fine detail: the last layer (zero-initialized) predicts a
    correction that is averaged into ``bands`` frequency bands and linearly
    interpolated back, ``y = x + smooth_f(delta)``. A correction that smooth
    can move formants and spectral tilt but cannot erase harmonics, which are
    a few rows apart (``output="full"``: ``y = x + delta``, any detail).
    ``frames`` > 1 also averages the correction over that many frames (a
    centred moving average), so it cannot reshape what changes faster:
    the onsets and transitions that carry the words.
    """

    def __init__(self, in_ch: int, out_ch: int, height: int, base_channels: int = GENERATOR_CHANNELS,
                 residual_channels: int = RESIDUAL_CHANNELS, n_residual: int = 6, output: str = "none",
                 bands: int = 16, frames: int = 1):
        super().__init__()
        if height % 4 or height < 8:
            raise ConfigError(f"Generator212 needs a height (n_mels) that is a multiple of 4, at least 8; got {height}")
        if output not in OUTPUT_MODES:
            raise ConfigError(f"unknown generator output {output!r}; valid: {', '.join(OUTPUT_MODES)}")
        if output != "none" and out_ch > in_ch:
            raise ConfigError(f"a residual output needs out_ch ({out_ch}) <= in_ch ({in_ch})")
        if output == "envelope" and not 1 <= bands <= height:
            raise ConfigError(f"bands={bands} must be in [1, height={height}]")
        if frames < 1 or frames % 2 == 0:
            raise ConfigError(f"frames={frames} must be an odd number of frames, at least 1")
        self.in_ch, self.height, self.out_ch, self.output_mode, self.bands = in_ch, height, out_ch, output, bands
        self.frames = frames
        wide = 2 * base_channels  # channels after downsampling
        folded = wide * (height // 4)  # channels of the 1D view: every frequency row of every map
        self.input = GLUConv2d(in_ch, base_channels, (5, 15), norm=False)
        self.down = nn.Sequential(Downsample2d(base_channels, wide), Downsample2d(wide, wide))
        self.to_1d = nn.Sequential(nn.Conv1d(folded, residual_channels, 1, bias=False),
                                   nn.InstanceNorm1d(residual_channels, affine=True))
        self.residual = nn.Sequential(*(ResidualGLU1d(residual_channels, 2 * residual_channels)
                                        for _ in range(n_residual)))
        self.to_2d = nn.Sequential(nn.Conv1d(residual_channels, folded, 1, bias=False),
                                   nn.InstanceNorm1d(folded, affine=True))
        self.up = nn.Sequential(Upsample2d(wide, wide), Upsample2d(wide, base_channels))
        self.output = nn.Conv2d(base_channels, out_ch, (5, 15), padding=(2, 7))
        if output != "none":  # start from the identity
            nn.init.zeros_(self.output.weight)
            nn.init.zeros_(self.output.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, in_ch, H, W] -> [B, out_ch, H, W]
        _check_input(x, self.in_ch, 4, self.height)
        h = self.down(self.input(x))  # [B, 2 base, H/4, W/4]
        b, c, rows, frames = h.shape
        h = self.to_1d(h.reshape(b, c * rows, frames))  # [B, residual, W/4]
        h = self.to_2d(self.residual(h))  # [B, 2 base * H/4, W/4]
        h = self.up(h.reshape(b, c, rows, frames))  # [B, base, H, W]
        delta = self.output(h)  # [B, out_ch, H, W]
        if self.output_mode == "none":
            return delta
        if self.output_mode == "envelope":
            delta = smooth_along_time(smooth_along_frequency(delta, self.bands), self.frames)
        return x[:, : self.out_ch] + delta  # the input's own image passes through


class EnvelopeGenerator1d(nn.Module):
    """CycleGAN-VC's 1D gated CNN (Kaneko & Kameoka 2018, fig. 2) on the spectral envelope.

    CycleGAN-VC converts 24 mel-cepstra, the envelope alone, with a 1D network
    along time. Here the envelope is the image averaged into ``input_bands``
    frequency bands; the network predicts a correction in ``bands`` bands
    that is interpolated back to all rows and added to the input, so the
    generator starts as the identity (zero-initialized last layer) and can
    move formants and tilt but never the harmonics or the timing between
    them::

        [B, in_ch, H, W] -> band means           [B, in_ch * input_bands, W]
          -> GLUConv1d (15)                       [B, base, W]
          -> GLUConv1d stride 2 x2                [B, residual, W/4]
          -> ResidualGLU1d x n_residual           [B, residual, W/4]
          -> (upsample x2, GLUConv1d) x2          [B, base, W]
          -> Conv1d (15), zero-initialized        [B, out_ch * bands, W]
          -> bands interpolated to H rows, averaged over ``frames`` frames, added to the input

    With the CPU recipes' widths (base 48, residual 96, 4 blocks, 32 -> 16
    bands) it has 1.0M parameters, and a training step of the whole CycleGAN
    costs about a tenth of the 2-1-2D recipe's (benchmarks/train_speed.py);
    width must be a multiple of 4, at least 8.
    """

    def __init__(self, in_ch: int, out_ch: int, height: int, base_channels: int = GENERATOR_CHANNELS,
                 residual_channels: int = RESIDUAL_CHANNELS, n_residual: int = 6, input_bands: int = 32,
                 bands: int = 16, frames: int = 1):
        super().__init__()
        if out_ch > in_ch:
            raise ConfigError(f"a residual output needs out_ch ({out_ch}) <= in_ch ({in_ch})")
        for name, value in (("input_bands", input_bands), ("bands", bands)):
            if not 1 <= value <= height:
                raise ConfigError(f"{name}={value} must be in [1, height={height}]")
        if frames < 1 or frames % 2 == 0:
            raise ConfigError(f"frames={frames} must be an odd number of frames, at least 1")
        self.in_ch, self.out_ch, self.height = in_ch, out_ch, height
        self.input_bands, self.bands, self.frames = input_bands, bands, frames
        self.input = GLUConv1d(in_ch * input_bands, base_channels, 15, norm=False)
        self.down = nn.Sequential(GLUConv1d(base_channels, 2 * base_channels, 5, stride=2),
                                  GLUConv1d(2 * base_channels, residual_channels, 5, stride=2))
        self.residual = nn.Sequential(*(ResidualGLU1d(residual_channels, 2 * residual_channels)
                                        for _ in range(n_residual)))
        self.up = nn.Sequential(nn.Upsample(scale_factor=2), GLUConv1d(residual_channels, 2 * base_channels, 5),
                                nn.Upsample(scale_factor=2), GLUConv1d(2 * base_channels, base_channels, 5))
        self.output = nn.Conv1d(base_channels, out_ch * bands, 15, padding=7)  # CORRECTION_LAYER
        nn.init.zeros_(self.output.weight)  # start from the identity
        nn.init.zeros_(self.output.bias)

    #: The last layer, in which the correction is linear: its weights times s give ``x + s * delta(x)``.
    CORRECTION_LAYER = "output"

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, in_ch, H, W] -> [B, out_ch, H, W]
        _check_input(x, self.in_ch, 4, self.height)
        batch, _, rows, width = x.shape
        envelope = nn.functional.adaptive_avg_pool2d(x, (self.input_bands, width))  # [B, in_ch, input_bands, W]
        h = self.input(envelope.reshape(batch, -1, width))  # [B, base, W]
        h = self.up(self.residual(self.down(h)))  # [B, base, W]
        delta = self.output(h).reshape(batch, self.out_ch, self.bands, width)  # [B, out_ch, bands, W]
        delta = smooth_along_time(interpolate_bands(delta, rows), self.frames)  # [B, out_ch, H, W]
        return x[:, : self.out_ch] + delta


def interpolate_bands(coarse: torch.Tensor, rows: int) -> torch.Tensor:
    """``[B, C, bands, W]`` band values linearly interpolated to ``[B, C, rows, W]``."""
    return nn.functional.interpolate(coarse, size=(rows, coarse.shape[-1]), mode="bilinear", align_corners=False)


def smooth_along_frequency(image: torch.Tensor, bands: int) -> torch.Tensor:
    """``[B, C, H, W]`` averaged into ``bands`` rows of frequency, linearly interpolated back to ``H`` rows."""
    coarse = nn.functional.adaptive_avg_pool2d(image, (bands, image.shape[-1]))  # [B, C, bands, W]
    return interpolate_bands(coarse, image.shape[-2])


def smooth_along_time(image: torch.Tensor, frames: int) -> torch.Tensor:
    """``[B, C, H, W]`` averaged over a centred window of ``frames`` frames (odd), edge frames repeated."""
    if frames == 1:
        return image
    padded = nn.functional.pad(image, (frames // 2, frames // 2, 0, 0), mode="replicate")  # [B, C, H, W + frames - 1]
    return nn.functional.avg_pool2d(padded, (1, frames), stride=1)  # [B, C, H, W]


def _down(in_ch: int, out_ch: int) -> nn.Sequential:
    """CycleGAN "dk": 3x3 stride-2 conv -> IN -> ReLU."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, 2, 1, bias=False),
                         nn.InstanceNorm2d(out_ch, affine=True), nn.ReLU(inplace=True))


def _up(in_ch: int, out_ch: int) -> nn.Sequential:
    """CycleGAN "uk": 3x3 stride-1/2 (transposed) conv -> IN -> ReLU."""
    return nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch, 3, 2, 1, output_padding=1, bias=False),
                         nn.InstanceNorm2d(out_ch, affine=True), nn.ReLU(inplace=True))


class ResnetGenerator(nn.Module):
    """The image CycleGAN generator (Zhu et al. 2017; Johnson et al. 2016).

    ``c7s1-64, d128, d256, R256 x n_blocks, u128, u64, c7s1-out_ch`` for the
    defaults, with reflection padding and a tanh output in [-1, 1]::

        [B, in_ch, H, W]
          -> c7s1-base                  [B, base, H, W]
          -> dk x n_down                [B, base 2^n_down, H/2^n_down, W/2^n_down]
          -> ResnetBlock2d x n_blocks   same
          -> uk x n_down                [B, base, H, W]
          -> c7s1-out_ch, tanh          [B, out_ch, H, W]

    Height and width must be multiples of ``2**n_down``, at least ``2**(n_down + 1)``.
    """

    def __init__(self, in_ch: int, out_ch: int, base_channels: int = GENERATOR_CHANNELS, n_blocks: int = 6,
                 n_down: int = 2):
        super().__init__()
        self.in_ch, self.n_down = in_ch, n_down
        widths = [base_channels * 2**i for i in range(n_down + 1)]  # base, 2 base, ..., 2^n_down base
        self.input = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(in_ch, base_channels, 7, bias=False),
                                   nn.InstanceNorm2d(base_channels, affine=True), nn.ReLU(inplace=True))
        self.down = nn.Sequential(*(_down(a, b) for a, b in zip(widths, widths[1:])))
        self.blocks = nn.Sequential(*(ResnetBlock2d(widths[-1]) for _ in range(n_blocks)))
        self.up = nn.Sequential(*(_up(b, a) for a, b in reversed(list(zip(widths, widths[1:])))))
        self.output = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(base_channels, out_ch, 7), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, in_ch, H, W] -> [B, out_ch, H, W]
        _check_input(x, self.in_ch, 2**self.n_down)
        h = self.down(self.input(x))  # [B, base 2^n_down, H/2^n_down, W/2^n_down]
        h = self.up(self.blocks(h))  # [B, base, H, W]
        return self.output(h)


GENERATOR_ARCHITECTURES: dict[str, type[nn.Module]] = {
    "generator212": Generator212,
    "envelope1d": EnvelopeGenerator1d,
    "resnet": ResnetGenerator,
}


def build_generator(name: str, **kwargs) -> nn.Module:
    """The generator registered as ``name`` in :data:`GENERATOR_ARCHITECTURES`, built with ``kwargs``."""
    if name not in GENERATOR_ARCHITECTURES:
        raise ConfigError(f"unknown generator {name!r}; valid names: {', '.join(GENERATOR_ARCHITECTURES)}")
    return GENERATOR_ARCHITECTURES[name](**kwargs)
