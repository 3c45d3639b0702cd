"""Summaries and report files (``report.json``, ``report.md``, plots) for an evaluation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from voiceconv.evaluate.harness import EvaluationResult
from voiceconv.files import atomic_output

#: Shown in report.md next to the numbers; keys are the per-utterance fields.
DEFINITIONS = {
    "sim_target": "speaker similarity to the target: cosine between the Resemblyzer embedding of the utterance and the "
                  "centroid of the target reference speaker's embeddings (1 = same voice)",
    "sim_source": "the same against the source reference speaker",
    "success_rate": "conversion success rate: share of utterances more similar to the target than to the source",
    "mcd_db": "mel-cepstral distortion against the parallel target utterance: WORLD spectral envelope -> SPTK "
              "mel-cepstrum (order 24, alpha 0.42 at 16 kHz), c0 excluded, voiced frames, DTW-aligned; "
              "10/ln10 * sqrt(2 * sum_d (c_d - c'_d)^2), in dB (lower is better)",
    "wer": "word error rate of pocketsphinx's US-English recognition (a fresh decoder per utterance) against the "
           "reference text, after lower-casing and removing punctuation (lower is better)",
    "dnsmos_ovrl": "DNSMOS P.835 overall quality predicted by speechmos (1-5, higher is better)",
    "dnsmos_sig": "DNSMOS P.835 speech-signal quality (1-5, higher is better)",
    "log_f0_mean": "mean of log F0 (Hz) over voiced frames (WORLD DIO + StoneMask, 5 ms frames)",
    "log_f0_std": "standard deviation of log F0 over voiced frames",
    "f0_rmse_hz": "F0 root-mean-square error in Hz against the parallel target, over DTW-aligned frames voiced in both",
    "f0_rmse_cents": "F0 accuracy: root-mean-square of 1200 * log2(F0 / intended F0) over the frames voiced in both, "
                     "frame by frame; the intended contour is the source's F0 moved by the pitch setting (log-Gaussian "
                     "transform for auto, +N semitones, or the source's own)",
    "f0_off_50c": "F0 accuracy: share of the frames voiced in both whose F0 is more than 50 cents off the intended contour",
    "f0_median_cents": "F0 accuracy: median of the same per-frame errors in cents (a systematic offset of the pitch)",
}
SUMMARY_FIELDS = ["sim_target", "sim_source", "mcd_db", "wer", "dnsmos_ovrl", "dnsmos_sig",
                  "log_f0_mean", "log_f0_std", "f0_rmse_hz", "f0_rmse_cents", "f0_off_50c", "f0_median_cents"]


def summarize(rows: list[dict]) -> dict:
    """System-level figures: count, success rate, and mean/std/median of each metric (NaNs ignored)."""
    summary: dict = {"utterances": len(rows)}
    if rows:
        summary["success_rate"] = float(np.mean([row["closer_to_target"] for row in rows]))
    for name in SUMMARY_FIELDS:
        values = np.array([row[name] for row in rows if name in row and np.isfinite(row[name])], dtype=float)
        if len(values):
            summary[name] = {"mean": float(values.mean()), "std": float(values.std()),
                             "median": float(np.median(values)), "n": int(len(values))}
    return summary


def build_report(result: EvaluationResult, inputs: dict) -> dict:
    """The whole report as one JSON-serialisable dict."""
    return {
        "inputs": inputs,
        "wer_reference": result.wer_reference,
        "definitions": DEFINITIONS,
        "speakers": result.speakers,
        "baselines": result.baselines,
        "summary": {name: summarize(rows) for name, rows in result.systems.items()},
        "utterances": result.systems,
        "skipped": result.skipped,
    }


def write_report(result: EvaluationResult, inputs: dict, out_dir: Path) -> dict:
    """Write report.json, report.md, distributions.png and similarity.png into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report = build_report(result, inputs)
    _write_text(out_dir / "report.json", json.dumps(_finite(report), indent=2))
    _write_text(out_dir / "report.md", markdown(report))
    plot_distributions(result, out_dir / "distributions.png")
    plot_similarity(result, out_dir / "similarity.png")
    return report


