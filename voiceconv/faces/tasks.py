"""Training the lecture's generative models on faces: tasks for the one loop (:func:`voiceconv.train.loop.fit`),
model export and entry points (the recipes are in :mod:`voiceconv.faces.recipes`, face folders in
:mod:`voiceconv.faces.data`).

* ``face-ae``: a plain autoencoder on face images (:class:`FaceAETask`).
* ``face-vae``: a VAE on face images (:class:`FaceVAETask`).
* ``face-dbvae``: a debiasing VAE, face / non-face, with adaptive resampling of the faces (:class:`DebiasingTask`).
* ``face-gan``: a DCGAN (:class:`FaceGANTask`).
* ``face-progan``: a progressively growing GAN (:class:`FaceProGANTask`).
* ``face-cyclegan``: the voice CycleGAN's own code between two face domains, e.g. grey <-> colour (:class:`FaceCycleGANTask`).

Every task draws its batches from cached ``uint8`` pixels (:mod:`voiceconv.faces.data`) and
mirrors half of them; every model file is safetensors with a JSON header (:mod:`voiceconv.modelfile`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from voiceconv.config import to_dict
from voiceconv.errors import ConfigError
from voiceconv.faces.data import (FaceFolder, concatenate, encode_in_chunks, held_back_split, image_grid,
                                  load_face_folder, random_flips, random_lighting, random_zoom, to_float)
from voiceconv.faces.recipes import (FaceAERecipe, FaceCycleGANRecipe, FaceDBVAERecipe, FaceGANRecipe, FaceProGANRecipe,
                                     FaceVAERecipe)
from voiceconv.families import FACE_AE, FACE_CLASSIFIER, FACE_CYCLEGAN, FACE_DBVAE, FACE_GAN, FACE_PROGAN, FACE_VAE
from voiceconv.files import atomic_output
from voiceconv.losses import latent_kl
from voiceconv.modelfiles.format import save_model_file
from voiceconv.models.base import evaluating
from voiceconv.models.cyclegan import CycleGAN
from voiceconv.models.gan import DCGAN
from voiceconv.models.progressive_gan import ProgressiveGAN
from voiceconv.models.vae import VAE, Autoencoder, DebiasingVAE, FaceClassifier, debiasing_weights
from voiceconv.train.loop import TrainingOutcome, fit
from voiceconv.train.recipes import prepare_run_dir

log = logging.getLogger(__name__)


# --- data -----------------------------------------------------------------------------------------
def load_groups(folders: tuple[str, ...], size: int, cache_dir: Path, min_images: int, what: str) -> list[FaceFolder]:
    """Every folder as one :class:`FaceFolder`, its unreadable files logged; ConfigError if none is given."""
    if not folders:
        raise ConfigError(f"no {what} folders: pass --{what} DIR or set data.{what} in the recipe")
    groups = [load_face_folder(folder, size, cache_dir, min_images) for folder in folders]
    for group in groups:
        log.info("%s %s: %d images; %d unreadable file(s) skipped", what, group.name, len(group), len(group.skipped))
        for reason in group.skipped:
            log.warning("skipped: %s", reason)
    return groups


def training_groups(data, run_dir: Path) -> list[FaceFolder]:
    """The face folders of ``data`` (a :class:`FaceDataConfig`) less their held-back images, which are listed in
    ``run_dir/held_back.json`` (the faces a model is measured on: ``benchmarks/face_models.py``)."""
    groups = load_groups(data.faces, data.size, run_dir / "cache", data.min_images, "faces")
    training, held = held_back_split(groups, data.held_back, data.held_back_seed)
    if held:
        listing = {group.name: group.files for group in held}
        with atomic_output(run_dir / "held_back.json") as tmp:
            tmp.write_text(json.dumps(listing, indent=1))
        log.info("held back from training: %s", ", ".join(f"{g.name} {len(g)}" for g in held))
    return training


def draw_images(pixels: torch.Tensor, indices: torch.Tensor, flip: bool, generator: torch.Generator,
                lighting: float = 0.0, zoom: float = 0.0) -> torch.Tensor:
    """``[len(indices), 3, S, S]`` floats in [-1, 1], half of them mirrored when ``flip``; above 0, ``zoom`` crops
    them tighter and ``lighting`` changes their light at random (:mod:`voiceconv.faces.data`)."""
    images = to_float(pixels[indices])
    images = random_flips(images, generator) if flip else images
    images = random_zoom(images, zoom, generator) if zoom > 0 else images
    return random_lighting(images, lighting, generator) if lighting > 0 else images


def random_faces(pixels: torch.Tensor, count: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """``count`` of the ``[N, 3, S, S]`` uint8 ``pixels``, drawn uniformly with replacement, as :func:`draw_images`."""
    return draw_images(pixels, torch.randint(0, len(pixels), (count,), generator=generator), flip, generator)


def add_images(writer, tag: str, images: torch.Tensor, step: int, columns: int) -> None:
    """One grid of ``[N, C, H, W]`` images in [-1, 1] into TensorBoard."""
    writer.add_image(tag, (image_grid(images.detach().float().cpu(), columns) + 1) / 2, step)


def image_header(size: int) -> dict:
    """The ``image`` field of a face model file's header: RGB, ``size`` x ``size``, pixels in [-1, 1]."""
    return {"channels": 3, "height": size, "width": size, "range": [-1, 1]}


