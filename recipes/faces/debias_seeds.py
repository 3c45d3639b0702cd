"""The debiasing comparison over several training seeds and settings, in parallel, summarised per setting.

One ``voiceconv faces compare`` per (setting, seed) goes to ``OUT/<setting>/seed<k>/``
(finished ones are skipped, so a rerun resumes). Then a Markdown table: per
setting and model, the mean and standard deviation over seeds of each group's
held-out accuracy, the worst-group accuracy and the overall accuracy; how many
seeds the DB-VAE's worst group beat the classifier's; and the minority's share
of the DB-VAE's sampling. One seed is one test image too few to trust: a
1-point difference on 100 test images is a single image.

    .venv/bin/python recipes/faces/debias_seeds.py recipes/faces_dbvae.yaml --out runs/debias_seeds \\
        --seeds 0 1 2 3 --workers 2 --setting base --setting latent8 model.latent=8

``--setting NAME [KEY=VALUE ...]`` (repeatable) names a set of recipe overrides; a ``models:NAME,NAME``
entry chooses what that setting trains (``--models`` of ``voiceconv faces compare``, e.g. ``models:dbvae`` for a
DB-VAE setting whose classifier would repeat another setting's). Everything after ``--`` goes to every
``voiceconv faces compare`` (e.g. ``--faces DIR``, or ``--groups DIR`` for the lecture's test faces, whose detection
rates per group are then tabulated too, mean ± standard deviation over seeds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def run_compare(recipe: Path, out: Path, seed: int, overrides: list[str], extra: list[str], threads: int) -> int:
    """One comparison (skipped when its report exists); returns the exit status."""
    if (out / "report.json").exists():
        return 0
    out.mkdir(parents=True, exist_ok=True)
    models = [name for o in overrides if o.startswith("models:") for name in o.removeprefix("models:").split(",")]
    settings = [o for o in overrides if not o.startswith("models:")]
    command = [sys.executable, "-m", "voiceconv", "faces", "compare", str(recipe), "--out", str(out),
               "--set", f"train.seed={seed}", "--set", f"train.threads={threads}",
               *[arg for o in settings for arg in ("--set", o)], *(["--models", *models] if models else []), *extra]
    if (out / "classifier").exists() or (out / "dbvae").exists():
        command.append("--resume")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with open(out / "compare.log", "a", encoding="utf-8") as log:
        status = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    print(f"{out}: {'done' if status == 0 else f'FAILED (exit {status}), see compare.log'}", flush=True)
    return status


def summarise(out: Path, settings: dict[str, list[str]], seeds: list[int]) -> str:
    """The Markdown table of every finished comparison under ``out``."""
    lines = []
    for name, overrides in settings.items():
        reports = [json.loads(p.read_text()) for s in seeds if (p := out / name / f"seed{s}" / "report.json").exists()]
        if not reports:
            continue
        lines += _setting_table(name, overrides, reports)
    return "\n".join(lines)


def _setting_table(name: str, overrides: list[str], reports: list[dict]) -> list[str]:
    groups = list(next(iter(reports[0]["results"].values()))["groups"])
    counts = reports[0]["images"]["test"]
    minority = reports[0]["split"].get("minority")
    lines = [f"### {name}: {' '.join(overrides) or 'the recipe as it is'} ({len(reports)} seeds)", "",
             "| model | " + " | ".join(f"{g} (n={counts[g]})" for g in groups) + " | worst group | overall |",
             "|" + "---|" * (len(groups) + 3)]
    for model in reports[0]["results"]:
        results = [r["results"][model] for r in reports]
        cells = [_mean_sd([r["groups"][g]["accuracy"] for r in results]) for g in groups]
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {_mean_sd([r['worst_group_accuracy'] for r in results])}"
                     f" | {_mean_sd([r['overall'] for r in results])} |")
    if {"dbvae", "classifier"} <= set(reports[0]["results"]):
        wins = sum(r["results"]["dbvae"]["worst_group_accuracy"] > r["results"]["classifier"]["worst_group_accuracy"]
                   for r in reports)
        lines += ["", f"DB-VAE worst group above the classifier's in {wins} of {len(reports)} seeds."]
    if minority and "resampling" in reports[0]:
        shares = [r["resampling"]["sampling_share"][minority] for r in reports]
        lines.append(f"{minority}'s share of the DB-VAE's sampling: uniform {shares[0]['uniform']:.1%} -> "
                     f"{_mean_sd([s['debiased'] for s in shares], percent=True)}.")
    lines.append("Training images: " + ", ".join(f"{k} {v}" for k, v in reports[0]["images"]["train"].items()) + ".")
    if "external_groups" in reports[0]:
        lines += ["", *_external_table(reports)]
    return lines + [""]


def _external_table(reports: list[dict]) -> list[str]:
    """Detection rate per group of the ``--groups`` faces, mean ± sd over seeds, one row per model."""
    first = reports[0]["external_groups"]
    groups = list(next(iter(first["results"].values()))["groups"])
    sizes = {g: next(iter(first["results"].values()))["groups"][g]["images"] for g in groups}
    lines = [f"Faces called faces per group of {first['folder']}:", "",
             "| model | " + " | ".join(f"{g} (n={sizes[g]})" for g in groups) + " | worst group | overall |",
             "|" + "---|" * (len(groups) + 3)]
    for model in first["results"]:
        results = [r["external_groups"]["results"][model] for r in reports]
        cells = [_mean_sd([r["groups"][g]["rate"] for r in results]) for g in groups]
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {_mean_sd([r['worst_rate'] for r in results])} | "
                     f"{_mean_sd([r['overall'] for r in results])} |")
    return lines


def _mean_sd(values: list[float], percent: bool = False) -> str:
    scale, unit = (100, "%") if percent else (1, "")
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    digits = 1 if percent else 3
    return f"{scale * statistics.mean(values):.{digits}f}{unit} ± {scale * sd:.{digits}f}{unit}"


def main() -> None:
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", type=Path, help="a face-dbvae recipe")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3], help="train.seed values")
    parser.add_argument("--setting", nargs="+", action="append", metavar=("NAME", "KEY=VALUE"),
                        help="a named set of recipe overrides (repeatable; default: the recipe alone, as 'base')")
    parser.add_argument("--workers", type=int, default=1, help="comparisons at once")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per comparison")
    parser.add_argument("--summary-only", action="store_true", help="only tabulate what has finished")
    args = parser.parse_args(argv[:split])
    settings = {s[0]: s[1:] for s in args.setting} if args.setting else {"base": []}
    jobs = [(args.out / name / f"seed{seed}", seed, overrides)
            for seed in args.seeds for name, overrides in settings.items()]
    failed = 0
    if not args.summary_only:
        with ThreadPoolExecutor(args.workers) as pool:
            statuses = pool.map(lambda job: run_compare(args.recipe, job[0], job[1], job[2], argv[split + 1:],
                                                        args.threads), jobs)
            failed = sum(status != 0 for status in statuses)
    table = summarise(args.out, settings, args.seeds)
    (args.out / "summary.md").write_text(table + "\n", encoding="utf-8")
    print(table)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
