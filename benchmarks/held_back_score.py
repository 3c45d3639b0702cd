"""The held-back selection score of a voice model file, as a training run's validator would give it.

The held-back recordings are the last ``--held-back`` files of each speaker folder (``data.held_back`` of the voice
recipes: the same split training used), judged against the folders' ``transcripts.tsv`` where they have one; the
speaker references are the remaining training files::

    .venv/bin/python benchmarks/held_back_score.py samples/models/kathleen_rms.safetensors \\
        --speaker-a runs/data/kathleen_rms/kathleen/train --speaker-b runs/data/kathleen_rms/rms/train

Prints one JSON line: score, similarity margin, WER, DNSMOS and success (the share of recordings nearer the target).
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
from voiceconv.train.selection import VoiceValidator  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--speaker-a", type=Path, required=True)
    parser.add_argument("--speaker-b", type=Path, required=True)
    parser.add_argument("--held-back", type=int, default=12, help="recordings per speaker (default %(default)s)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    files, held_back, transcripts = {}, {}, {}
    for side, folder in (("a", args.speaker_a), ("b", args.speaker_b)):
        files[side], held_back[side] = split_held_back(audio_files(folder), args.held_back)
        transcripts.update(folder_transcripts(folder, held_back[side]))
    model = VoiceModel.from_file(args.model)
    alignment = model.alignment.get("a2b") if model.alignment else None
    validator = VoiceValidator(model.features, held_back, alignment, files, transcripts)
    print(json.dumps({"model": str(args.model), **validator(model)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