# --- tasks ----------------------------------------------------------------------------------------
class PooledFacesTask:
    """A model of ``model_class`` trained on every image of the face folders, pooled; batches drawn uniformly.

    The base of the autoencoders' and the GANs' tasks: they differ in
    their model, what they show in TensorBoard and what their model file holds.
    """

    model_class: type[Autoencoder] | type[VAE] | type[DCGAN] | type[ProgressiveGAN]

    def __init__(self, recipe: FaceAERecipe | FaceVAERecipe | FaceGANRecipe | FaceProGANRecipe,
                 groups: list[FaceFolder]):
        size = recipe.data.size
        self.recipe, self.groups, self.faces = recipe, groups, concatenate(groups, "faces")
        self.model = self.model_class(3, size, size, recipe.model, seed=recipe.train.seed)

    def batch(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``{"images": [batch_size, 3, S, S]}`` drawn uniformly with replacement, half mirrored when ``data.flip``."""
        return {"images": random_faces(self.faces.pixels, batch_size, self.recipe.data.flip, generator)}


class AutoencodingTask(PooledFacesTask):
    """A model that encodes and decodes (:class:`FaceVAETask`, :class:`FaceAETask`): fixed training faces and their
    reconstructions, and decodings of codes drawn from N(0, I), go to TensorBoard."""

    def __init__(self, recipe: FaceAERecipe | FaceVAERecipe, groups: list[FaceFolder]):
        super().__init__(recipe, groups)
        self.media = self.faces.pixels[torch.linspace(0, len(self.faces) - 1, recipe.data.media_images).long()]

    @torch.no_grad()
    def log_media(self, writer, step: int) -> None:
        """Pictures of the model as it is now into TensorBoard (the loop calls it every ``media_every`` steps)."""
        device = next(self.model.parameters()).device
        with evaluating(self.model):
            originals = to_float(self.media).to(device)
            add_images(writer, "faces/reconstructions", torch.cat([originals, self.model.reconstruct(originals)]),
                       step, len(originals))
            prior = torch.randn(16, self.recipe.model.latent, generator=torch.Generator().manual_seed(0))
            add_images(writer, "faces/samples", self.model.decode(prior.to(device)), step, 8)


class FaceVAETask(AutoencodingTask):
    """A VAE on every image of the face folders."""

    model_class = VAE

    def export(self, path: Path, info: dict) -> None:
        """Write the model file to ``path``; ``info``: the loop's training facts for its header."""
        export_vae(self.model, FACE_VAE, path, self.recipe, info, {g.name: len(g) for g in self.groups},
                   self.faces.pixels)


class FaceAETask(AutoencodingTask):
    """A plain autoencoder on every training image of the face folders."""

    model_class = Autoencoder

    def export(self, path: Path, info: dict) -> None:
        """Write the model file to ``path``: the weights and ``code_mean``/``code_std`` ``[L]`` of the training codes."""
        tensors = {k: v for k, v in self.model.state_dict().items() if k != "steps_done"}
        device = next(self.model.parameters()).device
        with evaluating(self.model), torch.no_grad():
            [codes] = encode_in_chunks(lambda x: (self.model.codes(x),), self.faces.pixels, device)  # [N, L]
        tensors["code_mean"], tensors["code_std"] = codes.mean(dim=0), codes.std(dim=0)
        header = {"kind": FACE_AE, "model": to_dict(self.recipe.model), "image": image_header(self.recipe.data.size),
                  "data": {"faces": {g.name: len(g) for g in self.groups}},
                  "training": {**info, "recipe": to_dict(self.recipe)}}
        save_model_file(path, tensors, header)


def export_vae(model: VAE, kind: str, path: Path, recipe, info: dict, groups: dict[str, int],
               faces: torch.Tensor) -> None:
    """A (debiasing) VAE model file; ``latent_kl`` ranks the latents by their mean KL over the training ``faces``.

    ``typical_code`` ``[L]``, the latent mean of the training face whose code
    lies nearest the average code, is where traversals and sliders start
    without a face: real faces' codes lie far from the prior's mean (and from
    their own average) when beta is small, and both decode to a grey blur. A debiasing VAE also stores
    every training face's latent mean (``training_latent_means`` ``[N, L]``),
    the histograms behind its resampling, so a face's sampling weight can be
    computed without the data.
    """
    tensors = {k: v for k, v in model.state_dict().items() if k != "steps_done"}
    device = next(model.parameters()).device
    with evaluating(model), torch.no_grad():
        means, log_variances = encode_in_chunks(model.encode, faces, device)  # [N, L] each
    tensors["latent_kl"] = latent_kl(means, log_variances)  # [L]
    tensors["typical_code"] = means[(means - means.mean(dim=0)).norm(dim=1).argmin()].clone()  # [L]
    if kind == FACE_DBVAE:
        tensors["training_latent_means"] = means
    header = {"kind": kind, "model": to_dict(recipe.model), "image": image_header(recipe.data.size),
              "data": {"faces": groups}, "training": {**info, "recipe": to_dict(recipe)}}
    save_model_file(path, tensors, header)


def group_balanced_weights(groups: dict[str, int]) -> torch.Tensor:
    """Sampling probabilities ``[N]`` giving each group (name -> count, concatenated in order) the same total share."""
    return torch.cat([torch.full((count,), 1.0 / (count * len(groups))) for count in groups.values()])


class DebiasingTask:
    """Face / non-face training batches, half faces and half non-faces.

    With a :class:`DebiasingVAE` the faces are drawn with :func:`debiasing_weights`
    of their latent means, recomputed at the start of every epoch (one pass over
    faces and non-faces in batches); with a :class:`FaceClassifier`, uniformly,
    or with ``group_balanced`` each face group (``groups``: name -> count, in
    the order of ``faces``) equally often: an oracle that knows the groups.
    The current weights live in the model's training state (``model.resampling``), so resume is exact.
    """

    def __init__(self, recipe: FaceDBVAERecipe, model: DebiasingVAE | FaceClassifier, faces: FaceFolder,
                 nonfaces: FaceFolder, groups: dict[str, int] | None = None, group_balanced: bool = False):
        if len(faces) == 0 or len(nonfaces) == 0:
            raise ConfigError("the debiasing task needs training faces and training non-faces")
        self.recipe, self.model, self.faces, self.nonfaces = recipe, model, faces, nonfaces
        self.groups = groups or {faces.name: len(faces)}
        self.resample = isinstance(model, DebiasingVAE)
        self.media = faces.pixels[torch.linspace(0, len(faces) - 1, recipe.data.media_images).long()]
        self.fixed_weights = group_balanced_weights(self.groups) if group_balanced else \
            torch.full((len(faces),), 1.0 / len(faces))

    def batch(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """One training batch of ``batch_size`` drawn with ``generator`` (the loop's, so resume is exact)."""
        n_faces = (batch_size + 1) // 2
        face_indices = torch.multinomial(self.face_weights(batch_size), n_faces, replacement=True, generator=generator)
        nonface_indices = torch.randint(0, len(self.nonfaces), (batch_size - n_faces,), generator=generator)
        data = self.recipe.data
        augment = {"lighting": data.lighting, "zoom": data.zoom}  # the same for faces and non-faces: no clue to the label
        images = torch.cat([draw_images(self.faces.pixels, face_indices, data.flip, generator, **augment),
                            draw_images(self.nonfaces.pixels, nonface_indices, data.flip, generator, **augment)])
        labels = torch.cat([torch.ones(n_faces), torch.zeros(batch_size - n_faces)])  # [B], 1 = face
        return {"images": images, "labels": labels}

    def face_weights(self, batch_size: int) -> torch.Tensor:
        """Sampling probabilities ``[N_faces]`` of the training faces for the current epoch."""
        if not self.resample:
            return self.fixed_weights
        steps_per_epoch = max(1, (len(self.faces) + len(self.nonfaces)) // batch_size)
        epoch = int(self.model.steps_done) // steps_per_epoch
        if self.model.resampling["epoch"] != epoch:
            self.model.resampling = {"epoch": epoch, "weights": self.current_weights()}
        return self.model.resampling["weights"]

    def current_weights(self) -> torch.Tensor:
        """:func:`debiasing_weights` of the training faces' latent means under the model as it is now."""
        device = next(self.model.parameters()).device
        with evaluating(self.model):
            mean, _ = encode_in_chunks(self.model.encode, self.faces.pixels, device)  # [N, L]
        config = self.recipe.model
        return debiasing_weights(mean, config.histogram_bins, config.smoothing_alpha, config.resampling_combine)

    @torch.no_grad()
    def log_media(self, writer, step: int) -> None:
        """Pictures of the model as it is now into TensorBoard (the loop calls it every ``media_every`` steps)."""
        device = next(self.model.parameters()).device
        if not self.resample:
            return
        with evaluating(self.model):
            originals = to_float(self.media).to(device)
            add_images(writer, "faces/reconstructions", torch.cat([originals, self.model.reconstruct(originals)]),
                       step, len(originals))
        rarest = self.face_weights(self.recipe.train.batch_size).argsort(descending=True)[:16]
        add_images(writer, "faces/rarest", to_float(self.faces.pixels[rarest]), step, 8)

    def export(self, path: Path, info: dict) -> None:
        """Write the model file to ``path``; ``info``: the loop's training facts for its header."""
        if self.resample:
            export_vae(self.model, FACE_DBVAE, path, self.recipe, info, self.groups, self.faces.pixels)
            return
        header = {"kind": FACE_CLASSIFIER, "model": to_dict(self.recipe.model),
                  "image": image_header(self.recipe.data.size), "data": {"faces": self.groups},
                  "training": {**info, "recipe": to_dict(self.recipe)}}
        save_model_file(path, {k: v for k, v in self.model.state_dict().items() if k != "steps_done"}, header)


class FaceGANTask(PooledFacesTask):
    """A DCGAN on every image of the face folders."""

    model_class = DCGAN

    def __init__(self, recipe: FaceGANRecipe, groups: list[FaceFolder]):
        super().__init__(recipe, groups)
        self.fixed_latents = torch.randn(32, recipe.model.latent, generator=torch.Generator().manual_seed(0))

    @torch.no_grad()
    def log_media(self, writer, step: int) -> None:
        """Pictures of the model as it is now into TensorBoard (the loop calls it every ``media_every`` steps)."""
        device = next(self.model.parameters()).device
        with evaluating(self.model):
            add_images(writer, "faces/samples", self.model.G(self.fixed_latents.to(device)), step, 8)

    def export(self, path: Path, info: dict) -> None:
        """Write the model file to ``path``; ``info``: the loop's training facts for its header."""
        header = {"kind": FACE_GAN, "model": to_dict(self.recipe.model), "image": image_header(self.recipe.data.size),
                  "data": {"faces": {g.name: len(g) for g in self.groups}},
                  "training": {**info, "recipe": to_dict(self.recipe)}}
        save_model_file(path, {f"G.{k}": v for k, v in self.model.G.state_dict().items()}, header)


class FaceProGANTask(FaceGANTask):
    """A progressively growing GAN on every image of the face folders; its file holds the generator, with how far
    it has grown (``G.images_seen``)."""

    model_class = ProgressiveGAN

    @torch.no_grad()
    def log_media(self, writer, step: int) -> None:
        """Samples at the growth reached, enlarged to full size, into TensorBoard."""
        device = next(self.model.parameters()).device
        with evaluating(self.model):
            level, alpha = self.model.G.stage()
            images = self.model.G(self.fixed_latents.to(device), level, alpha).clamp(-1, 1)
            add_images(writer, "faces/samples", torch.nn.functional.interpolate(
                images, size=self.recipe.data.size, mode="nearest"), step, 8)

    def export(self, path: Path, info: dict) -> None:
        """Write the model file to ``path``; ``info``: the loop's training facts for its header."""
        level, alpha = self.model.G.stage()
        header = {"kind": FACE_PROGAN, "model": to_dict(self.recipe.model),
                  "image": image_header(self.recipe.data.size),
                  "data": {"faces": {g.name: len(g) for g in self.groups}},
                  "growth": {"images_seen": int(self.model.G.images_seen), "level": level, "alpha": alpha},
                  "training": {**info, "recipe": to_dict(self.recipe)}}
        save_model_file(path, {f"G.{k}": v for k, v in self.model.G.state_dict().items()}, header)


class FaceCycleGANTask:
    """The CycleGAN of voice conversion, unchanged, between two folders of faces (A and B)."""

    def __init__(self, recipe: FaceCycleGANRecipe, faces_a: FaceFolder, faces_b: FaceFolder):
        size = recipe.data.size
        self.recipe, self.domains = recipe, {"A": faces_a, "B": faces_b}
        self.model = CycleGAN(channels=3, height=size, config=recipe.model, total_steps=recipe.train.steps,
                              seed=recipe.train.seed)
        count = recipe.data.media_images
        self.media = {side: f.pixels[torch.linspace(0, len(f) - 1, count).long()] for side, f in self.domains.items()}

    def batch(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """One training batch of ``batch_size`` drawn with ``generator`` (the loop's, so resume is exact)."""
        return {side: random_faces(faces.pixels, batch_size, self.recipe.data.flip, generator)  # [B, 3, S, S]
                for side, faces in self.domains.items()}

    @torch.no_grad()
    def log_media(self, writer, step: int) -> None:
        """Pictures of the model as it is now into TensorBoard (the loop calls it every ``media_every`` steps)."""
        device = next(self.model.parameters()).device
        with evaluating(self.model):
            for side, translate in (("A", self.model.a_to_b), ("B", self.model.b_to_a)):
                source = to_float(self.media[side]).to(device)
                add_images(writer, f"faces/{side}_translated", torch.cat([source, translate(source)]), step, len(source))

    def export(self, path: Path, info: dict) -> None:
        """Write the model file to ``path``; ``info``: the loop's training facts for its header."""
        tensors = {f"G_AB.{k}": v for k, v in self.model.inference_generator("G_AB").state_dict().items()}
        tensors |= {f"G_BA.{k}": v for k, v in self.model.inference_generator("G_BA").state_dict().items()}
        header = {"kind": FACE_CYCLEGAN, "model": to_dict(self.recipe.model),
                  "image": image_header(self.recipe.data.size),
                  "domains": {side: {"name": f.name, "images": len(f)} for side, f in self.domains.items()},
                  "training": {**info, "recipe": to_dict(self.recipe)}}
        save_model_file(path, tensors, header)


# --- entry points ---------------------------------------------------------------------------------
def train_face_ae(recipe: FaceAERecipe, run_dir: Path, resume: bool = False) -> TrainingOutcome:
    """Train a plain autoencoder on ``recipe.data.faces`` (less ``data.held_back``) into ``run_dir``."""
    prepare_run_dir(recipe, run_dir, resume)
    return fit(FaceAETask(recipe, training_groups(recipe.data, run_dir)), recipe.train, run_dir, resume=resume)


def train_face_vae(recipe: FaceVAERecipe, run_dir: Path, resume: bool = False) -> TrainingOutcome:
    """Train a VAE on ``recipe.data.faces`` (less ``data.held_back``) into ``run_dir`` (checkpoints, logs,
    ``model.safetensors``)."""
    prepare_run_dir(recipe, run_dir, resume)
    return fit(FaceVAETask(recipe, training_groups(recipe.data, run_dir)), recipe.train, run_dir, resume=resume)


def train_face_gan(recipe: FaceGANRecipe, run_dir: Path, resume: bool = False) -> TrainingOutcome:
    """Train a DCGAN on ``recipe.data.faces`` (less ``data.held_back``) into ``run_dir``."""
    prepare_run_dir(recipe, run_dir, resume)
    return fit(FaceGANTask(recipe, training_groups(recipe.data, run_dir)), recipe.train, run_dir, resume=resume)


def train_face_progan(recipe: FaceProGANRecipe, run_dir: Path, resume: bool = False) -> TrainingOutcome:
    """Train a progressively growing GAN on ``recipe.data.faces`` (less ``data.held_back``) into ``run_dir``."""
    prepare_run_dir(recipe, run_dir, resume)
    return fit(FaceProGANTask(recipe, training_groups(recipe.data, run_dir)), recipe.train, run_dir, resume=resume)


def train_face_cyclegan(recipe: FaceCycleGANRecipe, run_dir: Path, resume: bool = False) -> TrainingOutcome:
    """Train a CycleGAN between ``recipe.data.faces_a`` and ``faces_b`` into ``run_dir``."""
    data = recipe.data
    if not data.faces_a or not data.faces_b:
        raise ConfigError("a face CycleGAN needs two folders: --faces-a DIR --faces-b DIR (or data.faces_a/faces_b)")
    prepare_run_dir(recipe, run_dir, resume)
    [faces_a] = load_groups((data.faces_a,), data.size, run_dir / "cache", data.min_images, "faces-a")
    [faces_b] = load_groups((data.faces_b,), data.size, run_dir / "cache", data.min_images, "faces-b")
    return fit(FaceCycleGANTask(recipe, faces_a, faces_b), recipe.train, run_dir, resume=resume)