def markdown(report: dict) -> str:
    """A human-readable report: systems side by side, speakers, definitions, skipped files."""
    head = ["system", "n", "success", "sim target", "sim source", "MCD dB", "WER", "DNSMOS ovrl", "DNSMOS sig",
            "log-F0 mean", "log-F0 std", "F0 RMSE Hz", "F0 RMSE cents", "F0 off >50c", "F0 median error cents"]
    lines = ["# voiceconv evaluation", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, summary in report["summary"].items():
        cells = [name, str(summary["utterances"]), _percent(summary.get("success_rate"))]
        cells += [_mean(summary.get(key)) for key in SUMMARY_FIELDS]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"WER reference: {report['wer_reference']}.", "", "## Reference speakers", ""]
    for role, info in report["speakers"].items():
        lines.append(f"- {role}: `{info['folder']}`, {info['files']} files, median F0 {info['median_f0']:.1f} Hz, "
                     f"log-F0 mean {info['log_f0_mean']:.3f}, std {info['log_f0_std']:.3f}")
    for name, fitted in report.get("baselines", {}).items():
        if "warp" in fitted:
            lines.append(f"- baseline {name}: fitted envelope warp {fitted['warp']:.2f}, median F0 "
                         f"{fitted['source_median_f0']:.0f} Hz -> {fitted['target_median_f0']:.0f} Hz, on "
                         f"{fitted['fitted_on_files']} files per speaker")
        else:
            lines.append(f"- baseline {name}: the world-vc alignment, each envelope moved {fitted['blend']:g} of the "
                         f"way to its {fitted['k']} nearest of {fitted['target_frames']} target reference frames"
                         + _pull_details(fitted))
    lines += ["", "## Definitions", ""] + [f"- **{k}**: {v}" for k, v in report["definitions"].items()]
    lines += ["", "Values are means over utterances (± std in report.json); plots: distributions.png, similarity.png."]
    if report["skipped"]:
        lines += ["", "## Skipped", ""] + [f"- `{s['file']}`: {s['reason']}" for s in report["skipped"]]
    return "\n".join(lines) + "\n"


def _pull_details(fitted: dict) -> str:
    """How a kNN baseline's move was smoothed and matched, where it differs from frame by frame on the spectrum."""
    details = []
    if fitted.get("smooth_frames", 1) > 1:
        details.append(f"the move averaged over {fitted['smooth_frames']} frames")
    if fitted.get("phone_weight", 0) > 0:
        details.append(f"matched on phones too (weight {fitted['phone_weight']:g})")
    return "".join(f", {detail}" for detail in details)


def plot_distributions(result: EvaluationResult, path: Path) -> None:
    """Box plots of each per-utterance metric, one box per system."""
    plt = _pyplot()
    names = [n for n in SUMMARY_FIELDS if any(n in r and np.isfinite(r[n]) for rows in result.systems.values() for r in rows)]
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names):
        data = [[r[name] for r in rows if name in r and np.isfinite(r[name])] for rows in result.systems.values()]
        ax.boxplot([d if d else [np.nan] for d in data], tick_labels=list(result.systems))
        ax.set_title(name)
        ax.tick_params(axis="x", labelrotation=45)
    fig.tight_layout()
    _save_figure(fig, path)


def plot_similarity(result: EvaluationResult, path: Path) -> None:
    """Scatter of similarity to source (x) vs to target (y); above the diagonal = closer to the target."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, rows in result.systems.items():
        ax.scatter([r["sim_source"] for r in rows], [r["sim_target"] for r in rows], label=name, alpha=0.7)
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
    ax.set_xlabel("similarity to source speaker")
    ax.set_ylabel("similarity to target speaker")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save_figure(fig, path)


def _pyplot():
    from voiceconv.evaluate.extras import require

    matplotlib = require("matplotlib")
    matplotlib.use("Agg")
    return require("matplotlib.pyplot")


def _save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def _write_text(path: Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _finite(value):
    """JSON has no NaN: map non-finite floats to None, numpy scalars to Python ones."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _mean(stats: dict | None) -> str:
    return "–" if not stats else f"{stats['mean']:.2f}"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"
