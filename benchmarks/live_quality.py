"""What live conversion's short windows cost in quality: the dev sentences converted in each windowing, scored.

Converts a development pair's test sentences (those of ``benchmarks/dev_pairs.py``) with one model in each
windowing given, exactly as a stream cut that way would (``Converter.convert(..., windowing=W)`` equals the
stream bit for bit), and scores every folder with ``voiceconv evaluate --converted`` (similarity, MCD, WER,
DNSMOS, F0); the 10-s file windowing is the baseline in the same table::

    .venv/bin/python benchmarks/live_quality.py kathleen_rms --windowing file live 0.128,0.064,0.048,0.2,0.08 \\
        -o runs/eval/live_quality

Windowings as in ``benchmarks/live_latency.py``: ``file``, ``live``, ``CHUNK,CHUNK_CONTEXT[,LEAD_IN]`` (each WORLD chunk
a window), ``live:CHUNK,CHUNK_CONTEXT[,LEAD_IN]`` (``LIVE_WINDOWING`` with those changed) or
``WINDOW,CONTEXT,CROSSFADE,CHUNK,CHUNK_CONTEXT`` seconds, each optionally ``/N`` for N Griffin-Lim iterations
(``live/8``) and ``@soxr`` / ``@sinc`` for the input's resampler; ``--input-rate 48000`` converts every sentence
from 48 kHz, as a browser's microphone delivers it. The table goes to ``OUT/table.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dev_pairs import PAIRS, evaluate, pair_folders, with_wide, write_table  # noqa: E402
from live_latency import DEFAULT_MODEL, parse_windowing  # noqa: E402


def convert_folder(converter, source: Path, out: Path, windowing, input_rate: int | None = None,
                   direction: str = "a2b") -> None:
    """Every audio file of ``source`` converted in ``direction`` and ``windowing`` into ``out`` (same names, FLAC); with
    ``input_rate``, each is first brought to that rate (soxr, as a microphone would deliver it) and converted
    from there, through the windowing's own resampler."""
    import soxr

    from voiceconv.audio.io import audio_files, load_audio, save_audio

    out.mkdir(parents=True, exist_ok=True)
    rate = converter.features.sample_rate
    for path in audio_files(source):
        wav, wav_rate = load_audio(path, rate), rate
        if input_rate is not None and input_rate != rate:
            wav, wav_rate = soxr.resample(wav, rate, input_rate, quality="VHQ").astype(np.float32), input_rate
        converted = converter.convert(wav, wav_rate, direction, windowing=windowing)
        save_audio(out / f"{path.stem}.flac", converted, rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pair", choices=sorted(PAIRS))
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--windowing", nargs="+", default=["file", "live"])
    parser.add_argument("--input-rate", type=int, help="convert from this sample rate (a browser microphone: 48000)")
    parser.add_argument("--direction", choices=("a2b", "b2a"), default="a2b",
                        help="b2a converts the pair's second speaker's test sentences to the first "
                             "(default %(default)s)")
    parser.add_argument("--wide", type=int, default=0, metavar="N",
                        help="Kathleen <-> rms: also test on N prompts per side that only the target side trained on")
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args()
    from voiceconv.convert import Converter

    converter = Converter(args.model)
    if args.wide and args.pair != "kathleen_rms":
        raise SystemExit("--wide adds the prompts the other side trained on: it needs kathleen_rms")
    speakers = with_wide(args.wide, args.out / "sentences", args.direction) if args.wide else PAIRS[args.pair]
    rows = {}
    for index, text in enumerate(args.windowing):
        folder = args.out / f"windowing{index}"
        source = pair_folders(args.pair, args.direction, speakers)["source"]
        convert_folder(converter, source, folder / "converted", parse_windowing(text), args.input_rate, args.direction)
        rows[text] = evaluate(args.pair, ["--converted", str(folder / "converted")], folder / "report",
                              args.direction, speakers)["converted"]
    write_table(rows, args.out / "table.md", "windowing")


if __name__ == "__main__":
    main()
