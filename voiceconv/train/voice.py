"""Training a voice-conversion CycleGAN between two speakers: the recipe, the task and ``train_voice``."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from voiceconv.audio import phones
from voiceconv.audio.features import FeatureConfig, SpeakerStats
from voiceconv.audio.io import audio_files
from voiceconv.audio.knn import KnnConfig, KnnVoiceChanger
from voiceconv.audio.world import (FIT_FILES, Alignment, WorldSettings, analyse, change_voice, fit_alignment,
                                   spread_picks, synthesize)
from voiceconv.config import to_dict
from voiceconv.convert import Converter
from voiceconv.data.speakers import SpeakerCorpus, load_speaker, load_training_audio, split_held_back
from voiceconv.data.transcripts import folder_transcripts, parallel_recordings
from voiceconv.errors import AudioError, ConfigError, ModelFileError, VoiceconvError
from voiceconv.families import VOICE_KIND
from voiceconv.files import atomic_output
from voiceconv.modelfiles.format import save_model_file
from voiceconv.modelfiles.layout import GENERATOR_PREFIXES
from voiceconv.modelfiles.voice import VoiceModel, voice_model_tensors, with_strength
from voiceconv.models.cyclegan import CycleGAN, CycleGANConfig
from voiceconv.models.directions import DIRECTIONS, source_side
from voiceconv.train.loop import TrainConfig, TrainingOutcome, fit
from voiceconv.train.recipes import load_recipe_as, prepare_run_dir
from voiceconv.train.selection import VoiceValidator, keeps_words

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VoiceDataConfig:
    """Which speakers, and how their folders become training crops."""

    # The two speakers' folders of recordings (any readable audio, searched recursively; ``voiceconv train
    # --speaker-a/--speaker-b`` set them), and their names in the model (default: from the folder).
    speaker_a: str = ""
    speaker_b: str = ""
    name_a: str = ""
    name_b: str = ""
    crop_frames: int = 64  # width of the random crops (64 frames = 1.0 s at hop 256, 16 kHz)
    min_seconds: float = 60.0  # refuse speakers with less usable audio than this
    media_utterances: int = 2  # fixed utterances converted into TensorBoard every media_every steps
    # Pitch alignment by formula before the image is made (voiceconv.audio.world): none (the generator moves the
    # pitch itself), f0 (log-Gaussian F0 transform) or f0+warp (and the fitted spectral-envelope warp).
    align: Literal["none", "f0", "f0+warp"] = "none"
    held_back: int = 0  # recordings per speaker never trained on; model selection scores on them
    # Selection scores each direction of each trained step with its learned correction at these strengths
    # (envelope1d generators: G(x) = x + s * delta(x); 0 = that direction's untrained start) and keeps the best
    # step, each direction at its best strength; best.safetensors ships those. (1.0,) = as trained.
    strengths: tuple[float, ...] = (1.0,)
    # What selection judges a held-back recording's words against where its folder has no transcripts.tsv: the
    # recognizer's reading of the pitch-aligned input (input), of the recording as recorded (recording: what
    # ``voiceconv evaluate`` compares with), or of the other speaker's recording of the same file name (parallel:
    # folders of the same sentences, as VCC2016's; recordings without a namesake keep the input's).
    # voiceconv.train.selection, the VCC2016 README.
    word_reference: Literal["input", "recording", "parallel"] = "input"
    # How selection ranks the candidates (steps, and each direction's strengths): score (the selection score,
    # margin - WER + 0.5 (DNSMOS - 3)), or words (the most similar candidate whose WER is at most
    # ``wer_tolerance`` above the untrained start's and whose DNSMOS is at least 2.9: issue 19's first target
    # as a rule; the start itself when nothing else keeps the words).
    selection: Literal["score", "words"] = "score"
    wer_tolerance: float = 0.03
    # Matched processing: with alignment, the real speech the discriminators and the identity loss see is first
    # copy-synthesized by WORLD at the alignment's settings (own F0, no warp), as the generators' inputs are, so
    # the speakers differ and the vocoder's fingerprint does not.
    matched: bool = False
    pull: KnnConfig = field(default_factory=KnnConfig)  # kNN pseudo-targets (model.pull_weight; needs alignment)


@dataclass(frozen=True)
class VoiceRecipe:
    """Everything that defines a voice-conversion training run."""

    kind: Literal[VOICE_KIND] = VOICE_KIND  # recipes may name their family, as every other kind does
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: CycleGANConfig = field(default_factory=CycleGANConfig)
    data: VoiceDataConfig = field(default_factory=VoiceDataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class VoiceData:
    """The two speakers as the task trains on them.

    ``speakers`` are the real recordings (what the discriminators and the identity loss see; copy-synthesized
    by WORLD under ``data.matched``); ``inputs`` are what each direction's generator converts (with their kNN
    pseudo-targets among the other speaker's frames when ``model.pull_weight`` > 0): ``a2b`` is speaker A brought
    to B's pitch by ``alignment`` (the real A when there is no alignment), ``b2a`` likewise. ``held_back`` are never
    trained on. ``output_stats`` are the per-band statistics a converted image is mapped onto on its way out (in
    validation, media and the exported model): the natural recordings' even when the discriminators see
    copy-synthesized speech, since listeners (and MCD) compare the output with natural speech; by default the
    speakers' own.
    """

    speakers: dict[str, SpeakerCorpus]
    inputs: dict[str, SpeakerCorpus]
    alignment: Alignment | None = None
    held_back: dict[str, list[Path]] = field(default_factory=lambda: {"a": [], "b": []})
    training_files: dict[str, list[Path]] = field(default_factory=lambda: {"a": [], "b": []})
    output_stats: dict[str, SpeakerStats] = field(default_factory=dict)
    transcripts: dict[Path, str] = field(default_factory=dict)  # held-back file -> its words (folder_transcripts)
    parallel: dict[Path, Path] = field(default_factory=dict)  # held-back file -> the other speaker's same sentence

    def __post_init__(self):
        self.output_stats = self.output_stats or {side: corpus.stats for side, corpus in self.speakers.items()}


class VoiceConversionTask:
    """CycleGAN on unpaired crops of two speakers' normalized log-mel images (pitch-aligned when the recipe says)."""

    def __init__(self, recipe: VoiceRecipe, data: VoiceData):
        if recipe.data.crop_frames % 4:
            raise ConfigError(f"data.crop_frames={recipe.data.crop_frames} must be a multiple of 4")
        self.recipe, self.data, self.speakers = recipe, data, data.speakers
        self.model = CycleGAN(channels=1, height=recipe.features.n_mels, config=recipe.model,
                              total_steps=recipe.train.steps, seed=recipe.train.seed)
        strengths = recipe.data.strengths
        if not strengths or not all(0.0 <= value <= 2.0 for value in strengths) or max(strengths) == 0.0:
            raise ConfigError(f"data.strengths={list(strengths)} must be values in [0, 2], one of them above 0")
        if strengths != (1.0,) and recipe.model.generator != "envelope1d":
            raise ConfigError(f"data.strengths={list(strengths)} needs model.generator: envelope1d (a correction "
                              f"added to the input), not {recipe.model.generator}")
        if not 0.0 <= recipe.data.wer_tolerance <= 1.0:
            raise ConfigError(f"data.wer_tolerance={recipe.data.wer_tolerance} must be between 0 and 1 (WER above "
                              f"the untrained start's that data.selection: words allows)")
        smallest = getattr(self.model.D_A, "min_size", 0)
        if recipe.data.crop_frames < smallest:
            raise ConfigError(f"data.crop_frames={recipe.data.crop_frames} is too narrow for "
                              f"model.discriminator_layers={recipe.model.discriminator_layers}: at least {smallest}")
        self._validator: VoiceValidator | None = None  # built on first use
        self._untrained: dict[str, dict[str, float]] | None = None  # held-back scores of step 0 by direction
        # the real speech a discriminator judges, in the units of the output it judges (model.output_spread)
        self._real_scale = {} if recipe.model.output_spread == "target" else {
            side: (self.speakers[side].stats.std / output_spread(recipe.model, d, self.speakers, data.inputs))[:, None]
            for d, side in (("a2b", "b"), ("b2a", "a"))}  # [n_mels, 1] each

    def batch(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        width = self.recipe.data.crop_frames
        batch = {"A": self.speakers["a"].crops(batch_size, width, generator),  # [B, 1, n_mels, width]
                 "B": self.speakers["b"].crops(batch_size, width, generator)}
        for side, scale in self._real_scale.items():
            batch[side.upper()] = batch[side.upper()] * scale
        for direction, key in (("a2b", "A2B"), ("b2a", "B2A")):
            corpus = self.data.inputs[direction]
            if corpus.targets is not None:
                batch[key], batch[f"{key}_target"] = corpus.crops_with_targets(batch_size, width, generator)
            elif self.data.alignment is not None:
                batch[key] = corpus.crops(batch_size, width, generator)
        return batch

    def generators(self) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
        return {"a2b": self.model.a_to_b, "b2a": self.model.b_to_a}

    def validate(self) -> dict[str, float] | None:
        """Selection scores of the weights exporting now would ship, on the held-back recordings (None without
        any; a NaN score when the weights are damaged): each direction at each of ``data.strengths``
        (:func:`best_strengths` keeps each direction's best)."""
        if self._validator is None:
            self._validator = VoiceValidator(self.recipe.features, self.data.held_back, self.data.alignment,
                                             self.data.training_files, self.data.transcripts, self.data.parallel,
                                             self.recipe.data.word_reference)
        if not self._validator.available:
            return None
        tensors, header = self.model_file({})
        trained = int(self.model.steps_done) > 0
        scored = {direction: {} for direction in DIRECTIONS}  # direction -> strength -> scores
        for strength in self.recipe.data.strengths if trained else (1.0,):  # the untrained start: scored once
            if strength == 0.0:
                for direction, scores in self._untrained_scores(tensors, header).items():
                    scored[direction][0.0] = scores
                continue
            try:
                model = VoiceModel.from_tensors(with_strength(tensors, strength), header)
            except ModelFileError as err:  # e.g. weights gone NaN: no step to keep
                log.warning("held-back selection: %s", err)
                return {"score": math.nan}
            for direction in DIRECTIONS:
                scored[direction][strength] = self._validator(model, self._device, (direction,))
        if not trained:
            self._untrained = {direction: by_strength[1.0] for direction, by_strength in scored.items()}
        if self.recipe.data.selection == "words":
            return best_strengths(scored, start=self._untrained_scores(tensors, header),
                                  tolerance=self.recipe.data.wer_tolerance)
        return best_strengths(scored)

    @property
    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _untrained_scores(self, tensors: dict[str, torch.Tensor], header: dict) -> dict[str, dict[str, float]]:
        """Each direction's held-back scores at strength 0 (its untrained start): those of step 0, scored again
        only when this process did not score step 0 (a resumed run)."""
        if self._untrained is None:
            model = VoiceModel.from_tensors(with_strength(tensors, 0.0), header)
            self._untrained = {d: self._validator(model, self._device, (d,)) for d in DIRECTIONS}
        return self._untrained

    @torch.no_grad()
    def log_media(self, writer, step: int) -> None:
        """The first recordings of each speaker converted to the other by a :class:`Converter` of the weights
        exporting now would ship (the conversion's own path: what TensorBoard plays is what the model says):
        the input's and the output's log-mel images, and the audio."""
        rate = self.recipe.features.sample_rate
        try:
            converter = Converter(VoiceModel.from_tensors(*self.model_file({"steps": step})),
                                  device=next(self.model.parameters()).device)
        except VoiceconvError as err:  # e.g. weights gone NaN: the loop goes on, the media say nothing
            log.warning("no training media at step %d: %s", step, err)
            return
        for direction in DIRECTIONS:
            for index, wav in enumerate(self._media_clips(source_side(direction))):
                try:
                    converted = converter.convert(wav, rate, direction)  # [samples]
                except VoiceconvError as err:
                    log.warning("no training media %s/%d at step %d: %s", direction, index, step, err)
                    continue
                tag = f"{direction}/{index}"
                for name, audio in (("source", wav), ("converted", converted)):
                    image = converter.encoder(torch.from_numpy(audio).to(converter.device))  # [1, n_mels, T]
                    writer.add_image(f"{tag}/{name}", (image.flip(-2).float().cpu() + 1) / 2, step)
                writer.add_audio(f"{tag}/audio", torch.from_numpy(converted)[None].clamp(-1, 1), step, sample_rate=rate)

    def _media_clips(self, side: str) -> list[np.ndarray]:
        """The first ``data.media_utterances`` readable training recordings of ``side``, each ``[samples]``."""
        clips = []
        for path in self.data.training_files[side]:
            if len(clips) == self.recipe.data.media_utterances:
                break
            try:
                clips.append(load_training_audio(path, self.recipe.features))
            except AudioError:
                continue
        return clips

    def model_file(self, info: dict) -> tuple[dict[str, torch.Tensor], dict]:
        """(tensors, header) of the current weights as trained; ``info``: the training section."""
        aligned = {d: corpus.stats for d, corpus in self.data.inputs.items()} if self.data.alignment else None
        generators = {d: self.model.inference_generator(name) for d, name in GENERATOR_PREFIXES.items()}
        tensors = voice_model_tensors(generators, self.data.output_stats, aligned)
        header = {
            "kind": VOICE_KIND,
            "features": to_dict(self.recipe.features),
            "model": to_dict(self.recipe.model),
            "speakers": {side: {"name": c.name, "training_seconds": round(c.frames * self.recipe.features.hop_length
                                                                           / self.recipe.features.sample_rate, 1)}
                         for side, c in self.speakers.items()},
            "training": {**info, "recipe": to_dict(self.recipe)},
        }
        if self.data.alignment is not None:
            header["alignment"] = self.data.alignment.to_dict()
        return tensors, header

    def export(self, path: Path, info: dict) -> None:
        """Write the model file of the current weights to ``path``: each direction at the strength selection
        chose when ``info`` is a selected step's (``info["selected"]["strength_<direction>"]``), else as trained."""
        tensors, header = self.model_file(info)
        save_model_file(path, with_strength(tensors, selected_strengths(info)), header)


def best_strengths(scored: dict[str, dict[float, dict[str, float]]],
                   start: dict[str, dict[str, float]] | None = None, tolerance: float = 0.03) -> dict[str, float]:
    """A step's selection entry from its scores by direction and strength: each direction at its best-scoring
    strength (the strongest of equal scores), every score the mean of the two directions'; ``strength_<d>``
    and each direction's scores at each strength beside them (``<d>_score_at_<s>``, ``<d>_wer_at_<s>``, ...:
    what another selection rule would need to be tried on a finished run's ``validation.jsonl``).

    With ``start`` (each direction's untrained scores: ``data.selection: words``, voiceconv.train.selection),
    each direction at its most similar strength among those that keep the start's words and sound (strength 0,
    the start itself, when none does), and the entry's ``score`` is the mean similarity margin
    (``selection_score``: the formula's)."""
    entry, candidates = {}, {}
    for direction, by_strength in scored.items():
        finite = {s: scores for s, scores in by_strength.items() if math.isfinite(scores.get("score", math.nan))}
        if not finite:
            return {"score": math.nan}
        candidates[direction] = _ranked_candidates(finite, start and start.get(direction), tolerance)
        entry.update({f"{direction}_{part}_at_{s:g}": value for s, scores in by_strength.items()
                      for part, value in scores.items() if not part.startswith("wer_vs_")})  # shares, not scores
    chosen = {d: max(by_strength, key=lambda s: (by_strength[s]["rank"], s)) for d, by_strength in candidates.items()}
    picks = [candidates[d][s] for d, s in chosen.items()]
    means = {key: float(np.mean([scores[key] for scores in picks if key in scores]))
             for key in sorted({key for scores in picks for key in scores} - {"rank"})}
    if start is not None and all("similarity_margin" in scores for scores in picks):  # the words rule ranked them
        means["selection_score"], means["score"] = means["score"], means["similarity_margin"]
    return {**means, **{f"strength_{d}": s for d, s in chosen.items()}, **entry}


def _ranked_candidates(finite: dict[float, dict[str, float]], start: dict[str, float] | None,
                       tolerance: float) -> dict[float, dict[str, float]]:
    """One direction's candidate strengths with the ``rank`` selection orders them by: the score, or under the
    words rule (``start`` with the full scores) the similarity margin of those that keep the words (the start,
    strength 0, always among them)."""
    if start is None or "similarity_margin" not in start:  # the score rule; or the proxy scores: no words to keep
        return {s: {**scores, "rank": scores["score"]} for s, scores in finite.items()}
    candidates = {s: scores for s, scores in finite.items() if keeps_words(scores, start, tolerance)}
    candidates.setdefault(0.0, start)
    return {s: {**scores, "rank": scores["similarity_margin"]} for s, scores in candidates.items()}


def selected_strengths(info: dict) -> dict[str, float]:
    """The strength of each direction an export applies: a selected step's (``info["selected"]``), else 1 (the
    model as trained)."""
    selected = info.get("selected", {})
    return {direction: selected.get(f"strength_{direction}", 1.0) for direction in DIRECTIONS}


def load_recipe(path: str | Path, overrides: list[str] = (), steps: int | None = None) -> VoiceRecipe:
    """A recipe YAML with ``--set`` overrides and an optional step count applied."""
    return load_recipe_as(VoiceRecipe, path, overrides, steps)


def train_voice(recipe: VoiceRecipe, run_dir: Path, resume: bool = False) -> TrainingOutcome:
    """Train ``recipe.data.speaker_a`` <-> ``speaker_b`` into ``run_dir`` (checkpoints, logs, ``model.safetensors``).

    Speakers are named after their folders (the parent folder for generic names such as ``train``)
    unless ``data.name_a``/``name_b`` say otherwise.
    """
    data = recipe.data
    if not data.speaker_a or not data.speaker_b:
        raise ConfigError("a voice recipe needs two speaker folders: --speaker-a DIR --speaker-b DIR (or "
                          "data.speaker_a/speaker_b)")
    prepare_run_dir(recipe, run_dir, resume)
    folders, names = speaker_folders(data)
    voice_data = load_voice_data(recipe, folders, run_dir / "cache", names, alignment_file=run_dir / "alignment.json")
    return fit(VoiceConversionTask(recipe, voice_data), recipe.train, run_dir, resume=resume)


def load_voice_data(recipe: VoiceRecipe, folders: tuple[Path, Path], cache_dir: Path,
                    names: tuple[str, str], alignment_file: Path | None = None) -> VoiceData:
    """Both speakers' corpora, held-back files set aside, and (when the recipe aligns) the fitted alignment
    with each direction's aligned input corpus. ``alignment_file`` keeps the fitted alignment: a resumed run
    reads it back instead of fitting again."""
    features, data = recipe.features, recipe.data
    files, held_back, transcripts = {}, {}, {}
    for side, folder in zip("ab", folders):
        files[side], held_back[side] = split_held_back(audio_files(folder), data.held_back)
        if len(held_back[side]) < data.held_back:
            log.warning("%s: holding back %d of its %d recordings for selection, not data.held_back=%d (at most a "
                        "quarter of a folder)", folder, len(held_back[side]), len(files[side]) + len(held_back[side]),
                        data.held_back)
        transcripts.update(folder_transcripts(folder, held_back[side]))
    parallel = parallel_word_references(folders, files, held_back, warn=data.word_reference == "parallel")
    load = partial(load_speaker, config=features, cache_dir=cache_dir, min_seconds=data.min_seconds,
                   crop_frames=data.crop_frames)
    alignment = None if data.align == "none" else _alignment(files, features, data, alignment_file)
    speakers, output_stats = {}, {}
    for side, folder, name in zip("ab", folders, names):
        natural = load(folder, name=name, files=files[side])
        output_stats[side] = natural.stats
        if data.matched and alignment is not None:  # the same WORLD pass as the generators' inputs
            key = f"copy-{_digest(vars(alignment.settings))}"
            transform = partial(copy_synthesize, sample_rate=features.sample_rate, settings=alignment.settings)
            speakers[side] = load(folder, name=name, files=files[side], transform_key=key, transform=transform)
        else:
            speakers[side] = natural
    for corpus in speakers.values():
        seconds = corpus.frames * features.hop_length / features.sample_rate
        log.info("speaker %s: %d utterances, %.1f min; %d unreadable file(s) skipped",
                 corpus.name, len(corpus.images), seconds / 60, len(corpus.skipped))
        for reason in corpus.skipped:
            log.warning("skipped: %s", reason)
    inputs = {"a2b": speakers["a"], "b2a": speakers["b"]}
    if alignment is not None:
        log.info("pitch alignment a2b: median F0 %.0f Hz -> %.0f Hz, envelope warp %.2f",
                 alignment.source.median_hz, alignment.target.median_hz, alignment.warp)
        for direction, side, folder in (("a2b", "a", folders[0]), ("b2a", "b", folders[1])):
            aligned = alignment if direction == "a2b" else alignment.reverse()
            inputs[direction] = load(folder, name=speakers[side].name, files=files[side],
                                     transform_key=f"{direction}-{_digest(aligned.to_dict())}",
                                     transform=partial(change_voice, sample_rate=features.sample_rate,
                                                       alignment=aligned))
    if recipe.model.pull_weight > 0:
        if alignment is None:
            raise ConfigError("model.pull_weight > 0 needs data.align (the pseudo-targets start from the alignment)")
        for direction, folder in zip(DIRECTIONS, folders):
            attach_pseudo_targets(inputs[direction], speakers[direction[-1]],
                                  _knn_changer(direction, files, features, alignment, data.pull),
                                  partial(load, folder, files=files[direction[0]]),
                                  output_spread(recipe.model, direction, speakers, inputs))
    return VoiceData(speakers, inputs, alignment, held_back, files, output_stats, transcripts, parallel)


def parallel_word_references(folders: tuple[Path, Path], files: dict[str, list[Path]],
                             held_back: dict[str, list[Path]], warn: bool = False) -> dict[Path, Path]:
    """Each held-back recording -> the other speaker's recording of the same name (held back or not), for
    ``data.word_reference: parallel`` (and the WER against it that selection reports whatever judges). ``warn``:
    a warning line per folder whose recordings lack one (they keep the input's reading; folders that are not
    parallel, e.g. a parallel recipe given other speakers)."""
    parallel = {}
    for (side, folder), (other, other_folder) in zip(zip("ab", folders), zip("ba", reversed(folders))):
        found = parallel_recordings(folder, held_back[side], other_folder, held_back[other] + files[other])
        if warn and len(found) < len(held_back[side]):
            log.warning("data.word_reference=parallel: %d of %d held-back recordings of %s have no recording of the "
                        "same name in %s; their words are judged against the aligned input's",
                        len(held_back[side]) - len(found), len(held_back[side]), folder, other_folder)
        parallel.update(found)
    return parallel


def attach_pseudo_targets(corpus: SpeakerCorpus, target: SpeakerCorpus, changer: KnnVoiceChanger,
                          load: Callable[..., SpeakerCorpus], spread: torch.Tensor) -> None:
    """Give ``corpus`` (a direction's aligned input) its kNN pseudo-targets, frame for frame with its images.

    The same recordings go through the kNN voice ``changer`` (``load(name=, transform=, transform_key=)`` reads
    or computes and caches that corpus). What the pull moves, frame by frame, is added to what the untrained
    generator outputs (the input, mapped onto the ``target`` speaker's per-band statistics on the way out),
    less its average over the corpus, which that statistics mapping already moves::

        t = x + (m - mean(m)) / spread,   m = log-mel(pulled) - log-mel(aligned input)   [n_mels, T]

    ``spread`` ``[n_mels]``: the per-band spread the output is mapped onto (:func:`output_spread`), so that the
    move is the same in decibels whichever spread the model ships.

    So the generator learns the frame-by-frame pull toward the target's nearest frames that no per-band
    formula can make, on top of the formula stage instead of in place of it.
    """
    started = time.monotonic()
    phone_model = {} if changer.phone_model is None else {"phone_model": phones.fingerprint(changer.phone_model)}
    key = f"knn-{_digest({**changer.alignment.to_dict(), **vars(changer.config), **phone_model})}"
    pulled = load(name=corpus.name, transform=changer, transform_key=key)
    if [image.shape for image in pulled.images] != [image.shape for image in corpus.images]:
        raise RuntimeError(f"{corpus.name}: the pseudo-target images do not match the inputs frame for frame")
    moves = [pulled.stats.denormalize(moved) - corpus.stats.denormalize(image)  # [n_mels, T_i] in the image's units
             for moved, image in zip(pulled.images, corpus.images)]
    average = torch.cat(moves, dim=-1).mean(dim=-1, keepdim=True)  # [n_mels, 1]
    corpus.targets = [image + (move - average) / spread[:, None] for image, move in zip(corpus.images, moves)]
    log.info("kNN pseudo-targets of %s: %d frames pulled toward %d frames of %s in %.0f s", corpus.name,
             corpus.frames, changer.pool_size, target.name, time.monotonic() - started)


def output_spread(model: CycleGANConfig, direction: str, speakers: dict[str, SpeakerCorpus],
                  inputs: dict[str, SpeakerCorpus]) -> torch.Tensor:
    """The per-band spread ``[n_mels]`` that ``direction``'s output is mapped onto in training
    (``model.output_spread``, as :attr:`VoiceModel.output_stats` maps it in conversion): the target speaker's,
    or the direction's own input's."""
    return (inputs[direction] if model.output_spread == "input" else speakers[direction[-1]]).stats.std


def _knn_changer(direction: str, files: dict[str, list[Path]], features: FeatureConfig, alignment: Alignment,
                 config: KnnConfig) -> KnnVoiceChanger:
    """The kNN voice changer of ``direction``: the source side's fitting recordings normalize, the target side's
    ``config.reference_files`` recordings are the frames matched against."""
    source, target = direction[0], direction[-1]
    aligned = alignment if direction == "a2b" else alignment.reverse()
    return KnnVoiceChanger(list(training_waves(files[source], features)),
                           list(training_waves(files[target], features, config.reference_files)),
                           features.sample_rate, aligned, config)


def copy_synthesize(wav: np.ndarray, sample_rate: int, settings: WorldSettings) -> np.ndarray:
    """``wav`` ``[samples]`` analysed and resynthesized by WORLD unchanged: what the aligned inputs go through,
    without the change of speaker."""
    out = synthesize(analyse(wav, sample_rate, settings), sample_rate, len(wav), settings)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def _alignment(files: dict[str, list[Path]], features: FeatureConfig, data: VoiceDataConfig,
               alignment_file: Path | None) -> Alignment:
    """The fitted A -> B alignment, read back from ``alignment_file`` when a run resumes."""
    if alignment_file is not None and alignment_file.is_file():
        return Alignment.from_dict(json.loads(alignment_file.read_text(encoding="utf-8")))
    alignment = fit_speaker_alignment(files["a"], files["b"], features, warp=data.align == "f0+warp")
    if alignment_file is not None:
        with atomic_output(alignment_file) as tmp:
            tmp.write_text(json.dumps(alignment.to_dict(), indent=2), encoding="utf-8")
    return alignment


def _digest(values: dict) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:8]


