"""Model selection on held-back recordings: which training step to ship.

GAN losses say little about what a listener hears, and the adversarial
updates of a voice CycleGAN can undo in a hundred steps what the previous
hundred gained. So every ``train.validate_every`` steps the voice task
converts recordings of each speaker that training never sees (``data.held_back``)
with the current generators, by the conversion itself
(:meth:`voiceconv.convert.Converter.convert`, as ``voiceconv convert`` and
``voiceconv evaluate`` run it: windows, WORLD chunks and all), and scores
them. A held-back recording is read as conversion reads a file, its edge
silence kept: read with it trimmed, as training reads its crops, and
converted whole, the recognizer misjudged the words a trained step kept on
VCC2016 SF1 -> TM1 by 0.06 WER against ``evaluate`` on the same 24
recordings; now selection's WER is ``evaluate``'s (session 21,
``recipes/vcc2016_sf1_tm1/README.md``). The loop
keeps ``best.safetensors``: the step with the highest **selection score**,
which rewards moving the identity and penalises lost words and sound.
With ``data.strengths`` (envelope generators), each direction of a trained
step is scored at those strengths of its learned correction,
``G(x) = x + s * delta(x)``, on its own held-back recordings; each direction
ships its best strength, and the step's score is the mean of the two: half
of a correction that loses words may keep them and still move the voice,
and strength 0 (the direction's untrained start) keeps a direction that
training did not help (``recipes/vcc2016_sf1_tm1/README.md``, sessions 18-19).

With the evaluation extra installed (``pip install 'voiceconv[eval]'``)::

    score = mean(sim_target - sim_source) - mean(WER) + 0.5 * (mean(DNSMOS) - 3)

where ``sim_*`` is the Resemblyzer similarity to each speaker's centroid (of
up to 30 training recordings), WER is pocketsphinx's word error rate of the
converted speech against the recording's transcript where its speaker folder
has one (``transcripts.tsv``, voiceconv.data.transcripts: the words read, as
``voiceconv evaluate --transcripts`` judges them); else, under
``data.word_reference: parallel``, against its own recognition of the other
speaker's recording of the same sentence (parallel folders); else, under
``data.word_reference: recording``, against its own recognition of the
recording as recorded (``voiceconv evaluate``'s reference); else against its
own recognition of the (pitch-aligned) input, i.e. the words the input carried
(the network's own losses, apart from the WORLD stage's: against the recording
as recorded, a trained step on VCC2016 SF1 <-> TM1 lost 0.011 WER where the dev
sentences said 0.06-0.12, and the aligned input's reference said 0.09; session
17, recipes/vcc2016_sf1_tm1/README.md); DNSMOS is the P.835 overall quality.
The scores also report the WER against every reading a recording has
(``wer_input``, ``wer_recording``: against the recording as recorded, as
``voiceconv evaluate`` judges without transcripts, ``wer_parallel`` where the
other folder has a recording of the same name, ``wer_transcript``), whichever
one judges: each judge's view from one conversion.

``data.selection: words`` ranks the candidates by another rule, issue 19's
first target stated on held-back data: each direction keeps its most similar
candidate (largest ``sim_target - sim_source``) among those whose WER is at
most ``data.wer_tolerance`` above its untrained start's and whose DNSMOS is at
least 2.9, the start itself when no other is; a step's score is then the mean
similarity margin of its two picks (``selection_score`` beside it keeps the
formula's value). A rule that trades no words for identity, where the score
trades them one for one.

Without the extra, a cheaper proxy on the log-mel images themselves::

    score = (d_source - d_target) / (d_source + d_target) - (1 - rho)

with ``d_x`` the RMS distance between the converted image's per-band mean
and speaker x's, and ``rho`` the correlation of the converted image with its
input after removing each band's mean (temporal detail kept: the words).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from voiceconv.audio.features import FeatureConfig, MelImageEncoder
from voiceconv.audio.io import load_audio
from voiceconv.audio.world import Alignment, change_voice, spread_picks
from voiceconv.convert.converter import Converter
from voiceconv.convert.pipeline import Pipeline
from voiceconv.data.speakers import load_training_audio
from voiceconv.errors import AudioError, ModelFileError
from voiceconv.modelfiles.voice import VoiceModel
from voiceconv.models.directions import DIRECTIONS, Direction, source_side, target_side

QUALITY_WEIGHT = 0.5  # per DNSMOS point, around 3
WORDS_MIN_DNSMOS = 2.9  # the sound a candidate of data.selection: words must keep (issue 19's first target)


def selection_score(margin: float, wer: float, dnsmos: float) -> float:
    """The selection score with the evaluation extra (module docstring)."""
    return margin - wer + QUALITY_WEIGHT * (dnsmos - 3.0)


def proxy_score(distance_source: float, distance_target: float, correlation: float) -> float:
    """The selection score without the evaluation extra (module docstring)."""
    return (distance_source - distance_target) / max(distance_source + distance_target, 1e-9) - (1.0 - correlation)


def keeps_words(scores: dict[str, float], start: dict[str, float], tolerance: float) -> bool:
    """Whether a candidate's held-back ``scores`` keep the words and sound of its direction's untrained
    ``start`` (``data.selection: words``): WER at most ``tolerance`` above the start's, DNSMOS >= 2.9."""
    return scores["wer"] <= start["wer"] + tolerance and scores["dnsmos"] >= WORDS_MIN_DNSMOS


