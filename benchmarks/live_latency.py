"""Live conversion: how long the converted voice lags behind the speaker, and what it costs, on 2 CPU cores.

Feeds a real recording (the bundled clips of ``samples/audio``, back to back,
at the 48 kHz a browser microphone delivers) to ``Converter.open_stream`` in
blocks of ``--block-ms``, each pushed when its last sample would have been
captured (``--pace realtime``; ``fast`` pushes them back to back), with the
shipped default model, and reports per block size:

* **held back**: the delay the windows and WORLD chunks add by themselves
  (for each output sample, how much later in the input it was returned),
  from sample counts only, so no machine noise;
* **end to end**: for each output sample, the time from its capture to its
  return by ``push`` (the block filling up, the samples held back, compute,
  and waiting behind earlier blocks), median / 95th percentile / max;
  **block to audio**: from a block's arrival to the return of its last sample;
  and **heard**: the delay of a player that plays the returned audio without
  gaps (as the page's does), which every sample inherits from the latest one
  so far (the running maximum of the end-to-end delay);
* **compute RTF**: seconds inside ``push``/``finish`` per second of audio, and **CPU RTF**: the process's CPU
  seconds spent there per second of audio (what the work costs whatever else shares the cores).

What holds the delay is printed from the windowing itself: the most a sample
waits for its conversion window (window, right context, half a cross-fade) and
for its WORLD chunk to be cut (chunk, WORLD context, half the chunks' fade).
``--world default`` analyses with :data:`voiceconv.audio.world.DEFAULT_SETTINGS`
instead of the model file's own (``Converter(world=...)``).

Several windowings (``--windowing live 0.128,0.064,0.048,0.2,0.08 ...``) are
measured taking turns, ``--repeats`` times each, and each figure is the median.
The baseline, measured in the same run on the same audio: ``Converter.convert``
of the whole recording as a file (10-s windows), and, per windowing, the file
cut in those windows (what short windows cost without streaming) and how far
its output is from the 10-s-window file conversion (mean log-mel difference in
dB).

    .venv/bin/python benchmarks/live_latency.py [--seconds 20] [--block-ms 100 200] [--pace realtime|fast]
        [--windowing live WINDOW,CONTEXT,CROSSFADE,CHUNK,CHUNK_CONTEXT CHUNK,CHUNK_CONTEXT[,LEAD_IN][/ITERATIONS] ...]
        [--repeats 3]
        [--threads 2] [--model samples/models/kathleen_rms.safetensors] [--quality kathleen_rms] [--json out.json]

``--quality PAIR`` puts quality beside the delay: each windowing converts the first ``--sentences`` test
sentences of a development pair (``benchmarks/dev_pairs.py``) from 48 kHz, as the stream would, and ``voiceconv
evaluate`` scores them (MCD, WER, DNSMOS columns), so that no delay is bought with quality unseen.

Run it alone: another process on the same cores distorts every timing (the
held-back figures never change).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dev_pairs import cell  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "samples" / "models" / "kathleen_rms.safetensors"
MICROPHONE_RATE = 48000  # what Chromium's getUserMedia delivers


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--seconds", type=float, default=20.0, help="length of the recording fed to the stream")
    p.add_argument("--block-ms", type=float, nargs="+", default=[100.0, 200.0], help="microphone block sizes")
    p.add_argument("--pace", choices=["realtime", "fast"], default="realtime")
    p.add_argument("--threads", type=int, default=2, help="torch threads (the target is 2 CPU cores)")
    p.add_argument("--direction", default="a2b")
    p.add_argument("--pitch", default="auto")
    p.add_argument("--windowing", nargs="+", default=["live"],
                   help="windowings to compare, taking turns: live (LIVE_WINDOWING), file, "
                        "CHUNK,CHUNK_CONTEXT[,LEAD_IN] (each WORLD chunk a window; LEAD_IN: WORLD's input before it), "
                        "live:CHUNK,CHUNK_CONTEXT[,LEAD_IN] (LIVE_WINDOWING with those changed) "
                        "or WINDOW,CONTEXT,CROSSFADE,CHUNK,CHUNK_CONTEXT seconds; /N after any: N Griffin-Lim "
                        "iterations per window; @soxr or @sinc after that: the input's resampler")
    p.add_argument("--repeats", type=int, default=1, help="runs of each windowing (figures are their medians)")
    p.add_argument("--world", choices=["model", "default"], default="model",
                   help="WORLD analysis: the model file's own, or DEFAULT_SETTINGS (what new models train with)")
    p.add_argument("--quality", metavar="PAIR",
                   help="also score each windowing's conversions of this development pair's first --sentences test "
                        "sentences (benchmarks/dev_pairs.py) from 48 kHz: MCD, WER, DNSMOS")
    p.add_argument("--sentences", type=int, default=10, help="test sentences --quality converts")
    p.add_argument("--json", type=Path, help="also write the figures here")
    return p.parse_args(argv)


@dataclass
class StreamRun:
    """What one stream did: for each output sample, when it was returned and how much input had come in."""

    returned_at: np.ndarray  # [out samples] seconds since the start of capture
    input_seen: np.ndarray  # [out samples] input samples (at the output's rate) pushed by then
    block_ends: np.ndarray  # [blocks] last input sample of each block, at the output's rate
    block_arrivals: np.ndarray  # [blocks] seconds since the start of capture
    compute_seconds: float
    cpu_seconds: float
    output: np.ndarray  # [out samples]


def recording(seconds: float, rate: int) -> np.ndarray:
    """``seconds`` of real speech: the bundled clips back to back, repeated."""
    from voiceconv.audio.io import audio_files, load_audio

    clips = np.concatenate([load_audio(p, rate) for p in audio_files(REPO / "samples" / "audio")])
    return np.tile(clips, int(np.ceil(seconds * rate / len(clips))))[: int(seconds * rate)]


def run_stream(converter, wav: np.ndarray, rate: int, block: int, realtime: bool, direction: str, pitch: str,
               windowing) -> StreamRun:
    """Push ``wav`` in blocks of ``block`` samples, at capture pace when ``realtime``."""
    stream = converter.open_stream(rate, direction, pitch, windowing)
    scale = converter.features.sample_rate / rate  # input samples -> output samples
    outputs, returned_at, input_seen, arrivals, ends, compute, cpu = [], [], [], [], [], 0.0, 0.0
    start = time.perf_counter()
    for offset in range(0, len(wav), block):
        piece = wav[offset : offset + block]
        arrival = (offset + len(piece)) / rate  # its last sample is captured then
        if realtime:
            time.sleep(max(0.0, arrival - (time.perf_counter() - start)))
        began, began_cpu = time.perf_counter(), time.process_time()
        out = stream.push(piece)
        compute += time.perf_counter() - began
        cpu += time.process_time() - began_cpu
        outputs.append(out)
        returned_at.append(np.full(len(out), time.perf_counter() - start))
        input_seen.append(np.full(len(out), (offset + len(piece)) * scale))
        arrivals.append(arrival if realtime else began - start)
        ends.append((offset + len(piece)) * scale - 1)
    began, began_cpu = time.perf_counter(), time.process_time()
    out = stream.finish()
    compute += time.perf_counter() - began
    cpu += time.process_time() - began_cpu
    outputs.append(out)
    returned_at.append(np.full(len(out), time.perf_counter() - start))
    input_seen.append(np.full(len(out), len(wav) * scale))
    return StreamRun(np.concatenate(returned_at), np.concatenate(input_seen), np.array(ends), np.array(arrivals),
                     compute, cpu, np.concatenate(outputs))


def stream_figures(run: StreamRun, out_rate: int, audio_seconds: float, realtime: bool) -> dict:
    """Delays (seconds) and real-time factor of one run; end-to-end figures only at capture pace."""
    n = min(len(run.output), int(audio_seconds * out_rate))
    position = np.arange(n)  # output sample i is the input's sample i (same rate, same length)
    held_back = (run.input_seen[:n] - position) / out_rate
    figures = {"held_back_median": float(np.median(held_back)), "held_back_max": float(held_back.max()),
               "compute_rtf": run.compute_seconds / audio_seconds, "cpu_rtf": run.cpu_seconds / audio_seconds}
    if realtime:
        end_to_end = run.returned_at[:n] - position / out_rate  # captured at position / rate
        last_sample = np.minimum(run.block_ends.astype(int), n - 1)
        block_to_audio = run.returned_at[last_sample] - run.block_arrivals
        figures.update({f"end_to_end_{name}": float(value) for name, value in percentiles(end_to_end).items()})
        figures.update({f"block_to_audio_{name}": float(value) for name, value in percentiles(block_to_audio).items()})
        heard = np.maximum.accumulate(end_to_end)  # played gap-free: no sample plays before the ones before it
        figures.update({f"heard_{name}": float(value) for name, value in percentiles(heard).items()})
    return figures


def percentiles(values: np.ndarray) -> dict:
    return {"median": np.median(values), "p95": np.percentile(values, 95), "max": values.max()}


def file_rtf(converter, wav: np.ndarray, rate: int, direction: str, pitch: str, windowing) -> tuple[float, np.ndarray]:
    began = time.perf_counter()
    out = converter.convert(wav, rate, direction, pitch, windowing=windowing)
    return (time.perf_counter() - began) / (len(wav) / rate), out


def mel_distance_db(converter, a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two waveforms' log-mel images, in dB."""
    import torch

    n = min(len(a), len(b))
    with torch.inference_mode():
        images = [converter.encoder(torch.from_numpy(np.ascontiguousarray(x[:n]))) for x in (a, b)]
    span_db = converter.features.max_db - converter.features.min_db  # the image's [-1, 1]
    return float((images[0] - images[1]).abs().mean()) * span_db / 2


