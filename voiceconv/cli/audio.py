"""``voiceconv spectrogram`` and ``voiceconv synthesize``: the audio pipeline's two ends."""

from __future__ import annotations

from pathlib import Path

from voiceconv.cli.common import feature_overrides
from voiceconv.errors import VoiceconvError


def add_verbs(verbs) -> None:
    """Register ``spectrogram, synthesize``."""
    _add_spectrogram(verbs)
    _add_synthesize(verbs)


def _add_spectrogram(verbs) -> None:
    p = verbs.add_parser("spectrogram", help="audio file -> 16-bit spectrogram PNG (with its parameters inside)",
                         description="Turn an audio file into a log-mel spectrogram image (16-bit greyscale PNG "
                                     "that carries its feature parameters, so `voiceconv synthesize` can play it back).")
    p.add_argument("input", type=Path, help="audio file (wav, flac, ogg, mp3, ...)")
    p.add_argument("output", type=Path, help="PNG file to write")
    p.add_argument("--trim-silence", action="store_true", help="drop leading and trailing silence")
    p.add_argument("--loudness", type=float, metavar="LUFS", help="normalize loudness first, e.g. -23")
    feature_overrides(p)
    p.set_defaults(run=_run_spectrogram)


def _run_spectrogram(args) -> None:
    from voiceconv.audio.features import FeatureConfig
    from voiceconv.audio.pipeline import audio_to_spectrogram_png
    from voiceconv.config import apply_overrides

    config = apply_overrides(FeatureConfig(), args.overrides)
    out = audio_to_spectrogram_png(args.input, args.output, config, trim_silence=args.trim_silence,
                                   loudness_lufs=args.loudness)
    print(out)


def _add_synthesize(verbs) -> None:
    from voiceconv.audio.vocoder import DEFAULT_ITERATIONS, DEFAULT_MOMENTUM

    p = verbs.add_parser("synthesize", help="spectrogram PNG -> audio file (Griffin-Lim)",
                         description="Resynthesize audio from a spectrogram PNG with fast Griffin-Lim. The feature "
                                     "parameters come from the PNG's metadata; --set overrides them.")
    p.add_argument("input", type=Path, help="spectrogram PNG (from `voiceconv spectrogram`, possibly edited)")
    p.add_argument("output", type=Path, help="audio file to write: .wav, .flac, .ogg or .mp3")
    p.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS, help="Griffin-Lim iterations (default %(default)s)")
    p.add_argument("--momentum", type=float, default=DEFAULT_MOMENTUM, help="fast Griffin-Lim momentum in [0, 1) (default %(default)s)")
    feature_overrides(p)
    p.set_defaults(run=_run_synthesize)


def _run_synthesize(args) -> None:
    from voiceconv.audio.features import FeatureConfig
    from voiceconv.audio.image_file import read_png_config
    from voiceconv.audio.pipeline import spectrogram_png_to_audio
    from voiceconv.config import apply_overrides

    config = None
    if args.overrides:
        config = apply_overrides(read_png_config(args.input) or FeatureConfig(), args.overrides)
    if not 0 <= args.momentum < 1 or args.iterations < 0:
        raise VoiceconvError("--momentum must be in [0, 1) and --iterations >= 0")
    out = spectrogram_png_to_audio(args.input, args.output, config, n_iter=args.iterations, momentum=args.momentum)
    print(out)
