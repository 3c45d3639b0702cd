"""``voiceconv <verb>``: each verb is a thin wrapper over a library function.

User errors (bad files, bad options) print one line to stderr and exit 1;
usage errors exit 2 (argparse); a traceback means a bug.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Before torch is imported: idle OpenMP threads sleep instead of spinning. With spinning, two torch
# processes on a small CPU (training beside a conversion, or torchrun workers) slow each other down
# 5-20x; measured with benchmarks/nn_speed.py on 2 cores. Set OMP_WAIT_POLICY=ACTIVE to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from voiceconv import __version__
from voiceconv.errors import VoiceconvError
from voiceconv.families import FAMILIES, VOICE_KIND
from voiceconv.generative_cli import add_face_verbs, add_train_data_arguments


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``voiceconv`` console command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except VoiceconvError as err:
        print(f"voiceconv {args.verb}: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # e.g. an unwritable output folder
        print(f"voiceconv {args.verb}: error: {err.filename or ''}: {err.strerror or err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"voiceconv {args.verb}: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voiceconv", description="Voice conversion on mel-spectrogram images.")
    parser.add_argument("--version", action="version", version=f"voiceconv {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    _add_spectrogram(verbs)
    _add_synthesize(verbs)
    _add_evaluate(verbs)
    _add_train(verbs)
    _add_convert(verbs)
    add_face_verbs(verbs)
    return parser


def _feature_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="feature parameter override, e.g. --set n_mels=128 (repeatable)")


def _add_spectrogram(verbs) -> None:
    p = verbs.add_parser("spectrogram", help="audio file -> 16-bit spectrogram PNG (with its parameters inside)",
                         description="Turn an audio file into a log-mel spectrogram image (16-bit greyscale PNG "
                                     "that carries its feature parameters, so `voiceconv synthesize` can play it back).")
    p.add_argument("input", type=Path, help="audio file (wav, flac, ogg, mp3, ...)")
    p.add_argument("output", type=Path, help="PNG file to write")
    p.add_argument("--trim-silence", action="store_true", help="drop leading and trailing silence")
    p.add_argument("--loudness", type=float, metavar="LUFS", help="normalize loudness first, e.g. -23")
    _feature_overrides(p)
    p.set_defaults(run=_run_spectrogram)


def _run_spectrogram(args) -> None:
    from voiceconv.audio.features import FeatureConfig
    from voiceconv.audio.pipeline import audio_to_spectrogram_png
    from voiceconv.config import apply_overrides

    config = apply_overrides(FeatureConfig(), args.overrides)
    out = audio_to_spectrogram_png(args.input, args.output, config, trim_silence=args.trim_silence,
                                   loudness_lufs=args.loudness)
    print(out)


def _add_synthesize(verbs) -> None:
    from voiceconv.audio.vocoder import DEFAULT_ITERATIONS, DEFAULT_MOMENTUM

    p = verbs.add_parser("synthesize", help="spectrogram PNG -> audio file (Griffin-Lim)",
                         description="Resynthesize audio from a spectrogram PNG with fast Griffin-Lim. The feature "
                                     "parameters come from the PNG's metadata; --set overrides them.")
    p.add_argument("input", type=Path, help="spectrogram PNG (from `voiceconv spectrogram`, possibly edited)")
    p.add_argument("output", type=Path, help="audio file to write: .wav, .flac, .ogg or .mp3")
    p.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS, help="Griffin-Lim iterations (default %(default)s)")
    p.add_argument("--momentum", type=float, default=DEFAULT_MOMENTUM, help="fast Griffin-Lim momentum in [0, 1) (default %(default)s)")
    _feature_overrides(p)
    p.set_defaults(run=_run_synthesize)


def _run_synthesize(args) -> None:
    from voiceconv.audio.features import FeatureConfig
    from voiceconv.audio.image_file import read_png_config
    from voiceconv.audio.pipeline import spectrogram_png_to_audio
    from voiceconv.config import apply_overrides

    config = None
    if args.overrides:
        config = apply_overrides(read_png_config(args.input) or FeatureConfig(), args.overrides)
    if not 0 <= args.momentum < 1 or args.iterations < 0:
        raise VoiceconvError("--momentum must be in [0, 1) and --iterations >= 0")
    out = spectrogram_png_to_audio(args.input, args.output, config, n_iter=args.iterations, momentum=args.momentum)
    print(out)


def _add_evaluate(verbs) -> None:
    p = verbs.add_parser("evaluate", help="score converted speech: speaker similarity, MCD, WER, DNSMOS, F0",
                         description="Score converted speech against reference recordings of the target and source "
                                     "speakers, optionally beside baselines computed in the same run. Files are "
                                     "matched by relative path without extension. Needs: pip install 'voiceconv[eval]'.")
    p.add_argument("--source", type=Path, required=True, metavar="DIR", help="the unconverted input utterances")
    side = p.add_mutually_exclusive_group(required=True)
    side.add_argument("--converted", type=Path, metavar="DIR",
                      help="converted files, named like the sources (from any system)")
    side.add_argument("--model", type=Path, help="a voiceconv model file: convert the sources on the fly")
    p.add_argument("--direction", choices=["a2b", "b2a"], default="a2b", help="with --model (default %(default)s)")
    _add_pitch(p)
    p.add_argument("--target-ref", type=Path, required=True, metavar="DIR", help="recordings of the target speaker")
    p.add_argument("--source-ref", type=Path, metavar="DIR", help="recordings of the source speaker (default: --source)")
    p.add_argument("--parallel", type=Path, metavar="DIR",
                   help="target recordings of the same sentences, named like the sources (enables MCD and F0 RMSE)")
    p.add_argument("--transcripts", type=Path, metavar="TSV",
                   help="id<TAB>text lines (enables WER; otherwise ASR agreement with the source is reported)")
    p.add_argument("--baselines", action="store_true",
                   help="also score the unconverted source, a pitch-shift voice changer, the WORLD voice changer (F0 transform "
                        "and envelope warp fitted on the reference folders) and the vocoder ceiling")
    p.add_argument("--max-refs", type=int, default=50, metavar="N",
                   help="reference files used per speaker (default %(default)s)")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="DIR", help="where report.json/md and plots go")
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(args) -> None:
    from tqdm import tqdm

    from voiceconv.evaluate.harness import EvaluationRequest, evaluate
    from voiceconv.evaluate.report import markdown, write_report

    from voiceconv.audio.features import FeatureConfig

    convert, features = None, FeatureConfig()
    if args.model is not None:
        from voiceconv.convert import Converter

        converter = Converter(args.model)
        features = converter.features  # the ceiling baseline uses the model's own spectrogram path
        converter.alignment(args.direction, args.pitch)  # a bad --pitch fails before any scoring
        convert = lambda wav, rate: converter.convert(wav, rate, args.direction, args.pitch)  # noqa: E731
    request = EvaluationRequest(source_dir=args.source, target_ref_dir=args.target_ref, source_ref_dir=args.source_ref,
                                converted_dir=args.converted, parallel_dir=args.parallel,
                                transcripts=args.transcripts, baselines=args.baselines,
                                max_reference_files=args.max_refs, features=features)
    result = evaluate(request, convert=convert,
                      progress=lambda items, desc: tqdm(items, desc=desc, unit="utt", file=sys.stderr))
    inputs = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in ("run", "verb")}
    report = write_report(result, inputs, args.out)
    print(markdown(report).split("\n## ")[0])
    print(f"report written to {args.out}/report.md")


def _add_train(verbs) -> None:
    p = verbs.add_parser("train", help="train a model from a recipe: voice CycleGAN, or face VAE/DB-VAE/GAN/CycleGAN",
                         description="Train the model a recipe describes. Voice recipes: speaker A <-> speaker B "
                                     "from two folders of recordings (unpaired, any readable audio, searched "
                                     "recursively). Recipes of the other kinds "
                                     f"({', '.join(k for k in FAMILIES if k != VOICE_KIND)}) take their folders "
                                     "from the recipe or the options below. Writes checkpoints, TensorBoard logs "
                                     "and finally RUN_DIR/model.safetensors. Ctrl-C saves a checkpoint; --resume "
                                     "continues from the newest one. Several processes: torchrun --nproc-per-node N "
                                     "-m voiceconv train ...")
    p.add_argument("recipe", type=Path, help="recipe YAML (see recipes/)")
    p.add_argument("--speaker-a", type=Path, metavar="DIR", help="recordings of speaker A (voice recipes)")
    p.add_argument("--speaker-b", type=Path, metavar="DIR", help="recordings of speaker B (voice recipes)")
    p.add_argument("--out", type=Path, required=True, metavar="RUN_DIR", help="run folder")
    p.add_argument("--name-a", help="speaker A's name in the model card (default: from the folder)")
    p.add_argument("--name-b", help="speaker B's name in the model card (default: from the folder)")
    p.add_argument("--steps", type=int, help="total training steps (overrides train.steps)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in RUN_DIR")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="recipe override, e.g. --set model.generator_channels=32 (repeatable)")
    add_train_data_arguments(p)
    p.set_defaults(run=_run_train, usage_error=p.error)


def _run_train(args) -> int:
    import logging

    from voiceconv.families import family
    from voiceconv.generative_cli import check_data_flags
    from voiceconv.train.recipes import load_recipe_as, recipe_kind

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    kind = recipe_kind(args.recipe)
    check_data_flags(args, kind)
    chosen = family(kind)
    recipe = load_recipe_as(chosen.recipe_class(), args.recipe, args.overrides, args.steps)
    options = {dest: getattr(args, dest, None) for dest in chosen.data_options}
    outcome = chosen.train(recipe, args.out, args.resume, options)
    if outcome.interrupted:
        print(f"interrupted at step {outcome.steps}; checkpoint saved, continue with --resume", file=sys.stderr)
        return 130
    if outcome.model_path is not None:
        print(outcome.model_path)
    return 0


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
                    "Exit status: 0 all converted, 1 some failed, 2 usage error (bad option, unreadable model "
                    "file, OUT_DIR inside an input folder), 130 interrupted. Under torchrun --nproc-per-node N the "
                    "files are split between the processes, each listing its failures in failures.rank<R>.csv.")
    p.add_argument("--model", type=Path, required=True, help="model file (.safetensors) from voiceconv train")
    p.add_argument("--direction", choices=["a2b", "b2a"], default="a2b",
                   help="a2b: speaker A -> B, b2a: B -> A (default %(default)s)")
    p.add_argument("inputs", type=Path, nargs="+", metavar="INPUT", help="audio file, or folder of them")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="OUT_DIR", help="output folder")
    p.add_argument("--glob", metavar="PATTERN",
                   help="take the files of folder inputs whose path inside the folder matches, e.g. '*.flac' or "
                        "'SF1/*'; files it matches that are not audio are failures (default: files with an audio "
                        "extension)")
    p.add_argument("--format", dest="audio_format", choices=OUTPUT_FORMATS, default="wav",
                   help="output format (default %(default)s)")
    p.add_argument("--sample-rate", type=_positive_int, metavar="HZ", help="output sample rate (default: the model's)")
    p.add_argument("--overwrite", action="store_true", help="convert again inputs whose output exists")
    p.add_argument("--allow-out-inside-input", action="store_true",
                   help="allow OUT_DIR inside an input folder; files under OUT_DIR are then never taken as inputs")
    p.add_argument("--jobs", type=_positive_int, default=1, metavar="N",
                   help="worker processes, each with its share of the CPU cores (default %(default)s; CPU only)")
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda or cuda:N")
    _add_pitch(p)
    p.set_defaults(run=_run_convert)


def _add_pitch(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pitch", default="auto", type=_pitch, metavar="auto|source|+N|-N",
                        help="auto: the model's F0 transform onto the target speaker (default); source: keep the "
                             "speaker's own pitch; +N / -N: move the speaker's pitch by N semitones (e.g. +2, -3.5)")


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

    from voiceconv.modelfile import ModelFileError

    torch.set_num_threads(worker_threads(1))  # used when converting in this process (--jobs 1)
    try:
        with sigterm_as_interrupt():
            report = run_batch(args.model, shard(items, rank, world_size), args.direction, overwrite=args.overwrite,
                               jobs=args.jobs, sample_rate=args.sample_rate, progress=rank == 0,
                               planning_failures=failures if rank == 0 else (), device=args.device,
                               pitch=args.pitch)
    except (ModelFileError, LaunchError) as err:  # LaunchError: a --device this process cannot use
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


def _pitch(text: str) -> str:
    """argparse type: a --pitch setting, checked."""
    from voiceconv.audio.world import parse_pitch

    try:
        parse_pitch(text)
    except VoiceconvError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value