def parse_windowing(text: str):
    """``live`` (:data:`LIVE_WINDOWING`), ``file``, ``CHUNK,CHUNK_CONTEXT[,LEAD_IN]`` (each WORLD chunk its own window),
    ``live:CHUNK,CHUNK_CONTEXT[,LEAD_IN]`` (``LIVE_WINDOWING`` with those changed, everything else kept) or
    ``WINDOW,CONTEXT,CROSSFADE,CHUNK,CHUNK_CONTEXT`` seconds, each optionally followed by ``/N``: N Griffin-Lim
    iterations refining each window (``live/8``), and optionally by ``@soxr`` or ``@sinc``: the resampler that brings
    the microphone's rate to the model's (``live@soxr``)."""
    import dataclasses

    from voiceconv.convert import FILE_WINDOWING, LIVE_WINDOWING, Windowing

    text, _, resampler = text.partition("@")
    text, _, iterations = text.partition("/")
    named = {"live": LIVE_WINDOWING, "file": FILE_WINDOWING}
    if text in named:
        windowing = named[text]
    elif text.startswith("live:"):
        chunk, context, *lead_in = (float(x) for x in text[len("live:"):].split(","))
        windowing = dataclasses.replace(LIVE_WINDOWING, align_chunk=chunk, align_context=context,
                                        align_lead_in=lead_in[0] if lead_in else LIVE_WINDOWING.align_lead_in)
    else:
        values = [float(x) for x in text.split(",")]
        if len(values) in (2, 3):
            windowing = Windowing(window=None, align_chunk=values[0], align_context=values[1],
                                  align_lead_in=values[2] if len(values) == 3 else None)
        else:
            window, context, crossfade, chunk, chunk_context = values
            windowing = Windowing(window, context, crossfade, chunk, chunk_context)
    if resampler:
        windowing = dataclasses.replace(windowing, resampler=resampler)
    return dataclasses.replace(windowing, refine_iterations=int(iterations)) if iterations else windowing


