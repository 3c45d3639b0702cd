"""An audit's results: the thresholds (:class:`AuditSettings`), each file's measurements and reasons
(:class:`FileAudit`), each speaker's summary, and the report as Markdown and CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

@dataclass(frozen=True)
class AuditSettings:
    """Thresholds of the checks; the defaults are the ones benchmarks/audit_outliers.py measured."""

    min_seconds: float = 0.5  # sound after edge-silence trimming (VCC2016's shortest sentences hold 0.9 s)
    max_clipped_share: float = 0.001
    min_snr_db: float = 15.0
    max_silence_share: float = 0.8
    max_loudness_deviation_lu: float = 20.0
    embedding_mad_k: float = 6.0
    min_embedding_distance: float = 0.15  # cosine distance; clean VCC2016 files over 4 s of sound: at most 0.10
    likelihood_mad_k: float = 4.0
    likelihood_mels: int = 40


class Flags:
    """What an audited file's ``reasons`` (list of text) say: whether it is flagged, and why."""

    @property
    def flagged(self) -> bool:
        """Whether any reason was found."""
        return bool(self.reasons)

    @property
    def reason(self) -> str:
        """Every reason, ``; ``-joined; '' when the file is clean."""
        return "; ".join(self.reasons)


@dataclass
class FileAudit(Flags):
    """One recording: its measurements (None where unreadable) and the reasons it is flagged."""

    path: Path
    speaker: str
    seconds: float | None = None
    sample_rate: int | None = None
    loudness_lufs: float | None = None
    clipped_share: float | None = None
    silence_share: float | None = None
    snr_db: float | None = None
    sound_seconds: float | None = None  # after edge-silence trimming
    embedding_distance: float | None = None  # cosine distance to the folder's speaker centroid
    likelihood_score: float | None = None  # mean negative log-likelihood of its log-mel frames (folder Gaussian)
    reasons: list[str] = field(default_factory=list)

    @property
    def readable(self) -> bool:
        """Whether the file could be read (its measurements exist)."""
        return self.seconds is not None


@dataclass(frozen=True)
class SpeakerSummary:
    """One speaker folder: how much usable sound it holds against what the recipe needs."""

    name: str
    folder: Path
    files: int
    flagged: int
    minutes: float  # sound (edge silence trimmed) in the files not flagged
    needed_minutes: float

    @property
    def enough(self) -> bool:
        """Whether the unflagged files hold the minutes of sound needed."""
        return self.minutes >= self.needed_minutes


@dataclass
class AuditReport:
    """Every audited file, a summary per speaker, and notes on the methods (e.g. one that could not run)."""

    files: list[FileAudit]
    speakers: list[SpeakerSummary]
    methods: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> list[FileAudit]:
        """The flagged files, in report order."""
        return [f for f in self.files if f.flagged]

    def markdown(self) -> str:
        """The report for people: speakers, flagged files, then every file's measurements."""
        return _markdown(self)

    def csv_text(self) -> str:
        """``file,flagged,reason`` for every file; flagged is ``yes`` or ``no``."""
        return table_csv(self.files)

    def write_csv(self, path: str | Path) -> Path:
        """Write :meth:`csv_text` to ``path`` atomically."""
        return write_text(path, self.csv_text())

    def write_markdown(self, path: str | Path) -> Path:
        """Write :meth:`markdown` to ``path`` atomically."""
        return write_text(path, self.markdown())


# --- summaries and the report ------------------------------------------------------------------------------
def summarize_speaker(name: str, folder: Path, audits: list[FileAudit], needed_minutes: float) -> SpeakerSummary:
    """A speaker folder's summary: its files, how many are flagged, and the minutes of sound in the others."""
    minutes = sum(a.sound_seconds for a in audits if a.readable and not a.flagged) / 60.0
    return SpeakerSummary(name, folder, len(audits), sum(a.flagged for a in audits), round(minutes, 2),
                          needed_minutes)


def _number(value: float | None, digits: int = 1, scale: float = 1.0) -> str:
    return "" if value is None else f"{value * scale:.{digits}f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(report: AuditReport) -> str:
    lines = ["# Training data audit", "",
             f"Checks run: {', '.join(report.methods)}. {len(report.flagged)} of {len(report.files)} file(s) flagged.",
             *[f"\n> {note}" for note in report.notes], "",
             "| speaker | folder | files | flagged | minutes of sound (unflagged) | needed | enough |",
             "|---|---|---|---|---|---|---|"]
    for s in report.speakers:
        lines.append(f"| {_cell(s.name)} | {_cell(str(s.folder))} | {s.files} | {s.flagged} | {s.minutes:.1f} | "
                     f"{s.needed_minutes:g} | {'yes' if s.enough else 'NO: add recordings'} |")
    if report.flagged:
        lines += ["", "## Flagged files", "", "| file | reason |", "|---|---|"]
        lines += [f"| {_cell(str(f.path))} | {_cell(f.reason)} |" for f in report.flagged]
    lines += ["", "## Every file", "",
              ("| file | speaker | seconds | Hz | LUFS | clipped % | silence % | SNR dB | embedding distance "
               "| flagged | reason |"), "|---|---|---|---|---|---|---|---|---|---|---|"]
    for f in report.files:
        lines.append(f"| {_cell(str(f.path))} | {_cell(f.speaker)} | {_number(f.seconds, 2)} | {f.sample_rate or ''} "
                     f"| {_number(f.loudness_lufs)} | {_number(f.clipped_share, 2, 100)} "
                     f"| {_number(f.silence_share, 0, 100)} | {_number(f.snr_db)} | {_number(f.embedding_distance, 3)} "
                     f"| {'yes' if f.flagged else 'no'} | {_cell(f.reason)} |")
    return "\n".join(lines) + "\n"


def table_csv(files) -> str:
    """``file,flagged,reason`` rows of audited files (anything with ``path``, ``flagged`` and ``reason``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["file", "flagged", "reason"])
    for f in files:
        writer.writerow([str(f.path), "yes" if f.flagged else "no", f.reason])
    return out.getvalue()


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (a report or a cache file; never into an audited folder)."""
    from voiceconv.files import atomic_output

    with atomic_output(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return Path(path)
