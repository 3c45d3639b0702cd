"""End-to-end conversion speed and memory: load, convert, vocode, write.

Each measurement runs in a fresh process (so peak memory is its own): the
real-time factor (wall time / audio duration, lower is better) of
``Converter.convert_file`` on a 10-second and a 10-minute input made of real
speech, the peak resident memory of each, and the throughput of a batch
folder of ten-second files (files and audio seconds per second, RTF) with
``voiceconv convert --jobs 1`` against ``--jobs 2`` in the same run, on each
``--batch-device`` (on a GPU machine: ``--batch-files 200 --batch-device cpu
cuda --jobs 4 8``).

    .venv/bin/python benchmarks/convert_speed.py [--model samples/models/kathleen_rms.safetensors]
        [--long-seconds 600] [--batch-files 12] [--batch-device cpu cuda] [--jobs 2]
        [--json out.json] [--baseline-model OLD.safetensors]

``--baseline-model`` also converts the long input with another model file in the
same run (e.g. the previous default: ``git show REV:samples/models/kathleen_rms.safetensors``)
and prints the ratio of the two real-time factors.

``--compare MODEL ...`` only converts the long input, with ``--model`` and each
MODEL in turn, ``--repeats`` rounds in alternation, and prints medians: wall
RTF, CPU seconds per audio second (all threads; what the work costs whatever
else shares the cores), peak memory and their ratios to ``--model``. A MODEL
written ``@REV`` is another pipeline altogether: the code and the ``--model``
file of git revision REV (extracted with ``git archive``), e.g. the code an
issue started from against today's::

    .venv/bin/python benchmarks/convert_speed.py --long-seconds 600 --compare @43ec0b9 --repeats 3 \
        --quality kathleen_rms

``--quality PAIR`` puts quality beside the speed: each pipeline converts the
first ``--sentences`` test sentences of a development pair
(``benchmarks/dev_pairs.py``, a2b) and today's ``voiceconv evaluate`` scores
them all (similarity, MCD, WER, DNSMOS), so that no speed-up is bought with
quality unseen. With
``benchmarks/world_settings_model.py`` this times a model against a copy of
itself that analyses with other WORLD settings:

    .venv/bin/python benchmarks/world_settings_model.py samples/models/kathleen_rms.safetensors /tmp/fast.safetensors \
        --dio-speed 2 --aperiodicity-ms 20
    .venv/bin/python benchmarks/convert_speed.py --long-seconds 120 --compare /tmp/fast.safetensors --repeats 3

Run it alone: another torch process on the same cores distorts every figure.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from dev_pairs import PAIRS, cell, evaluate, first_sentences, pair_folders  # noqa: E402
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


def convert_sentences(model: Path, *paths: Path) -> dict:
    """In this process: ``paths`` (sources, then a folder) each source converted a2b into the folder (same stems,
    WAV at the model's rate)."""
    from voiceconv.convert import Converter

    *sources, out = paths
    converter = Converter(model)
    out.mkdir(parents=True, exist_ok=True)
    for source in sources:
        converter.convert_file(source, out / f"{source.stem}.wav")
    return {"converted": len(sources)}


@dataclass(frozen=True)
class Pipeline:
    """What converts: a model file, run by the code under ``code`` (today's: this checkout)."""

    label: str
    model: Path
    code: Path = REPO


def in_fresh_process(pipeline: Pipeline, function: str, *paths: Path) -> dict:
    """``function`` of this module run on ``paths`` in a fresh process that imports ``pipeline.code``'s voiceconv."""
    code = ("import json, sys; sys.path.insert(0, %r); import voiceconv, convert_speed; from pathlib import Path; "
            "result = getattr(convert_speed, sys.argv[1])(*map(Path, sys.argv[2:])); "
            "result['package'] = voiceconv.__file__; print(json.dumps(result))" % str(Path(__file__).parent))
    env = {**os.environ, "PYTHONPATH": str(pipeline.code)}
    with tempfile.TemporaryDirectory() as cwd:  # no checkout on sys.path[0] but the pipeline's
        out = subprocess.run([sys.executable, "-c", code, function, *map(str, paths)], capture_output=True,
                             text=True, env=env, cwd=cwd)
    if out.returncode:
        raise SystemExit(f"{pipeline.label}: {function} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if Path(result.pop("package")).resolve().parent != (pipeline.code / "voiceconv").resolve():
        raise SystemExit(f"{pipeline.label}: imported voiceconv from outside {pipeline.code}")
    return result


def measure(pipeline: Pipeline, source: Path, destination: Path) -> dict:
    """:func:`measure_one_file` of ``pipeline`` in a fresh process (so peak memory is its own)."""
    return in_fresh_process(pipeline, "measure_one_file", pipeline.model, source, destination)


def pipelines(model: Path, others: list[str], folder: Path) -> list[Pipeline]:
    """``model`` with today's code, then each of ``others``: a model file, or ``@REV`` (the code and ``model``
    file of git revision REV, extracted under ``folder``)."""
    found = [Pipeline(f"{model.name} (today's code)", model)]
    for other in others:
        if not other.startswith("@"):
            found.append(Pipeline(Path(other).name, Path(other)))
            continue
        revision, root, model_in_repo = other[1:], folder / other[1:], model.resolve().relative_to(REPO)
        root.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", revision, "voiceconv", str(model_in_repo)],
                                 check=True, capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(root, filter="data")
        found.append(Pipeline(f"code and model of {revision}", root / model_in_repo, root))
    return found


def batch_throughput(model: Path, folder: Path, out: Path, jobs: int, device: str = "cpu") -> dict:
    """Wall time of ``voiceconv convert --jobs N --device D`` over a folder (model loading included)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "voiceconv", "convert", "--model", model, folder, "-o", out,
                    "--jobs", str(jobs), "--device", device], check=True, capture_output=True)
    seconds = time.perf_counter() - start
    files = list(folder.iterdir())
    audio = sum(sf.info(p).duration for p in files)
    return {"device": device, "jobs": jobs, "files": len(files), "wall_seconds": seconds,
            "audio_seconds_per_second": audio / seconds, "files_per_second": len(files) / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--long-seconds", type=float, default=600.0)
    parser.add_argument("--batch-files", type=int, default=12)
    parser.add_argument("--batch-device", nargs="+", default=["cpu"], metavar="DEVICE",
                        help="convert the batch folder on each of these (cpu, cuda) in the same run")
    parser.add_argument("--jobs", type=int, nargs="+", default=[2], metavar="N",
                        help="worker processes to time the batch folder with, beside --jobs 1")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--baseline-model", type=Path, help="compare the long input's RTF with this model's")
    parser.add_argument("--compare", nargs="+", metavar="MODEL|@REV",
                        help="only the long input: --model against these model files, or against the code and "
                             "--model of git revision REV, alternated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quality", choices=sorted(PAIRS), help="with --compare: score each pipeline's conversions "
                                                                 "of this development pair's test sentences")
    parser.add_argument("--sentences", type=int, default=10, help="test sentences --quality converts")
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if args.compare:
        with tempfile.TemporaryDirectory() as tmp:
            compared = pipelines(args.model, args.compare, Path(tmp))
            rows = compare(compared, args.long_seconds, args.repeats, args.json)
            quality = score(compared, args.quality, args.sentences, Path(tmp) / "quality") if args.quality else {}
        note = f"; quality: the first {args.sentences} {args.quality} test sentences, a2b" if args.quality else ""
        return print_comparison(rows, quality, f"{args.long_seconds:g} s of speech, {os.cpu_count()} CPU cores, "
                                               f"medians of {args.repeats} alternated rounds{note}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = {"10 s": speech_file(tmp / "short.wav", 10.0),
                 f"{args.long_seconds / 60:g} min": speech_file(tmp / "long.wav", args.long_seconds)}
        today = Pipeline(args.model.name, args.model)
        singles = {label: measure(today, path, tmp / f"out_{path.name}") for label, path in files.items()}
        batch_dir = tmp / "batch"
        batch_dir.mkdir()
        for i in range(args.batch_files):
            speech_file(batch_dir / f"clip{i:02d}.wav", 10.0)
        batches = [batch_throughput(args.model, batch_dir, tmp / f"batch_out_{device}{jobs}", jobs, device)
                   for device in args.batch_device for jobs in sorted({1, *args.jobs})]
        baseline = None
        if args.baseline_model:
            long_input = files[f"{args.long_seconds / 60:g} min"]
            baseline = measure(Pipeline(args.baseline_model.name, args.baseline_model), long_input,
                               tmp / "out_baseline.wav")
    report(singles, batches, args.json)
    if baseline is not None:
        model = list(singles.values())[-1]
        print(f"\nlong input, {args.model.name} against {args.baseline_model}: RTF {model['rtf']:.4f} vs "
              f"{baseline['rtf']:.4f} end to end ({model['rtf'] / baseline['rtf']:.2f}x), "
              f"{model['rtf_without_load']:.4f} vs {baseline['rtf_without_load']:.4f} without the model load "
              f"({model['rtf_without_load'] / baseline['rtf_without_load']:.2f}x)")


def compare(compared: list[Pipeline], seconds: float, repeats: int, json_path: Path | None) -> dict[str, dict]:
    """The long input converted by each pipeline in turn, ``repeats`` rounds; each figure's median by label."""
    with tempfile.TemporaryDirectory() as tmp:
        source = speech_file(Path(tmp) / "long.wav", seconds)
        runs = {pipeline.label: [] for pipeline in compared}
        for _ in range(repeats):
            for pipeline in compared:
                runs[pipeline.label].append(measure(pipeline, source, Path(tmp) / "out.wav"))
    if json_path:
        json_path.write_text(json.dumps(runs, indent=2))
    return {label: {key: float(np.median([r[key] for r in rows])) for key in rows[0]} for label, rows in runs.items()}


def score(compared: list[Pipeline], pair: str, sentences: int, folder: Path) -> dict[str, dict]:
    """Each pipeline's conversions of ``pair``'s first ``sentences`` test sentences, scored by today's ``voiceconv
    evaluate``: its summary by label."""
    speakers = first_sentences(pair, sentences, folder)
    sources = sorted(pair_folders(pair, "a2b", speakers)["source"].iterdir())
    summaries = {}
    for index, pipeline in enumerate(compared):
        converted = folder / f"converted{index}"
        in_fresh_process(pipeline, "convert_sentences", pipeline.model, *sources, converted)
        summaries[pipeline.label] = evaluate(pair, ["--converted", str(converted)], folder / f"scores{index}",
                                             "a2b", speakers)["converted"]
    return summaries


def print_comparison(rows: dict[str, dict], quality: dict[str, dict], heading: str) -> None:
    """One table: each pipeline's speed medians and ratios to the first, and its quality scores when measured."""
    first = next(iter(rows.values()))
    scores = [("MCD dB", "mcd_db", "{:.2f}"), ("WER", "wer", "{:.3f}"), ("DNSMOS", "dnsmos_ovrl", "{:.2f}"),
              ("sim target", "sim_target", "{:.3f}")] if quality else []
    print(heading + "\n")
    titles = ["pipeline", "RTF end to end", "RTF without load", "CPU s per audio s", "peak MiB", "time vs first",
              "CPU vs first", *(title for title, _, _ in scores)]
    print("| " + " | ".join(titles) + " |\n" + "|---" * len(titles) + "|")
    for label, row in rows.items():
        cells = [label, f"{row['rtf']:.4f}", f"{row['rtf_without_load']:.4f}", f"{row['cpu_per_audio_second']:.4f}",
                 f"{row['peak_rss_MiB']:.0f}", f"{row['rtf'] / first['rtf']:.2f}x",
                 f"{row['cpu_per_audio_second'] / first['cpu_per_audio_second']:.2f}x",
                 *(cell(quality[label], key, style) for _, key, style in scores)]
        print("| " + " | ".join(cells) + " |")


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
    print("\n| batch | files | wall s | files per s | audio s per s (x real time) | RTF | vs first |")
    print("|---|---|---|---|---|---|---|")
    for row in batches:
        ratio = row["audio_seconds_per_second"] / batches[0]["audio_seconds_per_second"]
        print(f"| --device {row['device']} --jobs {row['jobs']} | {row['files']} | {row['wall_seconds']:.1f} | "
              f"{row['files_per_second']:.2f} | {row['audio_seconds_per_second']:.1f} | "
              f"{1 / row['audio_seconds_per_second']:.4f} | {ratio:.2f}x |")
    if json_path:
        json_path.write_text(json.dumps({"single_files": singles, "batch": batches}, indent=2))


if __name__ == "__main__":
    main()
