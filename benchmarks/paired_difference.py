"""How far two ``voiceconv evaluate`` reports differ, sentence by sentence, and how sure that difference is.

Two models scored on the same sentences differ by the mean of their per-sentence differences; a paired bootstrap
over the sentences gives its 95% interval. With 23 short prompts a WER change of 0.05 can be noise; this says
whether it is::

    .venv/bin/python benchmarks/paired_difference.py runs/eval/X/start/report.json runs/eval/X/kept/report.json \\
        --column wer --column sim_target --skip runs/data/kathleen_rms/kathleen/eval

Prints one line per column: the mean of B - A, its interval, how many sentences moved, and n.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
from pathlib import Path

import numpy as np


def per_sentence(report: Path, column: str) -> dict[str, float]:
    """``column`` of every converted sentence of ``report`` (a ``report.json``) by file name, where it was measured."""
    rows = json.loads(report.read_text())["utterances"]["converted"]
    return {row["file"]: float(row[column]) for row in rows if row.get(column) is not None}


def selected(files: set[str], only: list[str] | None, skip: list[str] | None) -> list[str]:
    """``files`` matching any of ``only`` (all when None) and none of ``skip``: each a file-name pattern (fnmatch)
    or a folder, which stands for the names of the files in it."""
    def matcher(patterns: list[str]):  # a report names a file by its stem; each folder is listed once
        stems = {f.stem for p in patterns if Path(p).is_dir() for f in Path(p).iterdir()}
        globs = [p for p in patterns if not Path(p).is_dir()]
        return lambda name: name in stems or any(fnmatch.fnmatch(name, g) for g in globs)
    keep, drop = matcher(only) if only else (lambda name: True), matcher(skip or [])
    return sorted(f for f in files if keep(f) and not drop(f))


def paired_interval(differences: np.ndarray, draws: int = 10000, seed: int = 0) -> tuple[float, float]:
    """The 95% paired-bootstrap interval of the mean of ``differences`` (one per sentence)."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(differences), size=(draws, len(differences)))
    means = differences[picks].mean(axis=1)  # (draws,)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report_a", type=Path)
    parser.add_argument("report_b", type=Path)
    parser.add_argument("--column", action="append", help="per-sentence column (default: wer)")
    parser.add_argument("--only", action="append", help="compare only these sentences: a file-name pattern "
                        "(fnmatch) or a folder holding them; repeatable")
    parser.add_argument("--skip", action="append", help="leave these sentences out (as --only); repeatable")
    args = parser.parse_args()
    for column in args.column or ["wer"]:
        a, b = per_sentence(args.report_a, column), per_sentence(args.report_b, column)
        files = selected(a.keys() & b.keys(), args.only, args.skip)
        if not files:
            raise SystemExit(f"{args.report_b}: no sentence shared with {args.report_a} has {column}")
        differences = np.array([b[f] - a[f] for f in files])  # (sentences,)
        low, high = paired_interval(differences)
        print(f"{column}: B - A = {differences.mean():+.3f}  95% [{low:+.3f}, {high:+.3f}]  "
              f"moved {int((differences != 0).sum())}/{len(files)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
