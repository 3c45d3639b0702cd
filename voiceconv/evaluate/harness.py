"""``voiceconv evaluate``: score converted speech, side by side with baselines.

Inputs are folders of audio. Utterances are matched by their path relative to
their folder, without the extension (``sub/200001.flac`` matches
``sub/200001.wav``). The system under test is either a folder of already
converted files or a conversion function (a trained model). Baselines, when
asked for, are computed in the same run with the same metrics:

* ``source``: the unconverted input;
* ``pitch-shift``: the input pitch-shifted to the target speaker's median F0
  (the simplest voice changer);
* ``world-vc``: the WORLD voice changer (:mod:`voiceconv.audio.world`, DIO + StoneMask,
  CheapTrick, D4C, 5 ms frames): log-Gaussian F0 transform and one spectral-envelope
  warp, fitted on up to 30 files of the source and target reference folders; the
  report gives the fitted warp. It
  keeps the words and the sound, and is the bar a learned model must clear;
* ``knn-vc``: the same WORLD voice changer with each frame's envelope moved half way toward the mean of its
  8 nearest frames among the target reference recordings (:mod:`voiceconv.audio.knn`, its default settings:
  frame by frame, on the spectrum alone); the same for every model, so a model trained toward such targets must
  beat it;
* ``knn-teacher``: when the model under test was trained toward kNN pseudo-targets, its own teacher (its
  recipe's ``data.pull``: blend, smoothing, phone weight) rendered by formula in the same way, so the report shows
  what the network added to what it was pulled toward;
* ``target-vocoded``: the target's parallel recordings through our own
  spectrogram + Griffin-Lim path, i.e. the ceiling this vocoder allows.

Every system's F0 is also scored frame by frame against the contour the
conversion was asked for (:func:`prosody.f0_accuracy`): the source's F0 moved
by ``pitch`` (``auto``: the model's log-Gaussian transform, or one fitted on
the reference speakers when no model alignment is given; ``source``; +N
semitones).

Unreadable or silent files, and utterances missing a counterpart (converted,
parallel or transcript), are listed in the report and skipped, never fatal.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from voiceconv.audio.features import FeatureConfig, MelImageEncoder
from voiceconv.audio.io import audio_files, load_audio
from voiceconv.audio import world
from voiceconv.audio.knn import KnnConfig, KnnVoiceChanger
from voiceconv.audio.vocoder import GriffinLimVocoder
from voiceconv.data.transcripts import read_transcripts
from voiceconv.errors import AudioError, VoiceconvError
from voiceconv.evaluate import asr, prosody, quality
from voiceconv.evaluate.mcd import as_pcm16, mcd_from_features, world_f0, world_features
from voiceconv.evaluate.speaker import SpeakerEncoder, cosine

SAMPLE_RATE = 16000
SYSTEM = "converted"
BASELINE_SOURCE = "source"
BASELINE_PITCH_SHIFT = "pitch-shift"
BASELINE_WORLD = "world-vc"
BASELINE_KNN = "knn-vc"
BASELINE_TEACHER = "knn-teacher"
BASELINE_CEILING = "target-vocoded"

ConvertFn = Callable[[np.ndarray, int], np.ndarray]


@dataclass(frozen=True)
class EvaluationRequest:
    """What to evaluate; folders of audio files (see the module docstring)."""

    source_dir: Path
    target_ref_dir: Path
    source_ref_dir: Path | None = None  # defaults to source_dir
    converted_dir: Path | None = None
    parallel_dir: Path | None = None
    transcripts: Path | None = None
    baselines: bool = False
    max_reference_files: int = 50
    features: FeatureConfig = FeatureConfig()  # for the vocoder ceiling baseline
    pitch: world.Pitch = "auto"  # the pitch setting the conversion was asked for: defines the intended F0 contour
    alignment: world.Alignment | None = None  # the model's F0 transform for "auto" (None: fitted on the references)
    teacher: KnnConfig | None = None  # the model's kNN pull, rendered as the knn-teacher baseline (None: not scored)


@dataclass(frozen=True)
class SpeakerProfile:
    """A reference speaker: embedding centroid and F0 statistics over its reference files."""

    folder: str
    files: int
    centroid: np.ndarray
    median_f0: float
    log_f0_mean: float
    log_f0_std: float

    def summary(self) -> dict:
        return {k: v for k, v in vars(self).items() if k != "centroid"}


@dataclass
class EvaluationResult:
    """Per-utterance metrics per system, with what was skipped and why."""

    systems: dict[str, list[dict]] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)
    speakers: dict[str, dict] = field(default_factory=dict)  # role -> SpeakerProfile.summary()
    wer_reference: str = "transcript"
    baselines: dict[str, dict] = field(default_factory=dict)  # baseline -> what was fitted for it


def find_audio(folder: Path) -> dict[str, Path]:
    """Audio files under ``folder`` (recursive), keyed by relative path without extension."""
    return {p.relative_to(folder).with_suffix("").as_posix(): p for p in audio_files(folder)}


def evaluate(request: EvaluationRequest, convert: ConvertFn | None = None, progress=None) -> EvaluationResult:
    """Score the converted utterances (from ``request.converted_dir`` or ``convert``) and the baselines."""
    if (request.converted_dir is None) == (convert is None):
        raise VoiceconvError("give exactly one of a converted folder or a model to convert with")
    result = EvaluationResult()
    sources = _load_folder(request.source_dir, "source", result)
    parallel = _load_folder(request.parallel_dir, "parallel", result) if request.parallel_dir else {}
    encoder = SpeakerEncoder()
    target_waves = _reference_waves(request.target_ref_dir, "target reference", request, result)
    source_waves = _reference_waves(request.source_ref_dir or request.source_dir, "source reference", request, result)
    target = _speaker_profile(request.target_ref_dir, target_waves, encoder)
    source = _speaker_profile(request.source_ref_dir or request.source_dir, source_waves, encoder)
    result.speakers = {"target": target.summary(), "source": source.summary()}
    systems = {SYSTEM: _converted(request, convert, sources, result)}
    if request.baselines:
        systems.update(_baselines(request, sources, parallel, target.median_f0))
        alignment = world.fit_alignment(_spread(source_waves), _spread(target_waves), SAMPLE_RATE,
                                        settings=world.REFERENCE_SETTINGS)
        result.baselines[BASELINE_WORLD] = {"warp": alignment.warp, "source_median_f0": alignment.source.median_hz,
                                            "target_median_f0": alignment.target.median_hz,
                                            "fitted_on_files": min(len(source_waves), world.FIT_FILES)}
        systems[BASELINE_WORLD] = {key: world.change_voice(wav, SAMPLE_RATE, alignment) for key, wav in sources.items()}
        fitted, converted = knn_baselines({BASELINE_KNN: KnnConfig(), BASELINE_TEACHER: request.teacher},
                                          _spread(source_waves), target_waves, alignment, sources)
        result.baselines.update(fitted)
        systems.update(converted)
    references = _asr_references(request, sources, result)
    metrics = UtteranceMetrics(encoder, target, source, parallel, references,
                               _intended_f0(request, sources, source, target))
    for name, utterances in systems.items():
        result.systems[name] = []
        for key, wav in _iterate(utterances, name, progress):
            try:
                result.systems[name].append(metrics(key, wav))
            except ValueError as err:  # e.g. too little speech left to embed
                result.skipped.append({"file": key, "reason": f"{name}: cannot be scored: {err}"})
    for key in sorted(set(sources) - set(parallel)) if request.parallel_dir else []:
        result.skipped.append({"file": key, "reason": "no parallel target recording: MCD and F0 RMSE skipped"})
    return result


class UtteranceMetrics:
    """All metrics of one utterance, against fixed reference speakers, parallel targets and ASR references."""

    def __init__(self, encoder: SpeakerEncoder, target: SpeakerProfile, source: SpeakerProfile,
                 parallel: dict[str, np.ndarray], asr_references: dict[str, str],
                 intended_f0: dict[str, np.ndarray] | None = None):
        self.encoder, self.target, self.source = encoder, target, source
        self.asr_references, self.intended_f0 = asr_references, intended_f0 or {}
        self.parallel_features = {key: world_features(wav, SAMPLE_RATE) for key, wav in parallel.items()}

    def __call__(self, key: str, wav: np.ndarray) -> dict:
        row: dict = {"file": key, "seconds": round(len(wav) / SAMPLE_RATE, 3)}
        embedding = self.encoder.embed(wav, SAMPLE_RATE)
        row["sim_target"] = cosine(embedding, self.target.centroid)
        row["sim_source"] = cosine(embedding, self.source.centroid)
        row["closer_to_target"] = row["sim_target"] > row["sim_source"]
        features = world_features(wav, SAMPLE_RATE)
        row["log_f0_mean"], row["log_f0_std"] = prosody.log_f0_stats([features.f0])
        reference = self.parallel_features.get(key)
        row["mcd_db"] = mcd_from_features(features, reference) if reference is not None else math.nan
        row["f0_rmse_hz"] = prosody.f0_rmse(features, reference) if reference is not None else math.nan
        if key in self.intended_f0:
            row.update(prosody.f0_accuracy(features.f0, self.intended_f0[key]))
        if key in self.asr_references:
            row["asr_text"] = asr.recognize(wav, SAMPLE_RATE)
            row["wer"] = asr.word_error_rate(self.asr_references[key], row["asr_text"])
        mos = quality.dnsmos(wav, SAMPLE_RATE)
        row["dnsmos_ovrl"], row["dnsmos_sig"] = mos["ovrl"], mos["sig"]
        return row


def _load_folder(folder: Path, role: str, result: EvaluationResult) -> dict[str, np.ndarray]:
    waves = {}
    for key, path in find_audio(folder).items():
        try:
            waves[key] = load_audio(path, SAMPLE_RATE)
        except AudioError as err:
            result.skipped.append({"file": str(path), "reason": f"{role}: {err.problem}"})
    if not waves:
        raise VoiceconvError(f"{folder}: no readable audio files for the {role} side")
    return waves


def _reference_waves(folder: Path, role: str, request: EvaluationRequest, result: EvaluationResult) -> list[np.ndarray]:
    """Up to ``max_reference_files`` evenly spread readable recordings of a reference folder."""
    waves = list(_load_folder(folder, role, result).values())
    picks = np.linspace(0, len(waves) - 1, min(len(waves), request.max_reference_files)).astype(int)
    return [waves[i] for i in picks]


def knn_baselines(configs: dict[str, KnnConfig | None], source_waves: list[np.ndarray],
                  target_waves: list[np.ndarray], alignment: world.Alignment, sources: dict[str, np.ndarray]
                  ) -> tuple[dict[str, dict], dict[str, dict[str, np.ndarray]]]:
    """The kNN voice changer of each named config (None: left out) on the ``sources``: what each matched (its
    settings and pool size, by name) and its converted waveforms (by name, then utterance)."""
    fitted, converted = {}, {}
    for name, config in configs.items():
        if config is not None:
            knn = KnnVoiceChanger(source_waves, target_waves, SAMPLE_RATE, alignment, config)
            fitted[name] = {"k": config.k, "blend": config.blend, "smooth_frames": config.smooth_frames,
                            "phone_weight": config.phone_weight, "target_frames": knn.pool_size}
            converted[name] = {key: knn(wav) for key, wav in sources.items()}
    return fitted, converted


def _spread(waves: list[np.ndarray]) -> list[np.ndarray]:
    """The reference files the WORLD voice changer is fitted on: up to FIT_FILES of them, evenly spread."""
    return [waves[i] for i in world.spread_picks(len(waves))]


def _speaker_profile(folder: Path, waves: list[np.ndarray], encoder: SpeakerEncoder) -> SpeakerProfile:
    """Embedding centroid and F0 statistics of a reference speaker's recordings."""
    f0s = [world_f0(wav, SAMPLE_RATE)[0] for wav in waves]
    log_mean, log_std = prosody.log_f0_stats(f0s)
    return SpeakerProfile(folder=str(folder), files=len(waves),
                          centroid=encoder.centroid([(wav, SAMPLE_RATE) for wav in waves]),
                          median_f0=prosody.median_f0(f0s), log_f0_mean=log_mean, log_f0_std=log_std)


