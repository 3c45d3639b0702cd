"""``voiceconv speech-vae ...``: hear a recording through a speech VAE (:mod:`voiceconv.speech_vae`)."""

from __future__ import annotations

from pathlib import Path


def add_verbs(verbs) -> None:
    """Register ``voiceconv speech-vae reconstruct``."""
    speech = verbs.add_parser("speech-vae", help="hear a recording through a speech VAE (Griffin-Lim)",
                              description="Tools of a speech VAE trained with a speech-vae recipe.")
    tools = speech.add_subparsers(dest="tool", required=True, metavar="TOOL")
    p = tools.add_parser("reconstruct", help="audio -> log-mel -> VAE -> Griffin-Lim -> audio")
    p.add_argument("--model", type=Path, required=True, help="speech-vae model file")
    p.add_argument("input", type=Path, help="audio file")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="OUT_AUDIO", help=".wav, .flac, .ogg or .mp3")
    p.set_defaults(run=_run_reconstruct)


def _run_reconstruct(args) -> int:
    from voiceconv.speech_vae import reconstruct_audio

    print(reconstruct_audio(args.model, args.input, args.out))
    return 0
