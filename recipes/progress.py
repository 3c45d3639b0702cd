"""Results against training steps: evaluate each model snapshot of a run and tabulate them.

A run trained with ``--set train.export_every=N`` leaves ``RUN/exports/model_step<N>.safetensors``.
This script runs ``voiceconv evaluate`` on every snapshot that has no report
yet (reports go to ``RUN/eval/step<N>/``) and prints a Markdown table of the
figures against steps and training hours, ready for a recipe README:

    .venv/bin/python recipes/progress.py runs/vcc2016_sf1_tm1 -- \\
        --source ../shared/data/vcc2016/dev/SF1 --target-ref ../shared/data/vcc2016/dev/TM1 \\
        --parallel ../shared/data/vcc2016/dev/TM1

Everything after ``--`` goes to ``voiceconv evaluate`` (except ``--model`` and ``-o``).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

from voiceconv.modelfiles.format import read_header

SNAPSHOT = re.compile(r"model_step(\d+)\.safetensors$")


def snapshots(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of the run's exported snapshots and its final model, by step."""
    found = {int(m.group(1)): p for p in (run_dir / "exports").glob("model_step*.safetensors")
             if (m := SNAPSHOT.search(p.name))}
    final = run_dir / "model.safetensors"
    if final.exists():
        found.setdefault(read_header(final)["training"]["steps"], final)
    return sorted(found.items())


def evaluate(step: int, model: Path, run_dir: Path, evaluate_args: list[str]) -> Path:
    """The report of one snapshot, computing it when missing."""
    out = run_dir / "eval" / f"step{step:07d}"
    if not (out / "report.json").exists():
        subprocess.run([sys.executable, "-m", "voiceconv", "evaluate", "--model", str(model), "-o", str(out),
                        *evaluate_args], check=True)
    return out / "report.json"


def table_row(step: int, model: Path, report_path: Path) -> str:
    summary = json.loads(report_path.read_text())["summary"]["converted"]
    hours = read_header(model)["training"]["training_seconds"] / 3600
    mean = lambda key: summary[key]["mean"] if summary.get(key) else float("nan")  # noqa: E731
    return (f"| {step} | {hours:.2f} | {summary['success_rate']:.0%} | {mean('sim_target'):.3f} | "
            f"{mean('sim_source'):.3f} | {mean('mcd_db'):.2f} | {mean('wer'):.2f} | {mean('dnsmos_ovrl'):.2f} |")


def main() -> None:
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv[:split])
    evaluate_args = argv[split + 1:]
    rows = ["| steps | hours | success | sim target | sim source | MCD dB | WER | DNSMOS ovrl |",
            "|---|---|---|---|---|---|---|---|"]
    for step, model in snapshots(args.run_dir):
        rows.append(table_row(step, model, evaluate(step, model, args.run_dir, evaluate_args)))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