def describe(windowing) -> str:
    """A windowing in one short line."""
    chunks = f"WORLD chunks {windowing.align_chunk} s + {windowing.align_context} s"
    if windowing.align_lead_in is not None:
        chunks += f", {windowing.align_lead_in} s lead-in"
    if windowing.refine_iterations is not None:
        chunks += f"; {windowing.refine_iterations} Griffin-Lim iterations"
    chunks += f"; {windowing.resampler} resampler"
    if windowing.chunks_are_windows:
        return f"each chunk a window: {chunks}"
    return f"windows {windowing.window} s + {windowing.context} s, fade {windowing.crossfade} s; {chunks}"


STREAM_COLUMNS = [("held back, median / max (ms)", "held_back", ("median", "max")),
                  ("end to end, median / p95 / max (ms)", "end_to_end", ("median", "p95", "max")),
                  ("block to audio, median / p95 (ms)", "block_to_audio", ("median", "p95")),
                  ("heard gap-free, median / max (ms)", "heard", ("median", "max"))]


def spread(figures: dict, name: str, statistics: tuple[str, ...]) -> str:
    """``"a / b / c"`` in milliseconds, or ``-`` where the run did not measure it (``--pace fast``)."""
    if f"{name}_{statistics[0]}" not in figures:
        return "-"
    return " / ".join(f"{1000 * figures[f'{name}_{statistic}']:.0f}" for statistic in statistics)


QUALITY_COLUMNS = [("MCD dB", "mcd_db", "{:.2f}"), ("WER", "wer", "{:.3f}"), ("DNSMOS", "dnsmos_ovrl", "{:.2f}")]


def markdown(results: dict) -> str:
    quality = [column for column in QUALITY_COLUMNS if "quality" in results["windowings"][0]]
    header = ["windowing", "block", *(title for title, _, _ in STREAM_COLUMNS), "compute RTF", "CPU RTF",
              "file RTF in these windows", "log-mel dB from the 10-s file", "stream = file",
              *(title for title, _, _ in quality)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for entry in results["windowings"]:
        for block_ms, figures in entry["streams"].items():
            cells = [entry["name"], f"{block_ms} ms", *(spread(figures, name, stats) for _, name, stats in STREAM_COLUMNS),
                     f"{figures['compute_rtf']:.3f}", f"{figures['cpu_rtf']:.3f}", f"{entry['file_rtf']:.3f}",
                     f"{entry['mel_distance_db']:.2f}", str(entry["stream_equals_file"]),
                     *(cell(entry["quality"], key, style) for _, key, style in quality)]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Baseline in the same run: file conversion with 10-s windows (`Converter.convert`), real-time factor "
              f"{results['file_rtf']:.3f}. Stream figures are medians over {results['repeats']} runs, the "
              "windowings taking turns."]
    return "\n".join(lines)


