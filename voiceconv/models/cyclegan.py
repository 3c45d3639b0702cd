"""CycleGAN between two image domains A and B (Zhu et al. 2017), with the voice-conversion refinements
of CycleGAN-VC/VC2 (Kaneko & Kameoka 2018, 2019) and MaskCycleGAN-VC's filling in frames (Kaneko et al. 2021).

Images are ``[B, C, H, W]`` in roughly [-1, 1]: normalized log-mel spectrograms
(C=1, H=n_mels, W=frames) or faces (C=3). The networks do not know which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from voiceconv.errors import ConfigError
from voiceconv.losses import (cycle_consistency_loss, identity_loss, lsgan_discriminator_loss, lsgan_generator_loss,
                              pseudo_target_loss)
from voiceconv.models.base import TrainableModel, linear_decay
from voiceconv.models.directions import DIRECTIONS, checked_direction  # noqa: F401 -- re-exported
from voiceconv.nn import GENERATOR_CHANNELS, RESIDUAL_CHANNELS, build_discriminator, build_generator


@dataclass(frozen=True)
class CycleGANConfig:
    """Architecture, loss weights and optimizer settings (defaults: the papers' weights, a CPU-sized network)."""

    generator: str = "generator212"  # generator212 | envelope1d (pitch-aligned speech) | resnet (faces)
    generator_channels: int = GENERATOR_CHANNELS  # the nn defaults: 64
    residual_channels: int = RESIDUAL_CHANNELS  # 128
    residual_blocks: int = 6
    generator_output: str = "none"  # none | full | envelope: see Generator212 (envelope = start from the identity)
    output_bands: int = 16  # frequency bands of an "envelope" output's correction
    output_frames: int = 1  # frames (odd) an "envelope" output's correction is averaged over; 1 = none
    input_bands: int = 32  # envelope1d: the frequency bands of the envelope it reads
    discriminator: str = "patch"
    discriminator_channels: int = 32
    discriminator_layers: int = 3
    discriminator_bands: int = 0  # > 0: discriminators judge the image averaged into this many bands (the envelope)
    spectral_norm: bool = False  # spectral normalization on every discriminator convolution (Miyato et al. 2018)
    mask_frames: bool = False  # MaskCycleGAN-VC "filling in frames"
    max_mask_fraction: float = 0.25  # longest masked span, as a fraction of the crop
    consistency_norm: Literal["l1", "l2"] = "l1"  # the norm of the cycle and identity losses (see losses.py)
    adversarial_weight: float = 1.0  # lambda_adv: the generators' adversarial losses
    cycle_weight: float = 10.0  # lambda_cyc
    identity_weight: float = 5.0  # lambda_id
    identity_until_step: int = 10_000  # CycleGAN-VC switches the identity loss off later in training
    pull_weight: float = 0.0  # lambda_pull: regression toward kNN pseudo-targets (batch "A2B_target"; see losses.py)
    # What a voice generator's output is mapped onto on its way out: the target speaker's per-band statistics
    # ("target": mean and spread), or the target's means with the spread of the direction's own input ("input":
    # each band shifted, its spread kept). See VoiceModel.output_stats.
    output_spread: Literal["target", "input"] = "target"
    image_pool_size: int = 0  # 0 = no history of generated images (Shrivastava et al. 2017)
    generator_lr: float = 2e-4
    discriminator_lr: float = 1e-4
    adam_beta1: float = 0.5
    adam_beta2: float = 0.999
    decay_start_step: int = 100_000  # linear learning-rate decay to 0 from here to the last step
    ema_decay: float = 0.0  # > 0: convert, validate and export with an exponential moving average of the generators


def build_image_generator(config: CycleGANConfig, in_ch: int, out_ch: int, height: int) -> nn.Module:
    """The configured generator for images of ``height`` rows (ConfigError for impossible settings)."""
    try:
        return _build_image_generator(config, in_ch, out_ch, height)
    except ValueError as err:
        raise ConfigError(f"model: {err}") from None


def _build_image_generator(config: CycleGANConfig, in_ch: int, out_ch: int, height: int) -> nn.Module:
    if config.generator == "generator212":
        return build_generator(config.generator, in_ch=in_ch, out_ch=out_ch, height=height,
                               base_channels=config.generator_channels, residual_channels=config.residual_channels,
                               n_residual=config.residual_blocks, output=config.generator_output,
                               bands=config.output_bands, frames=config.output_frames)
    if config.generator == "envelope1d":
        if config.generator_output != "envelope":
            raise ValueError("generator: envelope1d always adds a band-smooth correction to its input; "
                             "set generator_output: envelope")
        return build_generator(config.generator, in_ch=in_ch, out_ch=out_ch, height=height,
                               base_channels=config.generator_channels, residual_channels=config.residual_channels,
                               n_residual=config.residual_blocks, input_bands=config.input_bands,
                               bands=config.output_bands, frames=config.output_frames)
    if config.generator_output != "none":
        raise ValueError(f"generator_output={config.generator_output!r} needs generator: generator212")
    return build_generator(config.generator, in_ch=in_ch, out_ch=out_ch, base_channels=config.generator_channels,
                           n_blocks=config.residual_blocks)


def build_cyclegan_generator(config: CycleGANConfig, channels: int, height: int) -> nn.Module:
    """A CycleGAN generator of ``channels``-channel images ``height`` rows high: ``[B, C(+1), H, W] -> [B, C, H, W]``.

    With filling in frames (``mask_frames``) the mask travels as one more input channel (the one place this
    rule is written: training, the model-file checks and loading all build generators here).
    """
    in_ch = channels + 1 if config.mask_frames else channels
    return build_image_generator(config, in_ch, channels, height)


def apply_generator(generator: nn.Module, images: torch.Tensor, mask_frames: bool,
                    mask: torch.Tensor | None = None) -> torch.Tensor:
    """Run a generator on ``[B, C, H, W]``; with filling in frames the (masked) image goes in with its mask channel."""
    if not mask_frames:
        return generator(images)
    if mask is None:
        mask = torch.ones_like(images[:, :1])  # [B, 1, H, W]: nothing missing
    return generator(torch.cat([images * mask, mask], dim=1))


class CycleGAN(TrainableModel):
    """Two generators ``G_AB: A -> B``, ``G_BA: B -> A`` and two discriminators ``D_A``, ``D_B``."""

    def __init__(self, channels: int, height: int, config: CycleGANConfig = CycleGANConfig(),
                 total_steps: int = 200_000, seed: int = 0):
        super().__init__()
        self.config, self.channels = config, channels
        with torch.random.fork_rng():  # the same seed gives the same initial weights
            torch.manual_seed(seed)
            self.G_AB = build_cyclegan_generator(config, channels, height)
            self.G_BA = build_cyclegan_generator(config, channels, height)
            self.D_A, self.D_B = (build_discriminator(config.discriminator, in_ch=channels,
                                                      base_channels=config.discriminator_channels,
                                                      n_layers=config.discriminator_layers,
                                                      input_bands=config.discriminator_bands,
                                                      spectral_norm=config.spectral_norm) for _ in "AB")
        smallest = getattr(self.D_A, "min_size", 0)  # PatchGAN: 3 * 2**layers rows of the image
        judged_rows = min(height, config.discriminator_bands or height)
        if judged_rows < smallest:
            raise ConfigError(f"model.discriminator_layers={config.discriminator_layers} needs images at least "
                              f"{smallest} high; the discriminators see {judged_rows} rows "
                              "(fewer layers, more mels or more discriminator_bands)")
        if not 0.0 <= config.ema_decay < 1.0:
            raise ConfigError(f"model.ema_decay={config.ema_decay} must be in [0, 1)")
        # ema[name]: the generator's weights averaged as ema <- decay * ema + (1 - decay) * weights after each step
        self.ema = nn.ModuleDict({name: AveragedModel(getattr(self, name), use_buffers=True,
                                                      multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay))
                                  for name in ("G_AB", "G_BA")} if config.ema_decay > 0 else {})
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        self.generator = torch.Generator().manual_seed(seed)  # masks and image pool
        self.pools = {"A": ImagePool(config.image_pool_size), "B": ImagePool(config.image_pool_size)}
        betas = (config.adam_beta1, config.adam_beta2)
        self.optimizers = {
            "generators": torch.optim.Adam([*self.G_AB.parameters(), *self.G_BA.parameters()], config.generator_lr, betas),
            "discriminators": torch.optim.Adam([*self.D_A.parameters(), *self.D_B.parameters()], config.discriminator_lr, betas),
        }
        decay = linear_decay(total_steps, config.decay_start_step)
        self.schedulers = {name: torch.optim.lr_scheduler.LambdaLR(opt, decay) for name, opt in self.optimizers.items()}

    # --- conversion -------------------------------------------------------------------------------
    def generate(self, generator: nn.Module, images: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return apply_generator(generator, images, self.config.mask_frames, mask)

    def inference_generator(self, name: str) -> nn.Module:
        """The generator ``name`` ("G_AB" or "G_BA") that converts, validates and is exported: its moving
        average when ``ema_decay`` > 0, else the trained weights themselves."""
        return self.ema[name].module if name in self.ema else getattr(self, name)

    def a_to_b(self, images: torch.Tensor) -> torch.Tensor:
        return self.generate(self.inference_generator("G_AB"), images)

    def b_to_a(self, images: torch.Tensor) -> torch.Tensor:
        return self.generate(self.inference_generator("G_BA"), images)

    # --- training --------------------------------------------------------------------------------
    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One generator step and one discriminator step on unpaired crops ``batch["A"]``, ``batch["B"]``.

        Pitch-aligned voice training adds ``batch["A2B"]`` (speaker A already brought to B's pitch by formula)
        and ``batch["B2A"]``: those are what the generators convert, and the cycles return to them, while the
        discriminators and the identity loss see the real speakers. Without them ``A2B = A`` and ``B2A = B``.
        ``batch["A2B_target"]`` / ``batch["B2A_target"]``, crops at the same places as the inputs, are kNN
        pseudo-targets that ``pull_weight`` draws each converted envelope toward.
        """
        real_A, real_B = batch["A"], batch["B"]  # [B, C, H, W] each
        squared = self.config.consistency_norm == "l2"
        input_A, input_B = batch.get("A2B", real_A), batch.get("B2A", real_B)  # what G_AB and G_BA convert
        mask_A, mask_B = self.frame_mask(input_A), self.frame_mask(input_B)

        fake_B = self.generate(self.G_AB, input_A, mask_A)  # G_AB(A)
        rec_A = self.generate(self.G_BA, fake_B)  # G_BA(G_AB(A))
        fake_A = self.generate(self.G_BA, input_B, mask_B)  # G_BA(B)
        rec_B = self.generate(self.G_AB, fake_A)  # G_AB(G_BA(B))

        losses = {
            "G_adv_AB": lsgan_generator_loss(self.D_B(fake_B)),
            "G_adv_BA": lsgan_generator_loss(self.D_A(fake_A)),
            "cycle_A": cycle_consistency_loss(rec_A, input_A, squared),
            "cycle_B": cycle_consistency_loss(rec_B, input_B, squared),
        }
        generator_loss = (self.config.adversarial_weight * (losses["G_adv_AB"] + losses["G_adv_BA"])
                          + self.config.cycle_weight * (losses["cycle_A"] + losses["cycle_B"]))
        if self.config.pull_weight > 0 and "A2B_target" in batch:
            bands = self.config.output_bands
            losses["pull_AB"] = pseudo_target_loss(fake_B, batch["A2B_target"], bands)  # G_AB(A) ~ kNN_B(A)
            losses["pull_BA"] = pseudo_target_loss(fake_A, batch["B2A_target"], bands)  # G_BA(B) ~ kNN_A(B)
            generator_loss = generator_loss + self.config.pull_weight * (losses["pull_AB"] + losses["pull_BA"])
        if self.steps_done < self.config.identity_until_step and self.config.identity_weight > 0:
            losses["identity_A"] = identity_loss(self.generate(self.G_BA, real_A), real_A, squared)  # G_BA(A) ~ A
            losses["identity_B"] = identity_loss(self.generate(self.G_AB, real_B), real_B, squared)  # G_AB(B) ~ B
            generator_loss = generator_loss + self.config.identity_weight * (losses["identity_A"] + losses["identity_B"])
        self.optimize(generator_loss, self.optimizers["generators"], [*self.G_AB.parameters(), *self.G_BA.parameters()])
        for name, average in self.ema.items():
            average.update_parameters(getattr(self, name))

        fake_A = self.pools["A"].query(fake_A.detach(), self.generator)
        fake_B = self.pools["B"].query(fake_B.detach(), self.generator)
        losses["D_A"] = lsgan_discriminator_loss(self.D_A(real_A), self.D_A(fake_A))
        losses["D_B"] = lsgan_discriminator_loss(self.D_B(real_B), self.D_B(fake_B))
        self.optimize(losses["D_A"] + losses["D_B"], self.optimizers["discriminators"],
                      [*self.D_A.parameters(), *self.D_B.parameters()])
        for scheduler in self.schedulers.values():
            scheduler.step()
        self.steps_done += 1
        return {name: float(value.detach()) for name, value in losses.items()}

    def frame_mask(self, images: torch.Tensor) -> torch.Tensor | None:
        """MaskCycleGAN-VC's temporal mask ``[B, 1, H, W]``: ones, with one random span of frames zeroed per item."""
        if not self.config.mask_frames:
            return None
        batch, width = images.shape[0], images.shape[-1]
        lengths = torch.randint(0, int(self.config.max_mask_fraction * width) + 1, (batch,), generator=self.generator)
        starts = (torch.rand(batch, generator=self.generator) * (width - lengths + 1)).long()
        frames = torch.arange(width)
        missing = (frames >= starts[:, None]) & (frames < (starts + lengths)[:, None])  # [B, W]
        mask = (~missing).to(images.dtype).to(images.device)
        return mask[:, None, None, :].expand(-1, 1, images.shape[2], -1)

    def training_state(self) -> dict:
        state = super().training_state()
        state["pools"] = {name: pool.images for name, pool in self.pools.items()}
        return state

    def load_training_state(self, state: dict) -> None:
        super().load_training_state(state)
        for name, pool in self.pools.items():
            pool.images = state["pools"][name]


class ImagePool:
    """History of generated images (Shrivastava et al. 2017): half the time, show D an older fake instead."""

    def __init__(self, size: int):
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images:
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=generator) < 0.5:
                index = int(torch.randint(0, self.size, (), generator=generator))
                out.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)
