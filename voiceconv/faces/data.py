"""The face domain adapter: image files <-> ``[3, size, size]`` tensors in [-1, 1], and back to PNG pixels.

Any image Pillow reads (png, jpg, pgm, bmp, gif, tiff, webp; grey, colour,
16-bit) becomes RGB (grey copied to all three channels), is centre-cropped to
a square and resized to ``size`` x ``size``. A folder is decoded once and
cached on disk as a uint8 safetensors file whose name hashes ``size`` and
every file's path, size and modification time (like the speaker cache);
unreadable files are reported once, when the cache is built, and skipped.

Decoding is safe for untrusted files: images with more than
:data:`MAX_PIXELS` pixels are refused before their pixels are decoded
(Pillow's decompression-bomb check stays on as well), and every failure
becomes an :class:`~voiceconv.errors.ImageFileError` naming the file.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from voiceconv.errors import ConfigError, ImageFileError, VoiceconvError
from voiceconv.files import atomic_output, fingerprint

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".pgm", ".ppm", ".pbm", ".pnm", ".bmp", ".gif", ".tif",
                            ".tiff", ".webp"})
MAX_PIXELS = 40_000_000  # refuse larger images before decoding (a 40-megapixel photo is 120 MB as RGB)


# --- single images --------------------------------------------------------------------------------
def load_face_image(path: str | Path, size: int) -> torch.Tensor:
    """One image file -> ``[3, size, size]`` float in [-1, 1]; ImageFileError naming the file if unusable."""
    return to_float(decode_image(path, size))


def decode_image(path: str | Path, size: int) -> torch.Tensor:
    """One image file -> ``[3, size, size]`` uint8: RGB, centre-cropped square, resized."""
    path = Path(path)
    if not path.is_file():
        raise ImageFileError(path, "no such image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as picture:
                _check_pixel_count(path, picture)
                picture = _to_rgb(ImageOps.exif_transpose(picture))
                picture = _centre_square(picture).resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    except ImageFileError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
        raise ImageFileError(path, f"not a readable image ({err})") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as err:  # truncated, corrupt, odd modes
        raise ImageFileError(path, f"damaged or unsupported image ({type(err).__name__}: {err})") from None
    return torch.from_numpy(np.asarray(picture, dtype=np.uint8).copy()).permute(2, 0, 1)  # [3, size, size]


def _check_pixel_count(path: Path, picture: Image.Image) -> None:
    width, height = picture.size
    if width < 1 or height < 1:
        raise ImageFileError(path, f"empty image ({width} x {height})")
    if width * height > MAX_PIXELS:
        raise ImageFileError(path, f"{width} x {height} pixels is more than the {MAX_PIXELS:,} allowed; "
                                   "downscale it first")


def _to_rgb(picture: Image.Image) -> Image.Image:
    """RGB from any mode; 16-bit and float grey are scaled by their maximum first (convert() would clip them)."""
    if picture.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values = np.asarray(picture, dtype=np.float64)
        peak = values.max() if values.size and values.max() > 0 else 1.0
        picture = Image.fromarray(np.clip(values / peak * 255, 0, 255).astype(np.uint8), mode="L")
    return picture.convert("RGB")


def _centre_square(picture: Image.Image) -> Image.Image:
    width, height = picture.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return picture.crop((left, top, left + side, top + side))


def to_float(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels ``[..., 3, H, W]`` -> float in [-1, 1]."""
    return pixels.float() / 127.5 - 1.0


