"""Which candidate each selection rule would keep, from a finished voice run's ``validation.jsonl``.

Every validation entry keeps each candidate's parts (``<direction>_<part>_at_<strength>``: similarity margin,
DNSMOS, success, and the WER against every reading of the held-back words, ``wer_input``, ``wer_recording``,
``wer_parallel``, ``wer_transcript``; ``voiceconv.train.selection``), so rules can be compared without converting
again::

    .venv/bin/python benchmarks/selection_rules.py runs/s_all [--tolerance 0.03]

Per direction, one line per (step, strength) candidate, then each rule's pick:

* ``score/<reading>``: the selection score, ``margin - WER + 0.5 (DNSMOS - 3)``, with that reading's WER;
* ``words/<reading>``: the largest similarity margin among candidates whose WER against that reading is at most
  ``--tolerance`` above step 0's and whose DNSMOS is at least 2.9 (issue 19's first target, on held-back data;
  ``data.selection: words`` with ``data.word_reference: <reading>`` is this rule inside training).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voiceconv.train.selection import keeps_words, selection_score  # noqa: E402

READINGS = ("wer_input", "wer_recording", "wer_parallel", "wer_transcript")
CANDIDATE = re.compile(r"^(a2b|b2a)_(.+)_at_([0-9.]+)$")


def candidates(history: list[dict]) -> dict[str, dict[tuple[int, float], dict[str, float]]]:
    """direction -> (step, strength) -> parts; step 0 is strength 0 of every later step."""
    found: dict[str, dict[tuple[int, float], dict[str, float]]] = {"a2b": {}, "b2a": {}}
    for entry in history:
        for key, value in entry.items():
            match = CANDIDATE.match(key)
            if match:
                direction, part, strength = match.groups()
                step, strength = (0, 0.0) if entry["step"] == 0 or float(strength) == 0 else \
                    (entry["step"], float(strength))
                found[direction].setdefault((step, strength), {})[part] = value
    return found


def picks(by_candidate: dict[tuple[int, float], dict[str, float]], tolerance: float) -> dict[str, tuple]:
    """Each rule's (step, strength) among ``by_candidate``."""
    start = by_candidate[(0, 0.0)]
    rules = {}
    for reading in ("input", "recording", "parallel", "transcript"):
        key = f"wer_{reading}"
        if key not in start:
            continue
        rules[f"score/{reading}"] = max(by_candidate, key=lambda c: selection_score(
            by_candidate[c]["similarity_margin"], by_candidate[c][key], by_candidate[c]["dnsmos"]))
        allowed = [c for c, parts in by_candidate.items() if c == (0, 0.0)
                   or keeps_words({**parts, "wer": parts[key]}, {**start, "wer": start[key]}, tolerance)]
        rules[f"words/{reading}"] = max(allowed, key=lambda c: by_candidate[c]["similarity_margin"])
    return rules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--tolerance", type=float, default=0.03, help="WER above step 0's allowed (words rules)")
    args = parser.parse_args()
    history = [json.loads(line) for line in (args.run / "validation.jsonl").read_text().splitlines() if line]
    for direction, by_candidate in candidates(history).items():
        print(f"{direction}: step strength | margin | " + " | ".join(
            k for k in READINGS if k in by_candidate[(0, 0.0)]) + " | DNSMOS")
        for (step, strength), parts in sorted(by_candidate.items()):
            wers = " | ".join(f"{parts[k]:.3f}" for k in READINGS if k in parts)
            print(f"  {step:>6} {strength:<4g} | {parts['similarity_margin']:+.3f} | {wers} | {parts['dnsmos']:.2f}")
        for rule, (step, strength) in picks(by_candidate, args.tolerance).items():
            print(f"  {rule:<18} keeps step {step} at {strength:g}")


if __name__ == "__main__":
    main()