def fit_speaker_alignment(files_a: list[Path], files_b: list[Path], features: FeatureConfig,
                          warp: bool = True) -> Alignment:
    """The A -> B alignment fitted on up to :data:`~voiceconv.audio.world.FIT_FILES` recordings of each."""
    return fit_alignment(training_waves(files_a, features), training_waves(files_b, features), features.sample_rate,
                         warp=warp)


def training_waves(files: list[Path], features: FeatureConfig, count: int = FIT_FILES) -> Iterator[np.ndarray]:
    """Up to ``count`` readable training recordings spread evenly over ``files``."""
    for index in spread_picks(len(files), count):
        try:
            yield load_training_audio(files[index], features)
        except AudioError:
            continue  # reported when the corpus is read


def speaker_folders(data: VoiceDataConfig) -> tuple[tuple[Path, Path], tuple[str, str]]:
    """The two speakers' folders and their names in the model (``data.name_a``/``name_b``, else
    :func:`speaker_name`)."""
    folders = (Path(data.speaker_a), Path(data.speaker_b))
    return folders, tuple(name or speaker_name(folder) for folder, name in zip(folders, (data.name_a, data.name_b)))


def speaker_name(folder: Path) -> str:
    """A speaker's default name: its folder's name, or the parent's for generic names like ``train``."""
    folder = folder.resolve()
    generic = {"train", "training", "wav", "wavs", "audio", "data", "clips", "recordings"}
    return folder.parent.name if folder.name.lower() in generic and folder.parent.name else folder.name