def to_pixels(images: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] ``[..., C, H, W]`` -> uint8 (values outside are clipped)."""
    return ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def random_flips(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image of ``[B, C, H, W]`` left-right with probability 1/2 (the face augmentation)."""
    flip = torch.rand(images.shape[0], generator=generator) < 0.5  # [B]
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def random_lighting(images: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """``[B, 3, H, W]`` images in [-1, 1] under random light: each image's brightness scaled by a factor drawn from
    [1 - strength, 1 + strength] and each colour channel by one from [1 - strength / 2, 1 + strength / 2]."""
    brightness = 1 + strength * (2 * torch.rand(images.shape[0], 1, 1, 1, generator=generator) - 1)  # [B, 1, 1, 1]
    tint = 1 + strength / 2 * (2 * torch.rand(images.shape[0], 3, 1, 1, generator=generator) - 1)  # [B, 3, 1, 1]
    return (((images + 1) / 2 * brightness * tint).clamp(0, 1) * 2 - 1)


def random_zoom(images: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """``[B, C, H, W]`` images each cropped to a random square of ``1 - strength`` to 1 of its side, near the
    centre (where the training photos have their faces), and enlarged back (bilinear): faces framed tighter, as
    other photo collections frame them."""
    count = images.shape[0]
    scale = 1 - strength * torch.rand(count, generator=generator)  # [B] side of the crop, as a share
    shift = (1 - scale) / 4 * (2 * torch.rand(2, count, generator=generator) - 1)  # [2, B] crop centre, near 0
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, 0, 2], theta[:, 1, 2] = scale, scale, shift[0], shift[1]
    grid = torch.nn.functional.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    return torch.nn.functional.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


# --- grids and PNG files --------------------------------------------------------------------------
def image_grid(images: torch.Tensor, columns: int, padding: int = 2) -> torch.Tensor:
    """``[N, C, H, W]`` -> one ``[C, rows * (H + p) + p, columns * (W + p) + p]`` tiling, row-major, white gaps."""
    count, channels, height, width = images.shape
    rows = max(1, -(-count // columns))
    grid = images.new_ones(channels, rows * (height + padding) + padding, columns * (width + padding) + padding)
    for index, image in enumerate(images):
        top = padding + (index // columns) * (height + padding)
        left = padding + (index % columns) * (width + padding)
        grid[:, top:top + height, left:left + width] = image
    return grid


def save_png(path: str | Path, image: torch.Tensor) -> Path:
    """Write a ``[C, H, W]`` image in [-1, 1] (C = 1 or 3) as a PNG, atomically."""
    pixels = to_pixels(image).permute(1, 2, 0).numpy()  # [H, W, C]
    picture = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    with atomic_output(path) as tmp:
        picture.save(tmp, format="PNG")
    return Path(path)


def save_grid(path: str | Path, images: torch.Tensor, columns: int) -> Path:
    """Write ``[N, C, H, W]`` images in [-1, 1] as one PNG grid with ``columns`` per row."""
    return save_png(path, image_grid(images.detach().float().cpu(), columns, padding=2))


# --- folders --------------------------------------------------------------------------------------
def image_files(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursively, by suffix), sorted; VoiceconvError if the folder is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VoiceconvError(f"{folder}: no such folder of images")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


@dataclass
class FaceFolder:
    """Every readable image of one folder: ``pixels`` uint8 ``[N, 3, size, size]`` and their ``files``."""

    name: str
    pixels: torch.Tensor
    files: list[str]
    skipped: list[str]

    def __len__(self) -> int:
        return len(self.files)

    def subset(self, indices: list[int] | torch.Tensor, name: str | None = None) -> FaceFolder:
        """The images at ``indices`` (same skipped list)."""
        indices = torch.as_tensor(indices, dtype=torch.long)
        return FaceFolder(name or self.name, self.pixels[indices], [self.files[i] for i in indices.tolist()],
                          self.skipped)


def load_face_folder(folder: str | Path, size: int, cache_dir: str | Path, min_images: int = 1,
                     name: str | None = None) -> FaceFolder:
    """All images under ``folder`` at ``size`` x ``size`` (decoded once, then read from the cache in ``cache_dir``)."""
    folder = Path(folder)
    files = image_files(folder)
    cache = Path(cache_dir) / f"faces-{folder.name}-{fingerprint(files, {'size': size})}.safetensors"
    pixels, kept, skipped = _read_cache(cache) if cache.is_file() else _decode_all(files, size, cache)
    if len(kept) < min_images:
        raise VoiceconvError(f"{folder}: only {len(kept)} readable image(s) ({len(files)} found, {len(skipped)} "
                             f"unreadable); at least {min_images} are needed: add images")
    return FaceFolder(name or folder.name, pixels, kept, skipped)


def _decode_all(files: list[Path], size: int, cache: Path) -> tuple[torch.Tensor, list[str], list[str]]:
    images, kept, skipped = [], [], []
    for path in files:
        try:
            images.append(decode_image(path, size))
        except ImageFileError as err:
            log.warning("skipping %s", err)
            skipped.append(str(err))
            continue
        kept.append(str(path))
    pixels = torch.stack(images) if images else torch.zeros(0, 3, size, size, dtype=torch.uint8)
    with atomic_output(cache) as tmp:
        save_file({"pixels": pixels.contiguous()}, str(tmp),
                  metadata={"files": json.dumps(kept), "skipped": json.dumps(skipped)})
    return pixels, kept, skipped


def _read_cache(cache: Path) -> tuple[torch.Tensor, list[str], list[str]]:
    with safe_open(str(cache), "pt") as f:
        metadata = f.metadata() or {}
    return load_file(str(cache))["pixels"], json.loads(metadata["files"]), json.loads(metadata["skipped"])


def concatenate(groups: list[FaceFolder], name: str) -> FaceFolder:
    """One folder holding the images of ``groups``, in order."""
    pixels = torch.cat([g.pixels for g in groups]) if groups else torch.zeros(0, 3, 1, 1, dtype=torch.uint8)
    return FaceFolder(name, pixels, [f for g in groups for f in g.files], [s for g in groups for s in g.skipped])


def hold_out(folder: FaceFolder, count: int, generator: torch.Generator,
             keep_subfolders_together: bool) -> tuple[FaceFolder, FaceFolder]:
    """(test, train): at least ``count`` random images held out; whole subfolders when ``keep_subfolders_together``."""
    units = [str(Path(f).parent) if keep_subfolders_together else f for f in folder.files]
    distinct = sorted(set(units))
    order = torch.randperm(len(distinct), generator=generator).tolist()
    held: set[str] = set()
    members = {unit: [i for i, u in enumerate(units) if u == unit] for unit in distinct}
    taken = 0
    for index in order:
        if taken >= count:
            break
        held.add(distinct[index])
        taken += len(members[distinct[index]])
    if taken >= len(folder) and count > 0:
        raise ConfigError(f"{folder.name}: holding out {count} test images leaves none to train on "
                          f"({len(folder)} images); lower the number held back")
    test_indices = [i for i, u in enumerate(units) if u in held]
    train_indices = [i for i, u in enumerate(units) if u not in held]
    return folder.subset(test_indices), folder.subset(train_indices)


def held_back_split(groups: list[FaceFolder], count: int, seed: int) -> tuple[list[FaceFolder], list[FaceFolder]]:
    """(training, held back) folders: ``count`` images of each folder kept out of training, drawn with ``seed``.

    A folder whose images sit in several subfolders (ORL: one per person) gives
    whole subfolders, so no held-back face's person is trained on.
    """
    if count <= 0:
        return groups, []
    generator = torch.Generator().manual_seed(seed)
    training, held = [], []
    for group in groups:
        people = len({Path(f).parent for f in group.files}) > 1
        test, train = hold_out(group, count, generator, keep_subfolders_together=people)
        training.append(train)
        held.append(test)
    return training, held


@torch.no_grad()
def encode_in_chunks(encode, pixels: torch.Tensor, device: torch.device, chunk: int = 256) -> list[torch.Tensor]:
    """``encode`` (returning a tuple of tensors) over all ``pixels`` in chunks; each output concatenated on the CPU."""
    outputs = [encode(to_float(pixels[i:i + chunk]).to(device)) for i in range(0, len(pixels), chunk)]
    return [torch.cat([o[k].float().cpu() for o in outputs]) for k in range(len(outputs[0]))]