def quality(converter, pair: str, speakers: tuple, direction: str, windowing, folder: Path) -> dict:
    """``voiceconv evaluate``'s summary of ``pair``'s test sentences in ``speakers`` (as :func:`dev_pairs.first_sentences`
    gives them) converted from the microphone's rate in ``windowing`` (as the stream would: it equals the file
    conversion cut so), under ``folder``."""
    from dev_pairs import evaluate, pair_folders
    from live_quality import convert_folder

    source = pair_folders(pair, direction, speakers)["source"]
    convert_folder(converter, source, folder / "converted", windowing, MICROPHONE_RATE, direction)
    return evaluate(pair, ["--converted", str(folder / "converted")], folder / "scores", direction,
                    speakers)["converted"]


def median_figures(runs: list[dict]) -> dict:
    """Each figure's median over repeated runs."""
    return {name: float(np.median([run[name] for run in runs])) for name in runs[0]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(args.threads)
    from voiceconv.audio.world import DEFAULT_SETTINGS
    from voiceconv.convert import FILE_WINDOWING, Converter

    windowings = [parse_windowing(text) for text in args.windowing]
    converter = Converter(args.model, world=DEFAULT_SETTINGS if args.world == "default" else None)
    out_rate, realtime = converter.features.sample_rate, args.pace == "realtime"
    wav = recording(args.seconds, MICROPHONE_RATE)
    for windowing in windowings:  # warm-up
        run_stream(converter, wav[:MICROPHONE_RATE], MICROPHONE_RATE, 4800, False, args.direction, args.pitch, windowing)
    file_seconds, file_out = file_rtf(converter, wav, MICROPHONE_RATE, args.direction, args.pitch, FILE_WINDOWING)
    results = {"audio_seconds": len(wav) / MICROPHONE_RATE, "threads": args.threads, "pace": args.pace,
               "repeats": args.repeats, "file_rtf": file_seconds, "windowings": []}
    runs: dict[tuple[int, str], list[dict]] = {}
    outputs: dict[tuple[int, str], np.ndarray] = {}
    for _ in range(args.repeats):
        for index, windowing in enumerate(windowings):
            for block_ms in args.block_ms:
                block = round(block_ms / 1000 * MICROPHONE_RATE)
                run = run_stream(converter, wav, MICROPHONE_RATE, block, realtime, args.direction, args.pitch, windowing)
                runs.setdefault((index, f"{block_ms:g}"), []).append(
                    stream_figures(run, out_rate, len(wav) / MICROPHONE_RATE, realtime))
                outputs[(index, f"{block_ms:g}")] = run.output
    for index, (text, windowing) in enumerate(zip(args.windowing, windowings)):
        live_file_rtf, live_file_out = file_rtf(converter, wav, MICROPHONE_RATE, args.direction, args.pitch, windowing)
        window_wait, chunk_wait = windowing.waits_seconds(converter.features)
        waits = {"window_max": window_wait, "world_chunk_max": chunk_wait}
        streams = {block: median_figures(runs[(index, block)]) for block in (f"{b:g}" for b in args.block_ms)}
        equal = all(np.array_equal(outputs[(index, block)], live_file_out) for block in streams)
        results["windowings"].append({"name": text, "windowing": dataclasses.asdict(windowing), "waits": waits,
                                      "streams": streams, "file_rtf": live_file_rtf, "stream_equals_file": equal,
                                      "mel_distance_db": mel_distance_db(converter, live_file_out, file_out)})
    if args.quality:
        from dev_pairs import first_sentences

        with tempfile.TemporaryDirectory() as tmp:
            speakers = first_sentences(args.quality, args.sentences, Path(tmp), args.direction)
            for index, (entry, windowing) in enumerate(zip(results["windowings"], windowings)):
                entry["quality"] = quality(converter, args.quality, speakers, args.direction, windowing,
                                           Path(tmp) / f"windowing{index}")
    print(f"{results['audio_seconds']:.1f} s of speech at {MICROPHONE_RATE} Hz, {args.threads} threads, {args.pace} pace, "
          f"WORLD {getattr(converter.alignment(args.direction), 'settings', None)}\n")
    for entry, windowing in zip(results["windowings"], windowings):
        print(f"{entry['name']} ({describe(windowing)}): a sample waits at most "
              f"{1000 * entry['waits']['window_max']:.0f} ms for its window and "
              f"{1000 * entry['waits']['world_chunk_max']:.0f} ms for its WORLD chunk")
    print()
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
