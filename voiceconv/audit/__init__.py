"""Audit a speaker's training recordings: what every file measures, and the files that do not belong.

A speaker is a folder of recordings (searched recursively, as ``voiceconv train`` reads it). Every file gets
cheap measurements (duration, sample rate, BS.1770 loudness, clipped share, silence share, an SNR estimate)
and is flagged, with the reason, when

- it cannot be read (missing, not audio, corrupt, truncated, empty, silent: the loader's own message),
- it is shorter than ``min_seconds`` of sound (edge silence trimmed, as training reads it),
- more than ``max_clipped_share`` of its samples sit at full scale (``|x| >= 0.999``),
- its SNR estimate is below ``min_snr_db`` (noise, hum, a recording without pauses or speech dynamics),
- more than ``max_silence_share`` of it is silence,
- its sample rate differs from the folder's majority, or its loudness is ``max_loudness_deviation_lu`` away
  from the folder's median,
- (method ``embedding``, the default) its Resemblyzer speaker embedding is far from the folder's centroid:
  another speaker, music, anything the speaker encoder does not hear as this voice. The centroid is built
  from the files the cheap checks passed, then again from the closer half of them; a file is flagged when
  its cosine distance exceeds what a clean file of its length scores by more than
  ``median + embedding_mad_k * MAD`` of the folder's excesses, and exceeds ``min_embedding_distance``.
- (method ``likelihood``, the fallback without the ``eval`` extra) its log-mel frames are unlikely under a
  full-covariance Gaussian of the folder's frames (robust threshold on the folder's mean log-likelihoods).
  It finds music and tones but few other voices, and scores noise as *more* likely than speech (the cheap
  checks catch noise). A VAE of the folder's spectrogram crops, the lecture's way, was measured too and
  found only the tones; benchmarks/audit_outliers.py holds both and README "Auditing training data" the table.

Nothing in the audited folders is written to. The library imports no gradio and no training code.

The package: :mod:`~voiceconv.audit.folders` (the API: audit folders, the results cache),
:mod:`~voiceconv.audit.measure` (the cheap per-file checks), :mod:`~voiceconv.audit.outliers` (the folder-level
methods: speaker-embedding distance and spectrogram likelihood) and :mod:`~voiceconv.audit.report` (the results
and their Markdown and CSV). The names below are importable from ``voiceconv.audit`` itself.
"""

from voiceconv.audit.folders import (DEFAULT_NEEDED_MINUTES, audit_folders, audit_speaker_folder,
                                     needed_minutes_of_recipe)
from voiceconv.audit.measure import (ANALYSIS_RATE, FileMeter, absolute_reasons, flag_folder_deviations, measure_file,
                                     silence_and_snr, silence_and_snr_of_powers, to_analysis_rate)
from voiceconv.audit.outliers import (DEFAULT_METHODS, METHODS, duration_adjusted_excess, embed_files,
                                      flag_embedding_outliers, flag_likelihood_outliers, gaussian_frame_scores,
                                      log_mel_frames, robust_centroid_distances, robust_threshold)
from voiceconv.audit.report import (AuditReport, AuditSettings, FileAudit, Flags, SpeakerSummary, summarize_speaker,
                                    table_csv, write_text)

__all__ = ["ANALYSIS_RATE", "DEFAULT_METHODS", "DEFAULT_NEEDED_MINUTES", "METHODS", "AuditReport", "AuditSettings",
           "FileAudit", "FileMeter", "Flags", "SpeakerSummary", "absolute_reasons", "audit_folders",
           "audit_speaker_folder", "duration_adjusted_excess", "embed_files", "flag_embedding_outliers",
           "flag_folder_deviations", "flag_likelihood_outliers", "gaussian_frame_scores", "log_mel_frames",
           "measure_file", "needed_minutes_of_recipe", "robust_centroid_distances", "robust_threshold",
           "silence_and_snr", "silence_and_snr_of_powers", "summarize_speaker", "table_csv", "to_analysis_rate",
           "write_text"]
