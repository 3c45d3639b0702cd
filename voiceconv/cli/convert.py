"""``voiceconv convert``: files and folder trees through a voice model (batch planning and running)."""

from __future__ import annotations

import sys
from pathlib import Path

from voiceconv.cli.common import add_pitch, positive_int
from voiceconv.models.directions import DIRECTIONS


def add_verbs(verbs) -> None:
    """Register ``convert``."""
    _add_convert(verbs)


def _add_convert(verbs) -> None:
    from voiceconv.batch import OUTPUT_FORMATS

    p = verbs.add_parser(
        "convert", help="convert audio files or whole folder trees with a trained model",
        description="Convert audio from one speaker of a model to the other. A file INPUT becomes "
                    "OUT_DIR/<name>.<format>; a folder INPUT is searched recursively and its tree mirrored under "
                    "OUT_DIR (hidden files left out). Outputs that already exist are skipped, so running the same "
                    "command again resumes an interrupted batch; an output appears only once complete. Inputs "
                    "that cannot be converted (missing, not audio, corrupt, empty, too short, two inputs with one "
                    "output name) are listed with the reason in OUT_DIR/failures.csv while the rest carry on. "
                    "Exit status: 0 all converted, 1 some failed or the model file is unreadable, 2 usage error "
                    "(bad option, OUT_DIR inside an input folder), 130 interrupted. Under torchrun --nproc-per-node N the "
                    "files are split between the processes, each listing its failures in failures.rank<R>.csv.")
    p.add_argument("--model", type=Path, required=True, help="model file (.safetensors) from voiceconv train")
    p.add_argument("--direction", choices=DIRECTIONS, default="a2b",
                   help="a2b: speaker A -> B, b2a: B -> A (default %(default)s)")
    p.add_argument("inputs", type=Path, nargs="+", metavar="INPUT", help="audio file, or folder of them")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="OUT_DIR", help="output folder")
    p.add_argument("--glob", metavar="PATTERN",
                   help="take the files of folder inputs whose path inside the folder matches, e.g. '*.flac' or "
                        "'SF1/*'; files it matches that are not audio are failures (default: files with an audio "
                        "extension)")
    p.add_argument("--format", dest="audio_format", choices=OUTPUT_FORMATS, default="wav",
                   help="output format (default %(default)s)")
    p.add_argument("--sample-rate", type=positive_int, metavar="HZ", help="output sample rate (default: the model's)")
    p.add_argument("--overwrite", action="store_true", help="convert again inputs whose output exists")
    p.add_argument("--allow-out-inside-input", action="store_true",
                   help="allow OUT_DIR inside an input folder; files under OUT_DIR are then never taken as inputs")
    p.add_argument("--jobs", type=positive_int, default=1, metavar="N",
                   help="worker processes, each with its share of the CPU cores (and sharing the GPU when "
                        "converting on one; default %(default)s)")
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda or cuda:N")
    add_pitch(p)
    p.set_defaults(run=_run_convert)


def _run_convert(args) -> int:
    from voiceconv.batch import (BatchUsageError, plan_batch, run_batch, shard, torchrun_rank,
                                 worker_threads, write_failures)
    from voiceconv.interrupts import sigterm_as_interrupt
    from voiceconv.runtime import LaunchError

    try:  # before importing torch, so that a usage error is reported at once
        rank, world_size = torchrun_rank()
        items, failures = plan_batch(args.inputs, args.out, glob=args.glob, audio_format=args.audio_format,
                                     allow_out_inside_input=args.allow_out_inside_input)
    except (BatchUsageError, LaunchError) as err:
        print(f"voiceconv convert: error: {err}", file=sys.stderr)
        return 2
    import torch

    from voiceconv.errors import ModelFileError

    torch.set_num_threads(worker_threads(1))  # used when converting in this process (--jobs 1)
    try:
        with sigterm_as_interrupt():
            report = run_batch(args.model, shard(items, rank, world_size), args.direction, overwrite=args.overwrite,
                               jobs=args.jobs, sample_rate=args.sample_rate, progress=rank == 0,
                               planning_failures=failures if rank == 0 else (), device=args.device,
                               pitch=args.pitch)
    except ModelFileError as err:  # a bad file: 1, as every verb's (a usage error is 2)
        print(f"voiceconv convert: error: {err}", file=sys.stderr)
        return 1
    except LaunchError as err:  # a --device this process cannot use: a usage error
        print(f"voiceconv convert: error: {err}", file=sys.stderr)
        return 2
    who = f"rank {rank} of {world_size}: " if world_size > 1 else ""
    if report.interrupted:
        print(f"voiceconv convert: {who}interrupted: {report.summary()}; run the same command again to finish",
              file=sys.stderr)
        return 130
    listed = write_failures(args.out, report.failures, f"failures.rank{rank}.csv" if world_size > 1 else "failures.csv")
    print(who + report.summary() + (f"; failures listed in {listed}" if listed else ""))
    return 1 if report.failures else 0
