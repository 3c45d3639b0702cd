"""The folder-level methods of an audit: files far from the folder's speaker (Resemblyzer embeddings, the
default) or unlikely under a Gaussian of the folder's log-mel frames (the fallback without the ``eval`` extra),
each judged against a robust cut that a minority of outliers does not move."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voiceconv.audit.measure import ANALYSIS_RATE
from voiceconv.audit.report import AuditSettings, FileAudit
from voiceconv.runtime import torch_threads

#: Methods beyond the cheap per-file checks, in the order they run.
METHODS = ("embedding", "likelihood")
DEFAULT_METHODS = ("embedding",)
MAD_TO_SIGMA = 1.4826  # a normal distribution's standard deviation is 1.4826 MADs
EMBED_BATCH_FILES = 64  # files whose speaker-encoder windows go through the network at once
MIN_FILES_FOR_A_CUT = 5  # the folder-level methods need this many trusted files to say what is normal


# --- speaker-embedding distance --------------------------------------------------------------------------
def encoder_or_fallback(methods: tuple[str, ...]):
    """(SpeakerEncoder, methods, []) or, without the ``eval`` extra, (None, methods with ``likelihood`` instead of
    ``embedding``, [a note saying so]). Loading the encoder takes about a second."""
    from voiceconv.evaluate.extras import MissingExtraError

    try:
        from voiceconv.evaluate.speaker import SpeakerEncoder

        return SpeakerEncoder(), methods, []
    except MissingExtraError as err:
        fallback = tuple(m for m in METHODS if m != "embedding" and m in (*methods, "likelihood"))
        note = (f"speaker-embedding check skipped: {err}; the spectrogram-likelihood check runs instead (it finds "
                "music and tones, misses most other voices)")
        return None, fallback, [note]


def embed_files(waves: dict[Path, np.ndarray], encoder) -> tuple[dict[Path, np.ndarray], dict[Path, str]]:
    """({path: unit embedding [256]}, {path: why it could not be embedded}).

    A :class:`~voiceconv.evaluate.speaker.SpeakerEncoder` embeds the partial windows of many files in one
    batch (the same embeddings as its ``embed`` to 1e-6; 0.046 s a VCC2016 file against 0.061 one by one, on
    the busy 2-core machine); any other object with ``embed(wave, rate)`` is asked file by file.
    """
    embeddings, failures, speech = {}, {}, {}
    batched = hasattr(encoder, "_preprocess") and hasattr(encoder, "_encoder")
    for path, wave in waves.items():
        try:
            if batched:
                speech[path] = encoder._preprocess(wave, ANALYSIS_RATE)  # [samples]: the encoder's own checks
            else:
                embeddings[path] = encoder.embed(wave, ANALYSIS_RATE)
        except ValueError as err:  # too little speech after the encoder's voice-activity trimming
            failures[path] = str(err)
    paths = list(speech)
    for start in range(0, len(paths), EMBED_BATCH_FILES):
        chunk = paths[start:start + EMBED_BATCH_FILES]
        embeddings.update(zip(chunk, _embed_batch(encoder._encoder, [speech[p] for p in chunk])))
    return embeddings, failures


def _embed_batch(voice_encoder, utterances: list[np.ndarray]) -> list[np.ndarray]:
    """Resemblyzer's ``embed_utterance`` for several preprocessed utterances, their partials in one forward pass."""
    import torch
    from resemblyzer import audio

    windows, counts = [], []
    for wav in utterances:
        wav_slices, mel_slices = voice_encoder.compute_partial_slices(len(wav), 1.3, 0.75)  # embed_utterance's
        if wav_slices[-1].stop >= len(wav):
            wav = np.pad(wav, (0, wav_slices[-1].stop - len(wav)))
        mel = audio.wav_to_mel_spectrogram(wav)  # [frames, 40]
        windows += [mel[s] for s in mel_slices]
        counts.append(len(mel_slices))
    with torch_threads(1), torch.no_grad():  # as SpeakerEncoder.embed: the LSTM is tiny, two threads wait on each other
        partials = voice_encoder(torch.from_numpy(np.array(windows))).cpu().numpy()  # [windows, 256]
    ends = np.cumsum(counts)
    return [_unit(partials[end - count:end].mean(axis=0)).astype(np.float32) for end, count in zip(ends, counts)]


def robust_centroid_distances(embeddings: np.ndarray, trusted: np.ndarray) -> np.ndarray:
    """Cosine distances ``[N]`` of unit ``embeddings`` ``[N, D]`` to a centroid of the ``trusted`` ``[N]`` bool ones:
    the mean of all trusted, then again of the trusted closer half (outliers pull the first mean, not the second)."""
    pool = embeddings[trusted] if trusted.any() else embeddings
    centroid = _unit(pool.mean(axis=0))
    distances = 1.0 - pool @ centroid
    closer = pool[distances <= np.median(distances)]
    centroid = _unit(closer.mean(axis=0))
    return 1.0 - embeddings @ centroid


def robust_threshold(values: np.ndarray, k: float, floor: float = -np.inf) -> float:
    """``max(median + k * MAD-sigma, floor)`` of ``values``: a cut that a minority of outliers does not move."""
    median = float(np.median(values))
    mad = MAD_TO_SIGMA * float(np.median(np.abs(values - median)))
    return max(median + k * mad, floor)


