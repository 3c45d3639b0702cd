"""The held-back selection score of a voice model file, as a training run's validator would give it.

The held-back recordings are the last ``--held-back`` files of each speaker folder (``data.held_back`` of the voice
recipes: the same split training used), judged against the folders' ``transcripts.tsv`` where they have one; the
speaker references are the remaining training files::

    .venv/bin/python benchmarks/held_back_score.py samples/models/kathleen_rms.safetensors \\
        --speaker-a runs/data/kathleen_rms/kathleen/train --speaker-b runs/data/kathleen_rms/rms/train

Prints one JSON line per model: score, similarity margin, WER, DNSMOS and success (the share of recordings nearer
the target). Several models share one preparation (the same alignment: models of one run); ``--by-direction`` adds
one line per direction, each scored on its own held-back recordings (the first line is then their mean, as
selection combines them).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from voiceconv.audio.io import audio_files  # noqa: E402
from voiceconv.data.speakers import split_held_back  # noqa: E402
from voiceconv.data.transcripts import folder_transcripts  # noqa: E402
from voiceconv.modelfiles.voice import VoiceModel  # noqa: E402
from voiceconv.models.directions import DIRECTIONS  # noqa: E402
from voiceconv.train.selection import VoiceValidator  # noqa: E402
from voiceconv.train.voice import best_strengths, parallel_word_references  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, nargs="+")
    parser.add_argument("--speaker-a", type=Path, required=True)
    parser.add_argument("--speaker-b", type=Path, required=True)
    parser.add_argument("--held-back", type=int, default=12, help="recordings per speaker (default %(default)s)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--by-direction", action="store_true", help="also score each direction alone")
    parser.add_argument("--word-reference", choices=("input", "recording", "parallel"), default="input",
                        help="the reading the judged WER is against where a folder has no transcripts (as "
                             "data.word_reference); the scores carry every reading's WER whichever judges")
    parser.add_argument("--parallel-words", dest="word_reference", action="store_const", const="parallel",
                        help="the same as --word-reference parallel (session 20's name)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    files, held_back, transcripts = {}, {}, {}
    for side, folder in (("a", args.speaker_a), ("b", args.speaker_b)):
        files[side], held_back[side] = split_held_back(audio_files(folder), args.held_back)
        transcripts.update(folder_transcripts(folder, held_back[side]))
    models = [VoiceModel.from_file(path) for path in args.model]
    alignment = models[0].alignment.get("a2b") if models[0].alignment else None
    parallel = parallel_word_references((args.speaker_a, args.speaker_b), files, held_back,
                                        warn=args.word_reference == "parallel")
    validator = VoiceValidator(models[0].features, held_back, alignment, files, transcripts, parallel,
                               args.word_reference)
    for path, model in zip(args.model, models):
        if not args.by_direction:
            print(json.dumps({"model": str(path), **validator(model)}), flush=True)
            continue
        by_direction = {direction: validator(model, directions=(direction,)) for direction in DIRECTIONS}
        print(json.dumps({"model": str(path), **best_strengths({d: {1.0: s} for d, s in by_direction.items()})}),
              flush=True)
        for direction, scores in by_direction.items():
            print(json.dumps({"model": str(path), "direction": direction, **scores}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