def best_entry(history: list[dict]) -> dict | None:
    """The entry of ``history`` (``{"step", "score", ...}`` dicts) with the highest finite score; the earliest
    of equal scores. None when there is none."""
    scored = [entry for entry in history if math.isfinite(entry.get("score", math.nan))]
    return max(scored, key=lambda entry: (entry["score"], -entry["step"])) if scored else None


@dataclass
class HeldBackUtterance:
    """One held-back recording prepared for scoring: the recording, its aligned waveform and the generator's
    input image."""

    name: str
    wav: np.ndarray  # [samples] as recorded: what the converted speech's loudness is matched to
    aligned: np.ndarray  # [samples], at the target's pitch: the "input" reading of the words, the proxy's image
    image: torch.Tensor  # [1, n_mels, T] of ``aligned``
    transcript: str | None = None  # the words read, when the speaker folder's transcripts.tsv has them
    parallel: Path | None = None  # the other speaker's recording of the same name, where its folder has one


class VoiceValidator:
    """Scores a voice model (the weights a training run would export now) on held-back recordings of both
    speakers (see the module docstring)."""

    def __init__(self, features: FeatureConfig, held_back: dict[str, list[Path]], alignment: Alignment | None,
                 reference_files: dict[str, list[Path]], transcripts: dict[Path, str] | None = None,
                 parallel: dict[Path, Path] | None = None, word_reference: str = "input"):
        self.features, self.encoder = features, MelImageEncoder(features)
        self.transcripts, self.parallel, self.word_reference = transcripts or {}, parallel or {}, word_reference
        alignments = {"a2b": alignment, "b2a": alignment and alignment.reverse()}
        self.utterances = {direction: self._prepare(held_back[source_side(direction)], alignments[direction])
                           for direction in DIRECTIONS}
        self.reference_files = reference_files
        self._metrics = None  # loaded on first use: the speaker encoder, centroids and input transcripts

    def _prepare(self, files: list[Path], alignment: Alignment | None) -> list[HeldBackUtterance]:
        prepared = []
        for path in files:
            try:
                wav = self._read(path)
            except AudioError:
                continue
            aligned = wav if alignment is None else change_voice(wav, self.features.sample_rate, alignment)
            prepared.append(HeldBackUtterance(path.name, wav, aligned, self.encoder(torch.from_numpy(aligned)),
                                              self.transcripts.get(path), self.parallel.get(path)))
        return prepared

    def _read(self, path: Path) -> np.ndarray:
        """``[samples]`` of a held-back recording as conversion and ``voiceconv evaluate`` read a file: edge
        silence kept (module docstring)."""
        return load_audio(path, self.features.sample_rate, min_seconds=self.features.n_fft / self.features.sample_rate)

    @property
    def available(self) -> bool:
        return all(self.utterances.values())

    @torch.no_grad()
    def __call__(self, model: VoiceModel, device: torch.device | str = "cpu",
                 directions: tuple[Direction, ...] = DIRECTIONS) -> dict[str, float]:
        """``{"score": ..., and its parts}`` of ``model`` (:meth:`VoiceModel.from_tensors` of the current
        weights), converted on ``device`` through the conversion's own pipeline, on the held-back recordings
        of ``directions`` (default both)."""
        converter = Converter(model, device=device)
        metrics = self._full_metrics()
        utterances = {direction: self.utterances[direction] for direction in directions}
        return (self._full_scores(converter, metrics, utterances) if metrics
                else self._proxy_scores(converter.pipeline, utterances))

    def _full_metrics(self):
        if self._metrics is None:
            try:
                from voiceconv.evaluate import asr, quality
                from voiceconv.evaluate.speaker import SpeakerEncoder, cosine
            except ImportError:
                self._metrics = False
                return False
            try:
                encoder = SpeakerEncoder()
                asr.recognize(np.zeros(1600, np.float32), self.features.sample_rate)  # pocketsphinx is there
            except ImportError:
                self._metrics = False
                return False
            centroids = {side: encoder.centroid([(load_training_audio(files[i], self.features),
                                                  self.features.sample_rate) for i in spread_picks(len(files))])
                         for side, files in self.reference_files.items()}
            references = {direction: [self._word_references(u, asr) for u in utterances]
                          for direction, utterances in self.utterances.items()}
            self._metrics = (encoder, cosine, asr, quality, centroids, references)
        return self._metrics

    def _word_references(self, utterance: HeldBackUtterance, asr) -> dict[str, str]:
        """Every reading of ``utterance``'s words there is: ``transcript`` (the words read), ``parallel`` (the
        recognizer's reading of the other speaker's same sentence), ``input`` (of the aligned input) and
        ``recording`` (of the recording as recorded: ``voiceconv evaluate``'s reference without transcripts)."""
        rate = self.features.sample_rate
        references = {"input": asr.recognize(utterance.aligned, rate), "recording": asr.recognize(utterance.wav, rate)}
        if utterance.parallel is not None:
            try:
                references["parallel"] = asr.recognize(self._read(utterance.parallel), rate)
            except AudioError:
                pass  # an unreadable parallel recording: judged as if it had none
        if utterance.transcript is not None:
            references["transcript"] = utterance.transcript
        return references

    def _judged_reference(self, references: dict[str, str]) -> str:
        """Which of :meth:`_word_references` selection judges by (module docstring): the transcript, else the
        reading ``data.word_reference`` names where the recording has it, else the input's."""
        if "transcript" in references:
            return "transcript"
        return self.word_reference if self.word_reference in references else "input"

    def _full_scores(self, converter: Converter, metrics, utterances_by_direction) -> dict[str, float]:
        encoder, cosine, asr, quality, centroids, references = metrics
        rate, margins, wers, moses, judged = self.features.sample_rate, [], [], [], []
        by_reference = {kind: [] for kind in ("input", "recording", "parallel", "transcript")}  # WER per reading
        for direction, utterances in utterances_by_direction.items():
            source, target = source_side(direction), target_side(direction)
            for utterance, readings in zip(utterances, references[direction]):
                try:  # the conversion itself, as voiceconv convert and evaluate run it
                    wav = converter.convert(utterance.wav, rate, direction)
                    embedding = encoder.embed(wav, rate)
                except (ModelFileError, AudioError, ValueError):  # damaged output (NaN, a constant), too little speech
                    continue
                margins.append(cosine(embedding, centroids[target]) - cosine(embedding, centroids[source]))
                heard = asr.recognize(wav, rate)
                errors = {kind: asr.word_error_rate(text, heard) if text else 0.0 for kind, text in readings.items()}
                judged.append(self._judged_reference(readings))
                wers.append(errors[judged[-1]])
                for kind, value in errors.items():
                    by_reference[kind].append(value)
                moses.append(quality.dnsmos(wav, rate)["ovrl"])
        if not margins:
            return {"score": math.nan}
        margin, wer, mos = float(np.mean(margins)), float(np.mean(wers)), float(np.mean(moses))
        return {"score": selection_score(margin, wer, mos), "similarity_margin": margin, "wer": wer, "dnsmos": mos,
                "success": float(np.mean(np.array(margins) > 0)),
                # the shares judged against the words read, and against the other speaker's same sentence
                "wer_vs_transcripts": float(np.mean([kind == "transcript" for kind in judged])),
                "wer_vs_parallel": float(np.mean([kind == "parallel" for kind in judged])),
                # the WER against each reading there is, over the recordings that have it: each judge's view
                **{f"wer_{kind}": float(np.mean(values)) for kind, values in by_reference.items() if values}}

    def _proxy_scores(self, pipeline: Pipeline, utterances_by_direction) -> dict[str, float]:
        scores, correlations = [], []
        for direction, utterances in utterances_by_direction.items():
            source = pipeline.stats[source_side(direction)].mean  # [n_mels]
            target = pipeline.stats[target_side(direction)].mean
            for utterance in utterances:
                image = pipeline.convert_image(utterance.image, direction).cpu()  # [1, n_mels, T]
                band_mean = image[0].mean(dim=-1)  # [n_mels]
                d_source = float((band_mean - source.cpu()).pow(2).mean().sqrt())
                d_target = float((band_mean - target.cpu()).pow(2).mean().sqrt())
                out = image[0] - image[0].mean(dim=-1, keepdim=True)
                inp = utterance.image[0] - utterance.image[0].mean(dim=-1, keepdim=True)
                rho = float((out * inp).sum() / (out.norm() * inp.norm()).clamp_min(1e-9))
                scores.append(proxy_score(d_source, d_target, rho))
                correlations.append(rho)
        return {"score": float(np.mean(scores)), "correlation": float(np.mean(correlations))}
