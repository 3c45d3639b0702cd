"""``voiceconv <verb>``: each verb is a thin wrapper over a library function.

User errors (bad files, bad options) print one line to stderr and exit 1;
usage errors exit 2 (argparse); a traceback means a bug.
"""

from __future__ import annotations

import argparse
import os
import sys

# Before torch is imported: idle OpenMP threads sleep instead of spinning. With spinning, two torch
# processes on a small CPU (training beside a conversion, or torchrun workers) slow each other down
# 5-20x; measured with benchmarks/nn_speed.py on 2 cores. Set OMP_WAIT_POLICY=ACTIVE to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from voiceconv import __version__
from voiceconv.cli import audio, audit, convert, evaluate, faces, serve, speech_vae, train
from voiceconv.errors import VoiceconvError


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``voiceconv`` console command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except VoiceconvError as err:
        print(f"voiceconv {args.verb}: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # e.g. an unwritable output folder
        print(f"voiceconv {args.verb}: error: {err.filename or ''}: {err.strerror or err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"voiceconv {args.verb}: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voiceconv", description="Voice conversion on mel-spectrogram images.")
    parser.add_argument("--version", action="version", version=f"voiceconv {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for module in (audio, evaluate, train, convert, faces, speech_vae, audit, serve):
        module.add_verbs(verbs)
    return parser