def _intended_f0(request: EvaluationRequest, sources: dict[str, np.ndarray], source: SpeakerProfile,
                 target: SpeakerProfile) -> dict[str, np.ndarray]:
    """The F0 contour ``[frames]`` each source utterance was to be converted to: its own F0 (as the metrics
    measure it) moved by the request's pitch setting."""
    alignment = request.alignment or world.Alignment(world.PitchStats(source.log_f0_mean, source.log_f0_std),
                                                     world.PitchStats(target.log_f0_mean, target.log_f0_std))
    alignment = alignment.with_pitch(world.parse_pitch(request.pitch))
    return {key: world.transform_f0(world_f0(as_pcm16(wav), SAMPLE_RATE)[0], alignment) for key, wav in sources.items()}


def _converted(request: EvaluationRequest, convert: ConvertFn | None, sources: dict[str, np.ndarray],
               result: EvaluationResult) -> dict[str, np.ndarray]:
    if convert is not None:
        return {key: convert(wav, SAMPLE_RATE) for key, wav in sources.items()}
    converted = _load_folder(request.converted_dir, "converted", result)
    for key in sorted(set(sources) - set(converted)):
        result.skipped.append({"file": key, "reason": f"no converted file in {request.converted_dir}"})
    return {key: converted[key] for key in sources if key in converted}


