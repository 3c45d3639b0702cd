"""How much a speech VAE loses: its reconstructions against the same audio through Griffin-Lim alone.

For each input file it computes the log-mel image, then (a) Griffin-Lim of that
image (the ceiling: what our vocoder alone loses) and (b) Griffin-Lim of the
VAE's reconstruction of it, and reports the mel-cepstral distortion of each
against the original waveform (WORLD, DTW-aligned, as ``voiceconv evaluate``)
and the mean absolute log-mel difference of the VAE's image from the input's,
in image units ([-1, 1] spans ``FeatureConfig.db_range`` dB). With ``--out`` it
also writes both versions of every file for listening.

    .venv/bin/python benchmarks/speech_vae_quality.py runs/speech_vae/model.safetensors \\
        ../shared/data/vcc2016/dev/SF1 samples/audio --limit 10 --out runs/speech_vae/listen
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from voiceconv.audio.features import MelImageEncoder
from voiceconv.audio.io import audio_files, load_audio, save_audio
from voiceconv.audio.vocoder import GriffinLimVocoder
from voiceconv.evaluate.mcd import mel_cepstral_distortion
from voiceconv.speech_vae import load_speech_vae, reconstruct_image


def measure(model_path: Path, inputs: list[Path], limit: int, out: Path | None) -> list[dict]:
    """One row per file: MCD of Griffin-Lim alone and of the VAE reconstruction, and the image difference."""
    model, features = load_speech_vae(model_path)
    encode, vocode = MelImageEncoder(features), GriffinLimVocoder(features)
    rows = []
    for path in [f for folder in inputs for f in (audio_files(folder) if folder.is_dir() else [folder])[:limit]]:
        wav = load_audio(path, features.sample_rate)
        image = encode(torch.from_numpy(wav))  # [1, n_mels, T]
        rebuilt = reconstruct_image(model, image)  # [1, n_mels, T]
        ceiling, vae = (vocode(x)[0].clamp(-1, 1).numpy() for x in (image, rebuilt))
        rows.append({"file": path.name, "source": path.parent.name,
                     "mcd_griffin_lim": mel_cepstral_distortion(ceiling, wav, features.sample_rate),
                     "mcd_vae": mel_cepstral_distortion(vae, wav, features.sample_rate),
                     "image_l1": float((rebuilt - image).abs().mean())})
        if out:
            save_audio(out / path.parent.name / f"{path.stem}_griffin_lim.wav", ceiling, features.sample_rate)
            save_audio(out / path.parent.name / f"{path.stem}_vae.wav", vae, features.sample_rate)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="a speech-vae model file")
    parser.add_argument("inputs", type=Path, nargs="+", help="audio files or folders (one table row per folder)")
    parser.add_argument("--limit", type=int, default=10, help="files per folder")
    parser.add_argument("--out", type=Path, help="write the Griffin-Lim and VAE versions here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = measure(args.model, args.inputs, args.limit, args.out)
    print("| input | files | MCD dB, Griffin-Lim alone | MCD dB, through the VAE | ratio | image L1 |")
    print("|---|---|---|---|---|---|")
    for source in dict.fromkeys(r["source"] for r in rows):
        mine = [r for r in rows if r["source"] == source]
        gl, vae = (statistics.mean(r[key] for r in mine) for key in ("mcd_griffin_lim", "mcd_vae"))
        print(f"| {source} | {len(mine)} | {gl:.2f} | {vae:.2f} | {vae / gl:.2f}x | "
              f"{statistics.mean(r['image_l1'] for r in mine):.3f} |")


if __name__ == "__main__":
    main()
