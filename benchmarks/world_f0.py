"""Which WORLD analysis the voice changer (and so every conversion) should use: quality and speed, same run.

For each setting (F0 extractor, frame period, DIO decimation) the WORLD voice
changer is fitted on the reference folders (30 files per speaker) and
converts the held-out utterances; the table gives ``voiceconv evaluate``'s
metrics and the real-time factor of ``change_voice`` alone (seconds of
processing per second of audio, one thread), with the ratio to the first
setting. Default pairs: VCC2016 dev SF1 -> TM1 (ASR agreement) and
Kathleen -> rms eval (WER against the prompts; run
``recipes/kathleen_rms/prepare.py`` first).

    .venv/bin/python benchmarks/world_f0.py [--pairs vcc kathleen] [--json out.json]

Run it alone: other processes on the same cores distort the timings.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from voiceconv.audio import world
from voiceconv.evaluate.harness import EvaluationRequest, _load_folder, evaluate
from voiceconv.evaluate.report import summarize

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
KATHLEEN = REPO / "runs" / "data" / "kathleen_rms"
PAIRS = {
    "vcc": dict(source_dir=SHARED / "vcc2016/dev/SF1", target_ref_dir=SHARED / "vcc2016/train/TM1",
                source_ref_dir=SHARED / "vcc2016/train/SF1", parallel_dir=SHARED / "vcc2016/dev/TM1"),
    "kathleen": dict(source_dir=KATHLEEN / "kathleen/eval", target_ref_dir=KATHLEEN / "rms/train",
                     source_ref_dir=KATHLEEN / "kathleen/train", parallel_dir=KATHLEEN / "rms/eval",
                     transcripts=KATHLEEN / "transcripts.tsv"),
}
SETTINGS = {
    "harvest, 5 ms": world.WorldSettings("harvest", 5.0),
    "dio, 5 ms": world.WorldSettings("dio", 5.0),
    "dio, 10 ms": world.WorldSettings("dio", 10.0),
    "dio speed 2, 10 ms": world.WorldSettings("dio", 10.0, dio_speed=2),
    # issue 22: CheapTrick / D4C at coarser frames than F0's, DIO without StoneMask
    "dio 10 ms, CheapTrick + D4C 16 ms": world.WorldSettings(envelope_period_ms=16.0, aperiodicity_period_ms=16.0),
    "dio 10 ms, CheapTrick 20 ms, D4C 40 ms": world.WorldSettings(envelope_period_ms=20.0,
                                                                  aperiodicity_period_ms=40.0),
    "dio 10 ms, no StoneMask": world.WorldSettings(stonemask=False),
    "dio speed 2, CheapTrick 20 ms, D4C 40 ms": world.WorldSettings(dio_speed=2, envelope_period_ms=20.0,
                                                                    aperiodicity_period_ms=40.0),
    "dio speed 2, CheapTrick + D4C 16 ms": world.WorldSettings(dio_speed=2, envelope_period_ms=16.0,
                                                               aperiodicity_period_ms=16.0),
    "dio speed 2, CheapTrick + D4C 20 ms": world.WorldSettings(dio_speed=2, envelope_period_ms=20.0,
                                                               aperiodicity_period_ms=20.0),
    "dio speed 2, CheapTrick 16 ms, D4C 32 ms": world.WorldSettings(dio_speed=2, envelope_period_ms=16.0,
                                                                    aperiodicity_period_ms=32.0),
    "dio speed 3, CheapTrick + D4C 16 ms": world.WorldSettings(dio_speed=3, envelope_period_ms=16.0,
                                                               aperiodicity_period_ms=16.0),
    "dio speed 2, D4C 20 ms": world.WorldSettings(dio_speed=2, aperiodicity_period_ms=20.0),
    "dio speed 2, D4C 32 ms": world.WorldSettings(dio_speed=2, aperiodicity_period_ms=32.0),
}


def fitted_alignment(pair: dict, settings: world.WorldSettings) -> world.Alignment:
    """The voice changer fitted on up to 30 reference files per speaker, analysed with ``settings``."""
    skipped = type("Sink", (), {"skipped": []})()
    waves = {}
    for role in ("source_ref_dir", "target_ref_dir"):
        found = list(_load_folder(pair[role], role, skipped).values())
        waves[role] = [found[i] for i in world.spread_picks(len(found))]
    return world.fit_alignment(waves["source_ref_dir"], waves["target_ref_dir"], 16000, settings=settings)


def measure(pair: dict, settings: world.WorldSettings) -> dict:
    alignment = fitted_alignment(pair, settings)
    spent, audio = [0.0], [0.0]

    def convert(wav: np.ndarray, rate: int) -> np.ndarray:
        start = time.perf_counter()
        out = world.change_voice(wav, rate, alignment)
        spent[0] += time.perf_counter() - start
        audio[0] += len(wav) / rate
        return out

    result = evaluate(EvaluationRequest(**pair, max_reference_files=30), convert=convert)
    summary = summarize(result.systems["converted"])
    return {"warp": alignment.warp, "rtf": spent[0] / audio[0], "success": summary["success_rate"],
            **{key: summary[key]["mean"] for key in ("sim_target", "mcd_db", "wer", "dnsmos_ovrl") if key in summary}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", nargs="+", choices=list(PAIRS), default=list(PAIRS))
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS),
                        help="the first is the baseline of the ratio column")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = {}
    for pair in args.pairs:
        print(f"\n## {pair}\n\n| setting | warp | success | sim target | MCD dB | WER | DNSMOS | RTF | vs first |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name in args.settings:
            settings = SETTINGS[name]
            row = rows.setdefault(pair, {})[name] = {"settings": asdict(settings), **measure(PAIRS[pair], settings)}
            first = next(iter(rows[pair].values()))
            print(f"| {name} | {row['warp']:.2f} | {100 * row['success']:.0f}% | {row['sim_target']:.3f} | "
                  f"{row['mcd_db']:.2f} | {row['wer']:.2f} | {row['dnsmos_ovrl']:.2f} | {row['rtf']:.4f} | "
                  f"{row['rtf'] / first['rtf']:.2f}x |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