def _baselines(request: EvaluationRequest, sources: dict[str, np.ndarray], parallel: dict[str, np.ndarray],
               target_median_f0: float) -> dict[str, dict[str, np.ndarray]]:
    systems = {
        BASELINE_SOURCE: sources,
        BASELINE_PITCH_SHIFT: {key: pitch_shift_to(wav, target_median_f0) for key, wav in sources.items()},
    }
    if parallel:
        encoder, vocoder = MelImageEncoder(request.features), GriffinLimVocoder(request.features)
        systems[BASELINE_CEILING] = {key: vocoder(encoder(torch.from_numpy(wav)))[0].numpy() for key, wav in parallel.items()}
    return systems


def pitch_shift_to(wav: np.ndarray, target_median_f0: float) -> np.ndarray:
    """The classic voice changer: shift ``wav`` so its median F0 lands on ``target_median_f0`` Hz."""
    import librosa

    source_median = prosody.median_f0([world_f0(wav, SAMPLE_RATE)[0]])
    if not (source_median > 0 and target_median_f0 > 0):
        return wav
    steps = 12.0 * math.log2(target_median_f0 / source_median)
    return librosa.effects.pitch_shift(wav, sr=SAMPLE_RATE, n_steps=steps).astype(np.float32)


def _asr_references(request: EvaluationRequest, sources: dict[str, np.ndarray], result: EvaluationResult) -> dict[str, str]:
    if request.transcripts is None:
        result.wer_reference = "recognition of the unconverted source (ASR agreement)"
        return {key: asr.recognize(wav, SAMPLE_RATE) for key, wav in sources.items()}
    texts = read_transcripts(request.transcripts)
    by_name = {Path(key).name: text for key, text in texts.items()}
    references = {}
    for key in sources:
        text = texts.get(key, by_name.get(Path(key).name))
        if text is None:
            result.skipped.append({"file": key, "reason": f"no transcript in {request.transcripts}: WER skipped"})
        else:
            references[key] = text
    return references


def _iterate(utterances: dict[str, np.ndarray], name: str, progress):
    items = list(utterances.items())
    if progress is not None:
        items = progress(items, desc=name)
    yield from items
