"""The recipes of the face families (``face-ae``, ``face-vae``, ``face-dbvae``, ``face-gan``, ``face-progan``,
``face-cyclegan``): what a YAML
recipe of each holds. The tasks that train them are in :mod:`voiceconv.faces.tasks` and :mod:`voiceconv.faces.debias`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from voiceconv.families import FACE_AE, FACE_CYCLEGAN, FACE_DBVAE, FACE_GAN, FACE_PROGAN, FACE_VAE
from voiceconv.models.cyclegan import CycleGANConfig
from voiceconv.models.gan import GANConfig
from voiceconv.models.progressive_gan import ProGANConfig
from voiceconv.models.vae import AEConfig, VAEConfig
from voiceconv.train.loop import TrainConfig


@dataclass(frozen=True)
class FaceDataConfig:
    """Which image folders to train on and how they become ``[3, size, size]`` tensors."""

    faces: tuple[str, ...] = ()  # folders of faces (searched recursively); each folder is one subgroup
    nonfaces: tuple[str, ...] = ()  # folders of non-faces (face-dbvae only)
    size: int = 64
    flip: bool = True  # mirror half the training images left-right
    min_images: int = 8  # refuse a folder with fewer readable images
    media_images: int = 8  # fixed images shown in TensorBoard every media_every steps
    held_back: int = 0  # images of each face folder kept out of training (whole people where a folder has them)
    lighting: float = 0.0  # face-dbvae: training images under random brightness and colour (data.random_lighting)
    zoom: float = 0.0  # face-dbvae: training images cropped tighter at random, up to this share (data.random_zoom)
    held_back_seed: int = 0


@dataclass(frozen=True)
class SplitConfig:
    """The imbalanced set-up of the debiasing experiment (see recipes/faces/README.md)."""

    test_per_group: int = 100  # held out from every face folder and from the pooled non-faces
    minority: str = "orl"  # the face folder made rare in training ("" = keep every folder whole)
    minority_share: float = 0.05  # its share of the training faces
    keep_subfolders_together: tuple[str, ...] = ("orl",)  # face folders whose subfolders (people) stay on one side
    seed: int = 0


@dataclass(frozen=True)
class FacePairDataConfig:
    """Two folders of faces, domains A and B, for the CycleGAN."""

    faces_a: str = ""
    faces_b: str = ""
    size: int = 64
    flip: bool = True
    min_images: int = 8
    media_images: int = 4


@dataclass(frozen=True)
class FaceAERecipe:
    """A ``face-ae`` recipe: a plain (deterministic) autoencoder on face images."""

    kind: Literal[FACE_AE] = FACE_AE
    model: AEConfig = field(default_factory=AEConfig)
    data: FaceDataConfig = field(default_factory=FaceDataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass(frozen=True)
class FaceVAERecipe:
    """A ``face-vae`` recipe: a VAE on face images."""

    kind: Literal[FACE_VAE] = FACE_VAE
    model: VAEConfig = field(default_factory=VAEConfig)
    data: FaceDataConfig = field(default_factory=FaceDataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass(frozen=True)
class FaceDBVAERecipe:
    """A ``face-dbvae`` recipe: a debiasing VAE (faces and non-faces), and the split of its comparison."""

    kind: Literal[FACE_DBVAE] = FACE_DBVAE
    model: VAEConfig = field(default_factory=VAEConfig)
    data: FaceDataConfig = field(default_factory=FaceDataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass(frozen=True)
class FaceGANRecipe:
    """A ``face-gan`` recipe: a DCGAN on face images."""

    kind: Literal[FACE_GAN] = FACE_GAN
    model: GANConfig = field(default_factory=GANConfig)
    data: FaceDataConfig = field(default_factory=FaceDataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass(frozen=True)
class FaceProGANRecipe:
    """A ``face-progan`` recipe: a progressively growing GAN on face images (Karras et al. 2018)."""

    kind: Literal[FACE_PROGAN] = FACE_PROGAN
    model: ProGANConfig = field(default_factory=ProGANConfig)
    data: FaceDataConfig = field(default_factory=FaceDataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass(frozen=True)
class FaceCycleGANRecipe:
    """A ``face-cyclegan`` recipe: the voice CycleGAN between two folders of faces (a ResNet generator)."""

    kind: Literal[FACE_CYCLEGAN] = FACE_CYCLEGAN
    model: CycleGANConfig = field(default_factory=lambda: CycleGANConfig(generator="resnet"))
    data: FacePairDataConfig = field(default_factory=FacePairDataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
