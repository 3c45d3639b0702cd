#!/usr/bin/env python3
"""Prepare the Kathleen <-> flite rms unpaired voice-conversion data set.

Kathleen (CC0, US-English female) reads the 593 CMU ARCTIC "a" prompts; the
second speaker is Debian's ``flite -voice rms`` (male) reading the same prompt
list. For UNPAIRED training the two sides get different sentences; a held-out
evaluation set is prepared for both sides with identical file names, so it is
parallel. See README.md next to this file.

Layout written under ``--out``::

    kathleen/train/arctic_aNNNN.flac   copies of Kathleen's recordings
    kathleen/eval/arctic_aNNNN.flac
    rms/train/arctic_aNNNN.flac        flite rms synthesis, 16 kHz mono FLAC
    rms/eval/arctic_aNNNN.flac
    transcripts.tsv                    id<TAB>prompt text, evaluation ids only
    {kathleen,rms}/train/transcripts.tsv  the training folders' prompts: model selection judges the
                                       held-back recordings' words against them (voiceconv.data.transcripts)

Usage::

    .venv/bin/python recipes/kathleen_rms/prepare.py [--out DIR] [--jobs N]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SHARED_DATA = REPO.parent / "shared" / "data"
DEFAULT_OUT = REPO / "runs" / "data" / "kathleen_rms"

# ---------------------------------------------------------------------------
# The fixed split (inclusive ranges of CMU ARCTIC "a" prompt numbers).
# Change it here only; README.md documents it.
# ---------------------------------------------------------------------------
EVAL_RANGE = (571, 593)  # held out on both sides; a0591, a0592 also in samples/audio/
KATHLEEN_TRAIN_RANGE = (1, 285)  # Kathleen's recordings used for training
RMS_TRAIN_RANGE = (286, 570)  # prompts synthesized with flite rms for training

SAMPLE_RATE = 16000
FLITE_VOICE = "rms"
PROMPTS_RELPATH = Path("text") / "cmuarctic.data.normalized"
KATHLEEN_WAV_RELPATH = Path("kathleen") / "wav"

_PROMPT_LINE = re.compile(r'^\(\s*(?P<id>\S+)\s+"(?P<text>(?:[^"\\]|\\.)*)"\s*\)\s*$')


class FliteNotFoundError(RuntimeError):
    """Raised when the ``flite`` executable is not on PATH."""


def arctic_ids(first: int, last: int) -> list[str]:
    """Return the ids ``arctic_aNNNN`` for prompt numbers ``first..last`` inclusive."""
    return [f"arctic_a{n:04d}" for n in range(first, last + 1)]


def split_ids() -> dict[str, list[str]]:
    """Return the fixed split as ``{"eval", "kathleen_train", "rms_train"}`` -> list of ids."""
    return {
        "eval": arctic_ids(*EVAL_RANGE),
        "kathleen_train": arctic_ids(*KATHLEEN_TRAIN_RANGE),
        "rms_train": arctic_ids(*RMS_TRAIN_RANGE),
    }


def parse_prompt_line(line: str) -> tuple[str, str] | None:
    """Parse one festvox prompt line ``( arctic_a0001 "Text ..." )`` into ``(id, text)``.

    Blank lines return None; the text is stripped of surrounding whitespace and
    backslash escapes (``\\"``) are undone. Any other malformed line raises ValueError.
    """
    if not line.strip():
        return None
    match = _PROMPT_LINE.match(line.strip())
    if match is None:
        raise ValueError(f"not a festvox prompt line: {line!r}")
    text = re.sub(r"\\(.)", r"\1", match["text"]).strip()
    return match["id"], text


def read_prompts(path: Path) -> dict[str, str]:
    """Read a festvox ``.data`` prompts file into ``{id: text}`` (file order preserved)."""
    prompts: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        try:
            parsed = parse_prompt_line(line)
        except ValueError as err:
            raise ValueError(f"{path}:{number}: {err}") from None
        if parsed is not None:
            prompts[parsed[0]] = parsed[1]
    return prompts


def find_flite() -> str:
    """Return the path of the ``flite`` executable, or raise FliteNotFoundError with the fix."""
    flite = shutil.which("flite")
    if flite is None:
        raise FliteNotFoundError(
            "flite is not installed (needed to synthesize the rms voice); "
            "on Debian/Ubuntu run: apt-get install flite"
        )
    return flite


def is_done(path: Path) -> bool:
    """True when ``path`` exists with nonzero size (an already finished output)."""
    return path.is_file() and path.stat().st_size > 0


def run_flite(text: str, wav_path: Path, voice: str = FLITE_VOICE, flite: str = "flite") -> None:
    """Synthesize ``text`` with ``flite -voice VOICE`` into ``wav_path`` (flite's native WAV).

    The text goes through a temporary file (``-f``), so no quoting or leading-dash
    issues can arise; flite is run with an argument list, never through a shell.
    """
    with tempfile.TemporaryDirectory(prefix="flite_") as tmp:
        text_file = Path(tmp) / "prompt.txt"
        text_file.write_text(text + "\n", encoding="utf-8")
        cmd = [flite, "-voice", voice, "-f", str(text_file), "-o", str(wav_path)]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not is_done(wav_path):
        raise RuntimeError(f"flite failed ({result.returncode}) on {text!r}: {result.stderr.strip()}")


def to_mono_16k(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """Downmix to mono float32 and resample to SAMPLE_RATE with soxr if needed."""
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 2:
        wav = wav.mean(axis=1)
    if sample_rate != SAMPLE_RATE:
        wav = soxr.resample(wav, sample_rate, SAMPLE_RATE).astype(np.float32)
    return wav


def write_flac_atomic(dest: Path, wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write 16-bit FLAC to a temp file beside ``dest``, then ``os.replace`` it into place."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=".flac", dir=dest.parent)
    os.close(fd)
    try:
        sf.write(tmp_name, wav, sample_rate, format="FLAC", subtype="PCM_16")
        os.replace(tmp_name, dest)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def synthesize(text: str, dest: Path, voice: str = FLITE_VOICE, flite: str | None = None) -> bool:
    """Synthesize ``text`` into ``dest`` as 16 kHz mono FLAC; return False if it already existed."""
    dest = Path(dest)
    if is_done(dest):
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="flite_wav_") as tmp:
        wav_path = Path(tmp) / "out.wav"
        run_flite(text, wav_path, voice, flite or find_flite())
        wav, sample_rate = sf.read(wav_path, dtype="float32")
    if len(wav) == 0:
        raise RuntimeError(f"flite produced no audio for {text!r}")
    write_flac_atomic(dest, to_mono_16k(wav, sample_rate))
    return True


def synthesize_many(
    prompts: dict[str, str], ids: list[str], out_dir: Path, jobs: int = 2, voice: str = FLITE_VOICE
) -> int:
    """Synthesize ``ids`` into ``out_dir/<id>.flac`` with ``jobs`` parallel flite runs.

    Existing nonempty outputs are skipped. Returns the number of files newly written.
    """
    flite = find_flite()
    missing = [i for i in ids if i not in prompts]
    if missing:
        raise KeyError(f"no prompt text for {len(missing)} ids, e.g. {missing[:3]}")
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(synthesize, prompts[i], Path(out_dir) / f"{i}.flac", voice, flite) for i in ids]
        return sum(f.result() for f in futures)


def copy_recording(src: Path, dest: Path) -> bool:
    """Copy ``src`` to ``dest`` atomically; return False if ``dest`` is already a copy. A symlink left by an
    earlier version of this script is replaced: voiceconv never opens a link that leads out of its folder."""
    src, dest = Path(src).resolve(), Path(dest)
    if is_done(dest) and not dest.is_symlink():
        return False
    if not src.is_file():
        raise FileNotFoundError(f"missing source recording: {src}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)
    return True


def copy_kathleen(wav_dir: Path, ids: list[str], out_dir: Path) -> int:
    """Copy Kathleen's ``<id>.flac`` recordings into ``out_dir``; return how many were new."""
    return sum(copy_recording(Path(wav_dir) / f"{i}.flac", Path(out_dir) / f"{i}.flac") for i in ids)


def write_transcripts(prompts: dict[str, str], ids: list[str], path: Path) -> None:
    """Write ``id<TAB>text`` lines (no header) for ``ids``, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("".join(f"{i}\t{prompts[i]}\n" for i in ids), encoding="utf-8")
    os.replace(tmp, path)


def audio_stats(folder: Path) -> tuple[int, float]:
    """Return ``(number of .flac files, total minutes of audio)`` in ``folder``."""
    files = sorted(Path(folder).glob("*.flac"))
    seconds = sum(sf.info(f).duration for f in files)
    return len(files), seconds / 60


def print_summary(out: Path) -> None:
    """Print files and minutes of audio per speaker and split."""
    print(f"{'speaker/split':<16} {'files':>6} {'minutes':>8}")
    for speaker in ("kathleen", "rms"):
        for split in ("train", "eval"):
            count, minutes = audio_stats(out / speaker / split)
            print(f"{speaker + '/' + split:<16} {count:>6} {minutes:>8.2f}")


def prepare(shared_data: Path, out: Path, jobs: int = 2) -> None:
    """Build the whole data set under ``out`` from ``shared_data`` (idempotent)."""
    prompts = read_prompts(shared_data / PROMPTS_RELPATH)
    ids = split_ids()
    wav_dir = shared_data / KATHLEEN_WAV_RELPATH
    new = copy_kathleen(wav_dir, ids["kathleen_train"], out / "kathleen" / "train")
    new += copy_kathleen(wav_dir, ids["eval"], out / "kathleen" / "eval")
    print(f"kathleen: {new} new copies")
    start = time.perf_counter()
    made = synthesize_many(prompts, ids["rms_train"], out / "rms" / "train", jobs)
    made += synthesize_many(prompts, ids["eval"], out / "rms" / "eval", jobs)
    print(f"rms: synthesized {made} new files in {time.perf_counter() - start:.1f} s ({jobs} jobs)")
    write_transcripts(prompts, ids["eval"], out / "transcripts.tsv")
    write_transcripts(prompts, ids["kathleen_train"], out / "kathleen" / "train" / "transcripts.tsv")
    write_transcripts(prompts, ids["rms_train"], out / "rms" / "train" / "transcripts.tsv")
    print_summary(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared-data", type=Path, default=DEFAULT_SHARED_DATA,
                        help=f"folder with kathleen/ and text/ (default: {DEFAULT_SHARED_DATA})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    parser.add_argument("--jobs", type=int, default=2, help="parallel flite processes (default: 2)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    args = parse_args(argv)
    if not (args.shared_data / PROMPTS_RELPATH).is_file() or not (args.shared_data / KATHLEEN_WAV_RELPATH).is_dir():
        print(f"error: {args.shared_data} lacks {PROMPTS_RELPATH} or {KATHLEEN_WAV_RELPATH}", file=sys.stderr)
        return 2
    try:
        find_flite()
        prepare(args.shared_data, args.out, args.jobs)
    except (FliteNotFoundError, FileNotFoundError, RuntimeError, KeyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
