#!/usr/bin/env python3
"""Prepare a phone-labelled speech corpus for the phone model (recipes/phones/README.md) with Debian's flite.

Four flite voices (kal16, awb, rms, slt: three men, one woman, US and Scottish) read CMU ARCTIC "a" prompts (the
Kathleen pair's held-out prompts a0571-a0593 left out) and Harvard sentences, each at a random speaking rate.
flite reports where every phone ends (``-psdur``), so every file comes with its phone segmentation::

    <voice>/<id>.flac      16 kHz mono
    <voice>/<id>.phones    one "phone<TAB>end seconds" line per phone

Usage::

    .venv/bin/python recipes/phones/prepare.py [--out runs/data/phones] [--per-voice 600] [--jobs 2]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import soundfile as sf
import soxr

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "recipes" / "kathleen_rms"))
from prepare import EVAL_RANGE, read_prompts  # noqa: E402

SHARED = REPO.parent / "shared" / "data" / "text"
VOICES = ("kal16", "awb", "rms", "slt")
SAMPLE_RATE = 16000
STRETCH = (0.85, 1.2)  # flite's duration_stretch, drawn per file


def prompts() -> list[tuple[str, str]]:
    """(id, text) of the ARCTIC "a" prompts outside the Kathleen pair's evaluation range, then the Harvard
    sentences."""
    arctic = [(pid, text) for pid, text in read_prompts(SHARED / "cmuarctic.data.normalized").items()
              if not EVAL_RANGE[0] <= int(pid[-4:]) <= EVAL_RANGE[1]]
    harvard = [line.strip() for line in (SHARED / "harvard_sentences.txt").read_text().splitlines() if line.strip()]
    return arctic + [(f"harvard_{n:04d}", text) for n, text in enumerate(harvard, 1)]


def synthesize(voice: str, pid: str, text: str, stretch: float, out: Path) -> None:
    """One prompt read by ``voice``: ``out/<pid>.flac`` and its ``.phones``."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "x.wav"
        run = subprocess.run(["flite", "-voice", voice, "--setf", f"duration_stretch={stretch:.3f}", "-psdur",
                              "-t", text, "-o", str(wav)], capture_output=True, text=True, check=True)
        audio, rate = sf.read(wav, dtype="float32")
    if rate != SAMPLE_RATE:
        audio = soxr.resample(audio, rate, SAMPLE_RATE)
    segments = [item.rsplit(":", 1) for item in run.stdout.split()]
    (out / f"{pid}.phones").write_text("".join(f"{phone}\t{end}\n" for phone, end in segments))
    sf.write(out / f"{pid}.flac", audio, SAMPLE_RATE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "data" / "phones")
    parser.add_argument("--per-voice", type=int, default=600)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    everything = prompts()
    rng = random.Random(0)
    work = []
    for voice in VOICES:
        (args.out / voice).mkdir(parents=True, exist_ok=True)
        for pid, text in rng.sample(everything, min(args.per_voice, len(everything))):
            work.append((voice, pid, text, rng.uniform(*STRETCH), args.out / voice))
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(lambda job: synthesize(*job), work))
    print(f"{len(work)} files under {args.out}")


if __name__ == "__main__":
    main()