def duration_adjusted_excess(distances: np.ndarray, seconds: np.ndarray, trusted: np.ndarray, k: float,
                             rounds: int = 3) -> tuple[np.ndarray, float]:
    """(each file's distance above what a clean file of its length scores ``[N]``, the cut on that excess).

    A short utterance gives a noisier embedding, so clean files' distances shrink with length (VCC2016: median
    0.16 under 1.6 s of sound, 0.05 over 4 s). The expected distance ``a + b / seconds`` is fitted by least
    squares to the ``trusted`` files, then refitted to those under the cut ``median + k * MAD`` of the
    residuals, ``rounds`` times, so the outliers among the trusted do not bend the fit.
    """
    design = np.stack([np.ones_like(seconds), 1.0 / np.maximum(seconds, 0.1)], axis=1)  # [N, 2]
    kept = trusted.copy()
    for _ in range(rounds):
        coefficients = np.linalg.lstsq(design[kept], distances[kept], rcond=None)[0]  # [2]
        excess = distances - design @ coefficients  # [N]
        cut = robust_threshold(excess[kept], k)
        kept = trusted & (excess <= cut)
    return excess, cut


def flag_embedding_outliers(audits: list[FileAudit], waves: dict[Path, np.ndarray], encoder,
                            settings: AuditSettings) -> None:
    """Flag files whose speaker embedding is far from the folder's centroid, for their length, or that hold no
    speech to embed. Files the cheap checks flagged neither shape the centroid nor the cut."""
    by_path = {a.path: a for a in audits}
    embeddings, failures = embed_files(waves, encoder)
    for path, problem in failures.items():
        by_path[path].reasons.append(f"no speech found by the speaker encoder ({problem})")
    paths = list(embeddings)
    trusted = np.array([not by_path[p].flagged for p in paths])
    if trusted.sum() < MIN_FILES_FOR_A_CUT:
        return
    distances = robust_centroid_distances(np.stack([embeddings[p] for p in paths]), trusted)  # [N]
    seconds = np.array([by_path[p].sound_seconds for p in paths])
    excess, cut = duration_adjusted_excess(distances, seconds, trusted, settings.embedding_mad_k)
    for path, distance, above in zip(paths, distances, excess):
        by_path[path].embedding_distance = float(distance)
        if above > cut and distance > settings.min_embedding_distance:
            by_path[path].reasons.append(f"sounds unlike the folder's speaker: embedding distance {distance:.2f}, "
                                         f"{above:.2f} above what its length explains (the folder's cut {cut:.2f})")


# --- a likelihood model of the folder's spectrograms (the fallback without a speaker encoder) --------------
def log_mel_frames(wave: np.ndarray, n_mels: int) -> np.ndarray:
    """Log-mel frames ``[T, n_mels]`` (the feature images' [-1, 1] scale) of a waveform at ANALYSIS_RATE."""
    import torch

    from voiceconv.audio.features import FeatureConfig, MelImageEncoder

    encoder = MelImageEncoder(FeatureConfig(sample_rate=ANALYSIS_RATE, n_mels=n_mels))
    return encoder(torch.from_numpy(wave))[0].T.double().numpy()


def gaussian_frame_scores(frames: dict[Path, np.ndarray], trusted: set[Path]) -> dict[Path, float]:
    """{path: mean negative log-likelihood (nats, up to a constant) of its frames ``[T, D]``} under one
    full-covariance Gaussian fitted to the frames of the ``trusted`` files."""
    pool = np.concatenate([frames[p] for p in frames if p in trusted] or list(frames.values()))  # [sum T, D]
    mean = pool.mean(axis=0)
    covariance = np.cov(pool.T) + 1e-4 * np.eye(pool.shape[1])  # ridge: silent mel bands have no variance
    inverse = np.linalg.inv(covariance)
    _, log_det = np.linalg.slogdet(covariance)
    scores = {}
    for path, f in frames.items():
        centred = f - mean  # [T, D]
        mahalanobis = np.einsum("ti,ij,tj->t", centred, inverse, centred)  # [T]
        scores[path] = float(np.mean(0.5 * (mahalanobis + log_det)))
    return scores


def flag_likelihood_outliers(audits: list[FileAudit], waves: dict[Path, np.ndarray], settings: AuditSettings) -> None:
    """Flag files whose log-mel frames are far less likely than the rest under the folder's Gaussian."""
    by_path = {a.path: a for a in audits}
    trusted = {p for p in waves if not by_path[p].flagged}
    if len(trusted) < MIN_FILES_FOR_A_CUT:
        return
    frames = {p: log_mel_frames(w, settings.likelihood_mels) for p, w in waves.items()}
    scores = gaussian_frame_scores(frames, trusted)
    cut = robust_threshold(np.array([scores[p] for p in trusted]), settings.likelihood_mad_k)
    for path, score in scores.items():
        by_path[path].likelihood_score = score
        if score > cut:
            by_path[path].reasons.append(f"unlike the folder's spectrograms: frame log-likelihood {-score:.1f} "
                                         f"(the folder's cut {-cut:.1f})")


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v) + 1e-12)
