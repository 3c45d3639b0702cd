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

The baseline, measured in the same run on the same audio: ``Converter.convert``
of the whole recording as a file (10-s windows), and as a file cut in the live
windows (what short windows cost without streaming); and how far the live
output is from the file conversion (mean log-mel difference in dB).

    .venv/bin/python benchmarks/live_latency.py [--seconds 20] [--block-ms 100 200] [--pace realtime|fast]
        [--threads 2] [--model samples/models/kathleen_rms.safetensors] [--json out.json]

Run it alone: another process on the same cores distorts every timing (the
held-back figures never change).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
    p.add_argument("--windowing", help="WINDOW,CONTEXT,CROSSFADE,CHUNK,CHUNK_CONTEXT seconds (default: the live one)")
    p.add_argument("--world", choices=["model", "default"], default="model",
                   help="WORLD analysis: the model file's own, or DEFAULT_SETTINGS (what new models train with)")
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


def parse_windowing(text: str | None):
    from voiceconv.convert import LIVE_WINDOWING, Windowing

    if not text:
        return LIVE_WINDOWING
    window, context, crossfade, chunk, chunk_context = (float(x) for x in text.split(","))
    return Windowing(window, context, crossfade, chunk, chunk_context)


STREAM_COLUMNS = [("held back, median / max (ms)", "held_back", ("median", "max")),
                  ("end to end, median / p95 / max (ms)", "end_to_end", ("median", "p95", "max")),
                  ("block to audio, median / p95 (ms)", "block_to_audio", ("median", "p95")),
                  ("heard gap-free, median / max (ms)", "heard", ("median", "max"))]


def spread(figures: dict, name: str, statistics: tuple[str, ...]) -> str:
    """``"a / b / c"`` in milliseconds, or ``-`` where the run did not measure it (``--pace fast``)."""
    if f"{name}_{statistics[0]}" not in figures:
        return "-"
    return " / ".join(f"{1000 * figures[f'{name}_{statistic}']:.0f}" for statistic in statistics)


def markdown(results: dict) -> str:
    header = ["block", *(title for title, _, _ in STREAM_COLUMNS), "compute RTF", "CPU RTF"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for block_ms, figures in results["streams"].items():
        cells = [f"{block_ms} ms", *(spread(figures, name, stats) for _, name, stats in STREAM_COLUMNS),
                 f"{figures['compute_rtf']:.3f}", f"{figures['cpu_rtf']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    base = results["baseline"]
    lines += ["", "| baseline, same audio, same run | real-time factor |", "|---|---|",
              f"| file conversion, 10-s windows (`Converter.convert`) | {base['file_rtf']:.3f} |",
              f"| file conversion in the live windows | {base['file_live_windows_rtf']:.3f} |", "",
              (f"Live output against the 10-s-window file conversion: {base['mel_distance_db']:.2f} dB mean log-mel "
               f"difference; the stream equals the file conversion in the live windows: {base['stream_equals_file']}.")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(args.threads)
    from voiceconv.convert import FILE_WINDOWING, Converter

    windowing = parse_windowing(args.windowing)
    from voiceconv.audio.world import DEFAULT_SETTINGS

    converter = Converter(args.model, world=DEFAULT_SETTINGS if args.world == "default" else None)
    out_rate = converter.features.sample_rate
    wav = recording(args.seconds, MICROPHONE_RATE)
    run_stream(converter, wav[: MICROPHONE_RATE], MICROPHONE_RATE, 4800, False, args.direction, args.pitch,
               windowing)  # warm-up
    file_seconds, file_out = file_rtf(converter, wav, MICROPHONE_RATE, args.direction, args.pitch, FILE_WINDOWING)
    live_file_seconds, live_file_out = file_rtf(converter, wav, MICROPHONE_RATE, args.direction, args.pitch,
                                                windowing)
    results = {"audio_seconds": len(wav) / MICROPHONE_RATE, "threads": args.threads, "pace": args.pace,
               "windowing": dataclasses.asdict(windowing), "streams": {},
               "baseline": {"file_rtf": file_seconds, "file_live_windows_rtf": live_file_seconds}}
    for block_ms in args.block_ms:
        block = round(block_ms / 1000 * MICROPHONE_RATE)
        run = run_stream(converter, wav, MICROPHONE_RATE, block, args.pace == "realtime", args.direction, args.pitch,
                         windowing)
        results["streams"][f"{block_ms:g}"] = stream_figures(run, out_rate, len(wav) / MICROPHONE_RATE,
                                                            args.pace == "realtime")
        results["baseline"]["stream_equals_file"] = bool(np.array_equal(run.output, live_file_out))
    results["baseline"]["mel_distance_db"] = mel_distance_db(converter, live_file_out, file_out)
    windows, chunks = windowing.plan(converter.features)
    rate = converter.features.sample_rate
    results["waits"] = {"window_max": (windows.stride + windows.margin + windows.crossfade // 2) / rate,
                        "world_chunk_max": (chunks.length + chunks.context + len(chunks.fade_in) // 2) / rate}
    print(f"{results['audio_seconds']:.1f} s of speech at {MICROPHONE_RATE} Hz, {args.threads} threads, "
          f"{args.pace} pace, windowing {windowing}, WORLD {getattr(converter.alignment(args.direction), 'settings', None)}\n")
    print(f"what holds a sample back, at most: its window {1000 * results['waits']['window_max']:.0f} ms, "
          f"its WORLD chunk {1000 * results['waits']['world_chunk_max']:.0f} ms\n")
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
