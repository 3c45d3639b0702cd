"""Measure the lecture's claims about its face models, in one table each (issue 23).

``autoencoders``: the plain autoencoder against the VAE, both trained with the same faces held back
(``data.held_back``; the run folder's ``held_back.json`` lists them):

* reconstruction error on the held-back faces (the lecture: the autoencoder's is no larger);
* decodings of codes drawn from N(0, I), and of midpoints between two held-back faces' codes: the share a face
  classifier calls faces and their diversity (the lecture: the VAE's samples are better);
* for reference, the held-back faces themselves, and the autoencoder decoding codes drawn with its own codes'
  per-latent mean and spread (what one would do to sample from it at all).

``OUT/side_by_side.png`` holds 8 faces per row: held-back faces; the autoencoder's and the VAE's reconstructions
of them; both decoding the same 8 codes from N(0, I); both decoding midpoints between two held-back faces::

    .venv/bin/python benchmarks/face_models.py autoencoders --ae runs/faces_ae/model.safetensors \\
        --vae runs/faces_vae_hb/model.safetensors --held-back runs/faces_ae/held_back.json -o runs/eval/faces_ae

``generators``: GANs (or any sampler) by the share of samples called faces and their diversity::

    .venv/bin/python benchmarks/face_models.py generators --model gan=samples/models/faces_gan.safetensors \\
        --model progan=runs/faces_progan/model.safetensors -o runs/eval/faces_gans

``OUT/side_by_side.png`` holds two rows of 8 samples per model, in the order given.

The judge is the shipped debiasing VAE (``--judge``), a face / non-face classifier trained on other images than
these samples. Each table goes to ``OUT/table.md`` (and standard output) with a grid of the first 32 images of
every row as ``OUT/<row>.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from voiceconv.faces.data import load_face_image, save_grid  # noqa: E402
from voiceconv.faces.quality import (SampleQuality, midpoints, reconstruction_error,  # noqa: E402
                                     sample_quality, samples_from_code_spread)
from voiceconv.faces.tools import load_face_model, sample  # noqa: E402

JUDGE = ROOT / "samples" / "models" / "faces_dbvae.safetensors"


def held_back_faces(listing: Path, size: int) -> torch.Tensor:
    """The faces ``held_back.json`` lists (paths relative to the repository root), ``[N, 3, size, size]``."""
    files = [file for group in json.loads(listing.read_text()).values() for file in group]
    return torch.stack([load_face_image(ROOT / file, size) for file in files])


def quality_row(name: str, images: torch.Tensor, judge, out: Path, extra: str = "") -> str:
    save_grid(out / f"{name}.png", images[:32], 8)
    q: SampleQuality = sample_quality(images, judge)
    return f"| {name} | {extra} | {q.called_faces:.0%} | {q.pixel_diversity:.3f} | {q.code_diversity:.2f} |"


def autoencoders(args, judge, out: Path) -> list[str]:
    ae, _ = load_face_model(args.ae)
    vae, _ = load_face_model(args.vae)
    faces = held_back_faces(args.held_back, ae.image_shape[-1])
    rows = ["| images | held-back reconstruction MSE | called faces | pixel diversity | code diversity |",
            "|---|---|---|---|---|",
            quality_row("held-back faces", faces, judge, out)]
    for name, model in (("autoencoder", ae), ("VAE", vae)):
        error = f"{reconstruction_error(model, faces):.4f}"
        save_grid(out / f"{name} reconstructions.png", torch.cat([faces[:8], model.reconstruct(faces[:8])]), 8)
        rows.append(quality_row(f"{name}: reconstructions", model.reconstruct(faces), judge, out, error))
        rows.append(quality_row(f"{name}: z ~ N(0, I)", sample(model, args.count, args.seed), judge, out))
        rows.append(quality_row(f"{name}: midpoints of two faces", midpoints(model, faces, args.seed), judge, out))
    spread = samples_from_code_spread(ae, args.count, args.seed)
    rows.append(quality_row("autoencoder: z ~ its codes' mean and std", spread, judge, out))
    side_by_side = [faces[:8], ae.reconstruct(faces[:8]), vae.reconstruct(faces[:8]), sample(ae, 8, args.seed),
                    sample(vae, 8, args.seed), midpoints(ae, faces, args.seed)[:8], midpoints(vae, faces, args.seed)[:8]]
    save_grid(out / "side_by_side.png", torch.cat(side_by_side), 8)  # rows as listed in the module docstring
    return rows


def generators(args, judge, out: Path) -> list[str]:
    rows = ["| model | steps | called faces | pixel diversity | code diversity |", "|---|---|---|---|---|"]
    firsts = []
    for entry in args.model:
        name, _, path = entry.partition("=")
        model, header = load_face_model(path)
        steps = header.get("training", {}).get("steps", "?")
        samples = sample(model, args.count, args.seed)
        rows.append(quality_row(name, samples, judge, out, str(steps)))
        firsts.append(samples[:16])
    save_grid(out / "side_by_side.png", torch.cat(firsts), 8)  # two rows of 8 per model, in the order given
    return rows


def main() -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--judge", type=Path, default=JUDGE, help="face-dbvae file that classifies and encodes")
    common.add_argument("--count", type=int, default=512, help="samples per row")
    common.add_argument("--seed", type=int, default=0)
    common.add_argument("-o", "--out", type=Path, required=True)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    ae = commands.add_parser("autoencoders", parents=[common])
    ae.add_argument("--ae", type=Path, required=True)
    ae.add_argument("--vae", type=Path, required=True)
    ae.add_argument("--held-back", type=Path, required=True, help="held_back.json of the runs")
    gans = commands.add_parser("generators", parents=[common])
    gans.add_argument("--model", action="append", required=True, help="NAME=FILE (repeatable)")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    judge, _ = load_face_model(args.judge)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = (autoencoders if args.command == "autoencoders" else generators)(args, judge, args.out)
    table = "\n".join(rows) + "\n"
    (args.out / "table.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
