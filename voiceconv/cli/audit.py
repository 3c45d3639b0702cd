"""``voiceconv audit``: audit speakers' training recordings (:mod:`voiceconv.audit`), and the warning
``voiceconv train`` prints about flagged files."""

from __future__ import annotations

import sys
from pathlib import Path

from voiceconv.errors import ConfigError, VoiceconvError


def add_verbs(verbs) -> None:
    """Register ``audit``."""
    from voiceconv.audit import DEFAULT_METHODS, DEFAULT_NEEDED_MINUTES, METHODS

    p = verbs.add_parser("audit", help="audit speaker folders: minutes, per-file measurements, outliers",
                         description="Audit training recordings, one folder per speaker (searched recursively): "
                                     "minutes of sound against what the recipe needs, each file's duration, "
                                     "sample rate, loudness, clipping, silence and SNR, and the files that do not "
                                     "belong (unreadable, too short, clipped, noise, another voice, music). "
                                     "Prints a Markdown report; exit status 1 when any file is flagged. The "
                                     "folders are only read.")
    p.add_argument("folders", type=Path, nargs="+", metavar="FOLDER", help="one folder of recordings per speaker")
    p.add_argument("--recipe", type=Path, help="voice or speech-vae recipe: the minutes it needs per speaker "
                                               "(its data.min_seconds)")
    p.add_argument("--needed-minutes", type=float, metavar="MIN",
                   help=f"minutes of sound needed per speaker (default: the recipe's, else {DEFAULT_NEEDED_MINUTES:g})")
    p.add_argument("--methods", nargs="+", choices=["checks", *METHODS], default=["checks", *DEFAULT_METHODS],
                   help="checks: the per-file checks (always run); embedding: speaker-embedding distance to the "
                        "folder's centroid; likelihood: a Gaussian of the folder's spectrogram frames (runs instead "
                        "of embedding when the eval extra is missing). Default: %(default)s")
    p.add_argument("--csv", type=Path, metavar="PATH", help="also write file,flagged,reason for every file")
    p.add_argument("--markdown", type=Path, metavar="PATH", help="also write the report to this file")
    p.set_defaults(run=_run_audit)


def _run_audit(args) -> int:
    from voiceconv.audit import audit_folders

    methods = [m for m in args.methods if m != "checks"]
    report = audit_folders(args.folders, needed_minutes(args.recipe, args.needed_minutes), methods=methods)
    print(report.markdown(), end="")
    if args.csv:
        report.write_csv(args.csv)
    if args.markdown:
        report.write_markdown(args.markdown)
    return 1 if report.flagged else 0


def needed_minutes(recipe: Path | None, given: float | None) -> float:
    """``given``, else the recipe's ``data.min_seconds`` in minutes, else the library's default."""
    from voiceconv.audit import DEFAULT_NEEDED_MINUTES, needed_minutes_of_recipe

    if given is not None:
        if given < 0:
            raise ConfigError(f"--needed-minutes {given:g} must not be negative")
        return given
    if recipe is None:
        return DEFAULT_NEEDED_MINUTES
    from voiceconv.families import family, recipe_kind
    from voiceconv.train.recipes import load_recipe_as

    loaded = load_recipe_as(family(recipe_kind(recipe)).recipe_class(), recipe)
    if not hasattr(loaded.data, "min_seconds"):
        raise ConfigError(f"{recipe}: a {recipe_kind(recipe)} recipe does not train on recordings; pass a voice or "
                          "speech-vae recipe, or --needed-minutes")
    return needed_minutes_of_recipe(loaded)


def warn_about_flagged_recordings(folders: list[Path], run_dir: Path, stream=None) -> int:
    """Audit the speaker folders a training run is about to read (cheap checks and speaker embeddings, results
    kept in ``run_dir/cache``) and print one warning line per flagged file; returns how many were flagged.
    Problems the training itself reports (a missing folder, no audio) are left to it."""
    from voiceconv.audit import audit_folders

    stream = stream or sys.stderr
    try:
        report = audit_folders(folders, cache_dir=run_dir / "cache")
    except VoiceconvError:
        return 0
    for f in report.flagged:
        print(f"voiceconv train: warning: {f.path}: {f.reason}", file=stream)
    for note in report.notes:
        print(f"voiceconv train: note: {note}", file=stream)
    if report.flagged:
        print(f"voiceconv train: {len(report.flagged)} flagged recording(s) will be trained on; move them out of "
              "the folder to leave them out (`voiceconv audit FOLDER` reports every file; --no-audit skips "
              "this check)", file=stream)
    return len(report.flagged)
