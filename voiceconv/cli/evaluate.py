"""``voiceconv evaluate``: score a model (or converted files) with the objective metrics and baselines."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from voiceconv.cli.common import add_pitch
from voiceconv.models.directions import DIRECTIONS

if TYPE_CHECKING:
    from voiceconv.audio.knn import KnnConfig


def add_verbs(verbs) -> None:
    """Register ``evaluate``."""
    _add_evaluate(verbs)


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
    p.add_argument("--direction", choices=DIRECTIONS, default="a2b", help="with --model (default %(default)s)")
    add_pitch(p)  # also what F0 accuracy measures against: the source's F0 moved by this setting
    p.add_argument("--target-ref", type=Path, required=True, metavar="DIR", help="recordings of the target speaker")
    p.add_argument("--source-ref", type=Path, metavar="DIR", help="recordings of the source speaker (default: --source)")
    p.add_argument("--parallel", type=Path, metavar="DIR",
                   help="target recordings of the same sentences, named like the sources (enables MCD and F0 RMSE)")
    p.add_argument("--transcripts", type=Path, metavar="TSV",
                   help="id<TAB>text lines (enables WER; otherwise ASR agreement with the source is reported)")
    p.add_argument("--baselines", action="store_true",
                   help="also score the unconverted source, a pitch-shift voice changer, the WORLD voice changer (F0 transform "
                        "and envelope warp fitted on the reference folders), the kNN voice changer (the same with each envelope "
                        "moved half way to its nearest target reference frames), the vocoder ceiling, and with --model the "
                        "model's own kNN teacher (knn-teacher: its recipe's data.pull rendered by formula)")
    p.add_argument("--max-refs", type=int, default=50, metavar="N",
                   help="reference files used per speaker (default %(default)s)")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="DIR", help="where report.json/md and plots go")
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(args) -> None:
    from tqdm import tqdm

    from voiceconv.evaluate.harness import EvaluationRequest, evaluate
    from voiceconv.evaluate.report import markdown, write_report

    from voiceconv.audio.features import FeatureConfig

    convert, features, alignment, teacher = None, FeatureConfig(), None, None
    if args.model is not None:
        from voiceconv.convert import Converter

        converter = Converter(args.model)
        features = converter.features  # the ceiling baseline uses the model's own spectrogram path
        converter.alignment(args.direction, args.pitch)  # a bad --pitch fails before any scoring
        convert = scored_at_input_rate(converter, args.direction, args.pitch)
        alignment = converter.alignments.get(args.direction)  # its F0 transform defines the intended pitch
        teacher = model_teacher(converter.header, args.model) if args.baselines else None
    request = EvaluationRequest(source_dir=args.source, target_ref_dir=args.target_ref, source_ref_dir=args.source_ref,
                                converted_dir=args.converted, parallel_dir=args.parallel,
                                transcripts=args.transcripts, baselines=args.baselines,
                                max_reference_files=args.max_refs, features=features, pitch=args.pitch,
                                alignment=alignment, teacher=teacher)
    result = evaluate(request, convert=convert,
                      progress=lambda items, desc: tqdm(items, desc=desc, unit="utt", file=sys.stderr))
    inputs = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in ("run", "verb")}
    report = write_report(result, inputs, args.out)
    print(markdown(report).split("\n## ")[0])
    print(f"report written to {args.out}/report.md")


def model_teacher(header: dict, path) -> KnnConfig | None:
    """The kNN pull a model was trained toward (its recipe's ``data.pull``), or None when it had none; a pull the
    recipe recorded wrongly is reported on stderr and left out of the baselines."""
    from voiceconv.audio.knn import KnnConfig
    from voiceconv.config import from_dict
    from voiceconv.errors import ConfigError

    def entry(values, key: str):  # a header from a stranger may hold anything where a mapping belongs
        return values.get(key, {}) if isinstance(values, dict) else {}

    recipe = entry(entry(header, "training"), "recipe")
    if not entry(entry(recipe, "model"), "pull_weight"):
        return None
    try:
        return from_dict(KnnConfig, entry(entry(recipe, "data"), "pull"), "data.pull")
    except ConfigError as err:
        print(f"voiceconv evaluate: {path}: the knn-teacher baseline is left out: its recipe's {err}", file=sys.stderr)
        return None


def scored_at_input_rate(converter, direction: str, pitch) -> Callable[[np.ndarray, int], np.ndarray]:
    """``(wav, rate) -> converted wav at rate``: the metrics run at the harness's rate, whatever the model's."""

    def convert(wav: np.ndarray, rate: int) -> np.ndarray:
        converted = converter.convert(wav, rate, direction, pitch)  # at the model's sample rate
        model_rate = converter.features.sample_rate
        if model_rate == rate:
            return converted
        import librosa

        return librosa.resample(converted, orig_sr=model_rate, target_sr=rate).astype(np.float32)

    return convert
