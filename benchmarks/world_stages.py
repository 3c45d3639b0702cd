"""What each WORLD stage costs, per analysis variant, and how far each variant's F0 and voicing move from today's.

On real speech (VCC2016 dev SF1 + TM1 and Kathleen eval, 16 kHz), one thread,
each variant timed in alternation with today's analysis (DIO speed 1 +
StoneMask, CheapTrick and D4C at 10 ms), medians of ``--repeats`` rounds:

* per stage seconds per second of audio (DIO, StoneMask, CheapTrick, D4C, synthesis);
* voicing agreement with today's F0 (share of 10-ms frames voiced/unvoiced alike) and the median F0
  difference in cents on frames voiced in both.

    nice -n 10 .venv/bin/python benchmarks/world_stages.py [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from voiceconv.audio import world

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
FOLDERS = [SHARED / "vcc2016/dev/SF1", SHARED / "vcc2016/dev/TM1", REPO / "runs/data/kathleen_rms/kathleen/eval"]
RATE = 16000

VARIANTS = {  # name: WorldSettings
    "today (dio 1 + stonemask, 10 ms)": world.WorldSettings(),
    "CheapTrick + D4C at 16 ms": world.WorldSettings(envelope_period_ms=16.0, aperiodicity_period_ms=16.0),
    "CheapTrick + D4C at 20 ms": world.WorldSettings(envelope_period_ms=20.0, aperiodicity_period_ms=20.0),
    "CheapTrick 20 ms, D4C 40 ms": world.WorldSettings(envelope_period_ms=20.0, aperiodicity_period_ms=40.0),
    "dio speed 2": world.WorldSettings(dio_speed=2),
    "dio speed 3": world.WorldSettings(dio_speed=3),
    "no StoneMask": world.WorldSettings(stonemask=False),
    "dio speed 2, no StoneMask": world.WorldSettings(dio_speed=2, stonemask=False),
    "dio speed 2, D4C 20 ms": world.WorldSettings(dio_speed=2, aperiodicity_period_ms=20.0),
    "dio speed 2, D4C 32 ms": world.WorldSettings(dio_speed=2, aperiodicity_period_ms=32.0),
}


def speech() -> list[np.ndarray]:
    from voiceconv.audio.io import audio_files, load_audio

    return [load_audio(p, RATE) for folder in FOLDERS for p in audio_files(folder)]


def timed_analysis(waves: list[np.ndarray], settings: world.WorldSettings) -> tuple[dict, list[np.ndarray]]:
    """Seconds per stage over all ``waves`` and the F0 each gives, read at today's 10-ms frame times."""
    seconds = dict.fromkeys(["f0", "cheaptrick", "d4c", "synthesis"], 0.0)
    f0s = []
    for wav in waves:
        x = np.ascontiguousarray(wav, dtype=np.float64)
        t0 = time.perf_counter()
        f0, times = world.extract_f0(x, RATE, settings)
        t1 = time.perf_counter()
        envelope = world.spectral(x, RATE, f0, times, settings.envelope_period_ms, "cheaptrick")
        t2 = time.perf_counter()
        aperiodicity = world.spectral(x, RATE, f0, times, settings.aperiodicity_period_ms, "d4c")
        t3 = time.perf_counter()
        world.synthesize(world.WorldFrames(f0, envelope, aperiodicity), RATE, len(wav), settings)
        t4 = time.perf_counter()
        for stage, spent in zip(seconds, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            seconds[stage] += spent
        f0s.append(f0)
    return seconds, f0s


def agreement(reference: list[np.ndarray], variant: list[np.ndarray]) -> tuple[float, float]:
    ref, var = np.concatenate(reference), np.concatenate(variant)
    voiced = (ref > 0) & (var > 0)
    cents = 1200 * np.abs(np.log2(var[voiced] / ref[voiced]))
    return float(np.mean((ref > 0) == (var > 0))), float(np.median(cents))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                        help="the first is the baseline of the ratio and agreement columns")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    waves = speech()
    audio = sum(len(w) for w in waves) / RATE
    names = args.variants
    runs = {name: [] for name in names}
    f0s = {}
    for _ in range(args.repeats):
        for name in names:  # alternation: every variant sees the same machine load
            seconds, f0s[name] = timed_analysis(waves, VARIANTS[name])
            runs[name].append(seconds)
    rows = {}
    print(f"{audio:.0f} s of speech, {len(waves)} files, medians of {args.repeats}, ms per second of audio\n")
    print("| variant | F0 | CheapTrick | D4C | synthesis | total | vs today | voicing agrees | median F0 diff, cents |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        stage = {k: float(np.median([r[k] for r in runs[name]])) / audio for k in runs[name][0]}
        stage["total"] = float(np.median([sum(r.values()) for r in runs[name]])) / audio
        voicing, cents = agreement(f0s[names[0]], f0s[name])
        rows[name] = {**stage, "voicing_agreement": voicing, "median_cents": cents}
        base = rows[names[0]]["total"]
        print(f"| {name} | {1000 * stage['f0']:.1f} | {1000 * stage['cheaptrick']:.1f} | {1000 * stage['d4c']:.1f} | "
              f"{1000 * stage['synthesis']:.1f} | {1000 * stage['total']:.1f} | {stage['total'] / base:.2f}x | "
              f"{100 * voicing:.1f}% | {cents:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
