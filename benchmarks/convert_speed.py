"""End-to-end conversion speed and memory: load, convert, vocode, write.

Each measurement runs in a fresh process (so peak memory is its own): the
real-time factor (wall time / audio duration, lower is better) of
``Converter.convert_file`` on a 10-second and a 10-minute input made of real
speech, the peak resident memory of each, and the throughput of a batch
folder with ``voiceconv convert --jobs 1`` against ``--jobs 2`` in the same run.

    .venv/bin/python benchmarks/convert_speed.py [--model samples/models/kathleen_rms.safetensors]
        [--long-seconds 600] [--batch-files 12] [--json out.json] [--baseline-model OLD.safetensors]

``--baseline-model`` also converts the long input with another model file in the
same run (e.g. the previous default: ``git show REV:samples/models/kathleen_rms.safetensors``)
and prints the ratio of the two real-time factors.

``--compare MODEL ...`` only converts the long input, with ``--model`` and each
MODEL in turn, ``--repeats`` rounds in alternation, and prints medians: wall
RTF, CPU seconds per audio second (all threads; what the work costs whatever
else shares the cores) and their ratios to ``--model``. With
``benchmarks/world_settings_model.py`` this times a model against a copy of
itself that analyses with other WORLD settings:

    .venv/bin/python benchmarks/world_settings_model.py samples/models/kathleen_rms.safetensors /tmp/fast.safetensors \
        --dio-speed 2 --aperiodicity-ms 20
    .venv/bin/python benchmarks/convert_speed.py --long-seconds 120 --compare /tmp/fast.safetensors --repeats 3

Run it alone: another torch process on the same cores distorts every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "samples" / "models" / "kathleen_rms.safetensors"
INPUT_RATE = 44100  # what a typical recording arrives at; conversion resamples it


def speech_file(path: Path, seconds: float) -> Path:
    """Write ``seconds`` of real speech (the bundled clips, repeated) as a 44.1 kHz WAV."""
    from voiceconv.audio.io import audio_files, load_audio

    clips = np.concatenate([load_audio(p, INPUT_RATE) for p in audio_files(REPO / "samples" / "audio")])
    repeats = int(np.ceil(seconds * INPUT_RATE / len(clips)))
    sf.write(path, np.tile(clips, repeats)[: int(seconds * INPUT_RATE)], INPUT_RATE)
    return path


def measure_one_file(model: Path, source: Path, destination: Path) -> dict:
    """In this process: model load time, conversion wall time and peak RSS for one file."""
    start = time.perf_counter()
    from voiceconv.convert import Converter

    converter = Converter(model)
    loaded = time.perf_counter()
    result = converter.convert_file(source, destination)
    done = time.perf_counter()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"audio_seconds": result.seconds, "load_seconds": loaded - start, "convert_seconds": done - loaded,
            "rtf": (done - start) / result.seconds, "rtf_without_load": (done - loaded) / result.seconds,
            "cpu_per_audio_second": (usage.ru_utime + usage.ru_stime) / result.seconds,
            "peak_rss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def in_fresh_process(model: Path, source: Path, destination: Path) -> dict:
    code = ("import json, sys; sys.path.insert(0, %r); from convert_speed import measure_one_file; "
            "from pathlib import Path; print(json.dumps(measure_one_file(*map(Path, sys.argv[1:]))))"
            % str(Path(__file__).parent))
    out = subprocess.run([sys.executable, "-c", code, model, source, destination], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def batch_throughput(model: Path, folder: Path, out: Path, jobs: int) -> dict:
    """Wall time of ``voiceconv convert --jobs N`` over a folder (model loading included)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "voiceconv", "convert", "--model", model, folder, "-o", out,
                    "--jobs", str(jobs)], check=True, capture_output=True)
    seconds = time.perf_counter() - start
    audio = sum(sf.info(p).duration for p in folder.iterdir())
    return {"jobs": jobs, "files": len(list(folder.iterdir())), "wall_seconds": seconds,
            "audio_seconds_per_second": audio / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--long-seconds", type=float, default=600.0)
    parser.add_argument("--batch-files", type=int, default=12)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--baseline-model", type=Path, help="compare the long input's RTF with this model's")
    parser.add_argument("--compare", type=Path, nargs="+", help="only the long input: --model against these, "
                                                                  "alternated")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if args.compare:
        return compare([args.model, *args.compare], args.long_seconds, args.repeats, args.json)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = {"10 s": speech_file(tmp / "short.wav", 10.0),
                 f"{args.long_seconds / 60:g} min": speech_file(tmp / "long.wav", args.long_seconds)}
        singles = {label: in_fresh_process(args.model, path, tmp / f"out_{path.name}") for label, path in files.items()}
        batch_dir = tmp / "batch"
        batch_dir.mkdir()
        for i in range(args.batch_files):
            speech_file(batch_dir / f"clip{i:02d}.wav", 10.0)
        batches = [batch_throughput(args.model, batch_dir, tmp / f"batch_out{jobs}", jobs) for jobs in (1, 2)]
        baseline = None
        if args.baseline_model:
            long_input = files[f"{args.long_seconds / 60:g} min"]
            baseline = in_fresh_process(args.baseline_model, long_input, tmp / "out_baseline.wav")
    report(singles, batches, args.json)
    if baseline is not None:
        model = list(singles.values())[-1]
        print(f"\nlong input, {args.model.name} against {args.baseline_model}: RTF {model['rtf']:.4f} vs "
              f"{baseline['rtf']:.4f} end to end ({model['rtf'] / baseline['rtf']:.2f}x), "
              f"{model['rtf_without_load']:.4f} vs {baseline['rtf_without_load']:.4f} without the model load "
              f"({model['rtf_without_load'] / baseline['rtf_without_load']:.2f}x)")


def compare(models: list[Path], seconds: float, repeats: int, json_path: Path | None) -> None:
    """The long input converted by each model in turn, ``repeats`` rounds; medians and ratios to the first."""
    with tempfile.TemporaryDirectory() as tmp:
        source = speech_file(Path(tmp) / "long.wav", seconds)
        runs = {model: [] for model in models}
        for _ in range(repeats):
            for model in models:
                runs[model].append(in_fresh_process(model, source, Path(tmp) / "out.wav"))
    medians = {model: {key: float(np.median([r[key] for r in rows])) for key in rows[0]} for model, rows in runs.items()}
    first = medians[models[0]]
    print(f"{seconds:g} s of speech, {os.cpu_count()} CPU cores, medians of {repeats} alternated rounds\n")
    print("| model | RTF end to end | RTF without load | CPU s per audio s | RTF vs first | CPU vs first |")
    print("|---|---|---|---|---|---|")
    for model, row in medians.items():
        print(f"| {model.name} | {row['rtf']:.4f} | {row['rtf_without_load']:.4f} | {row['cpu_per_audio_second']:.4f} "
              f"| {row['rtf'] / first['rtf']:.2f}x | {row['cpu_per_audio_second'] / first['cpu_per_audio_second']:.2f}x |")
    if json_path:
        json_path.write_text(json.dumps({str(m): rows for m, rows in runs.items()}, indent=2))


def report(singles: dict, batches: list[dict], json_path: Path | None) -> None:
    import torch

    print(f"torch {torch.__version__}, {os.cpu_count()} CPU cores, input {INPUT_RATE} Hz WAV -> 16 kHz WAV\n")
    print("| input | RTF end to end | RTF without model load | model load s | peak RSS MiB |")
    print("|---|---|---|---|---|")
    for label, row in singles.items():
        print(f"| {label} | {row['rtf']:.4f} | {row['rtf_without_load']:.4f} | {row['load_seconds']:.2f} "
              f"| {row['peak_rss_MiB']:.0f} |")
    short, long = singles.values()
    print(f"\npeak memory, long / short: {long['peak_rss_MiB'] / short['peak_rss_MiB']:.2f}x")
    print("\n| batch | files | wall s | audio s per s | vs --jobs 1 |")
    print("|---|---|---|---|---|")
    for row in batches:
        ratio = row["audio_seconds_per_second"] / batches[0]["audio_seconds_per_second"]
        print(f"| --jobs {row['jobs']} | {row['files']} | {row['wall_seconds']:.1f} | "
              f"{row['audio_seconds_per_second']:.1f} | {ratio:.2f}x |")
    if json_path:
        json_path.write_text(json.dumps({"single_files": singles, "batch": batches}, indent=2))


if __name__ == "__main__":
    main()
