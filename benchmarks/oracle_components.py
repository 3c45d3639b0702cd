"""Which part of the voice carries the similarity the formula stage misses? An oracle study on the dev pairs.

Each evaluation sentence of a pair is resynthesized by WORLD at its own timing from the WORLD voice changer's
frames (F0 moved by the log-Gaussian transform, envelope warped, both fitted on the training recordings), with
one or more of its parts replaced by the *parallel target sentence's* part, DTW-aligned frame by frame on
mel-cepstra. A part whose oracle lifts similarity a lot is where a learned stage can still gain; one that lifts
little is not worth learning. Every variant is scored by ``voiceconv evaluate`` (the pair's references and
judges of ``benchmarks/dev_pairs.py``)::

    .venv/bin/python benchmarks/oracle_components.py kathleen_rms -o runs/eval/oracle_kathleen

Variants: ``formula`` (nothing replaced), ``f0`` (the target's F0 contour where both are voiced), ``envelope``,
``aperiodicity``, ``envelope+aperiodicity`` and ``all`` (the three; what is left is the source's timing and
voicing). The table goes to ``OUT/table.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dev_pairs import PAIRS, evaluate, pair_folders, write_table  # noqa: E402

import torch  # noqa: E402

from voiceconv.audio import world  # noqa: E402
from voiceconv.audio.io import audio_files, load_audio, save_audio  # noqa: E402
from voiceconv.audio.knn import moving_average  # noqa: E402
from voiceconv.evaluate.mcd import all_pass_alpha, dtw_path, mel_cepstrum  # noqa: E402

SAMPLE_RATE = 16000
SETTINGS = world.REFERENCE_SETTINGS  # 5-ms frames, as the MCD judge
VARIANTS = {"formula": (), "f0": ("f0",), "envelope": ("envelope",), "aperiodicity": ("aperiodicity",),
            "envelope+aperiodicity": ("envelope", "aperiodicity"), "all": ("f0", "envelope", "aperiodicity"),
            # the envelope's move (target over formula, in log) only in part:
            "envelope/static": ("envelope/static",),  # one move per utterance (its voiced frames' mean)
            "envelope/mcep8": ("envelope/mcep8",),  # the move smoothed along frequency: mel-cepstrum order 8
            "envelope/mcep16": ("envelope/mcep16",),  # order 16 (about the learned stage's 16 bands)
            "envelope/mcep40": ("envelope/mcep40",),
            "envelope/smooth7": ("envelope/smooth7",),  # the move averaged over 7 frames (35 ms)
            "envelope/smooth21": ("envelope/smooth21",)}  # over 21 frames (105 ms)


def spread_waves(folder: Path, wanted: int = world.FIT_FILES) -> list[np.ndarray]:
    """Up to ``wanted`` recordings of ``folder``, spread evenly over its files."""
    files = audio_files(folder)
    return [load_audio(files[i], SAMPLE_RATE) for i in world.spread_picks(len(files), wanted)]


def sentence_pairs(pair: dict[str, Path]) -> list[tuple[Path, Path]]:
    """Each evaluation sentence of ``pair`` with the parallel target sentence of the same name."""
    parallel = {path.stem: path for path in audio_files(pair["parallel"])}
    return [(path, parallel[path.stem]) for path in audio_files(pair["source"])]


def save_converted(path: Path, wav: np.ndarray) -> None:
    """``wav`` written to ``path`` (folders made), scaled down to a 0.9 peak if it goes above."""
    path.parent.mkdir(parents=True, exist_ok=True)
    peak = float(np.max(np.abs(wav))) if len(wav) else 0.0
    save_audio(path, wav / max(peak / 0.9, 1.0), SAMPLE_RATE)


def matched_frames(source: world.WorldFrames, target: world.WorldFrames) -> np.ndarray:
    """For each source frame, the index of the target frame DTW aligns it with (mel-cepstra without c0)."""
    source_index, target_index = dtw_path(mel_cepstrum(source.envelope, SAMPLE_RATE)[:, 1:],
                                          mel_cepstrum(target.envelope, SAMPLE_RATE)[:, 1:])
    matched = np.zeros(len(source.f0), dtype=int)
    matched[source_index] = target_index  # the last pairing of each source frame
    return matched


def oracle_frames(source: world.WorldFrames, target: world.WorldFrames, matched: np.ndarray,
                  alignment: world.Alignment, parts: tuple[str, ...]) -> world.WorldFrames:
    """The voice changer's frames of ``source``, with ``parts`` taken from ``target``'s frames ``matched`` to them."""
    f0 = world.transform_f0(source.f0, alignment)
    envelope = world.warp_envelope(source.envelope, alignment.warp)
    aperiodicity = source.aperiodicity
    if "f0" in parts:
        target_f0 = target.f0[matched]
        both = (f0 > 0) & (target_f0 > 0)
        f0 = np.where(both, target_f0, f0)
    if "envelope" in parts:
        envelope = target.envelope[matched]
    partial_moves = [part.split("/")[1] for part in parts if part.startswith("envelope/")]
    if partial_moves:
        move = np.log(target.envelope[matched] + 1e-12) - np.log(envelope + 1e-12)  # [T, bins]
        envelope = envelope * np.exp(part_of_move(move, partial_moves[0], source.f0 > 0))
    if "aperiodicity" in parts:
        aperiodicity = target.aperiodicity[matched]
    return world.WorldFrames(np.ascontiguousarray(f0), np.ascontiguousarray(envelope),
                             np.ascontiguousarray(aperiodicity))


def part_of_move(move: np.ndarray, part: str, voiced: np.ndarray) -> np.ndarray:
    """Part of a log-envelope move ``[T, bins]``: its voiced mean (``static``), smoothed along frequency to a
    mel-cepstrum of order N (``mcepN``) or averaged over N frames (``smoothN``)."""
    import pysptk

    if part == "static":
        return np.broadcast_to(move[voiced].mean(axis=0) if voiced.any() else move.mean(axis=0), move.shape)
    if part.startswith("mcep"):
        alpha, fft_size = all_pass_alpha(SAMPLE_RATE), 2 * (move.shape[1] - 1)
        cepstrum = pysptk.sp2mc(np.exp(np.ascontiguousarray(move, dtype=np.float64)), order=int(part[4:]),
                                alpha=alpha)  # [T, order + 1] of the move as a power spectrum
        return np.log(pysptk.mc2sp(cepstrum, alpha=alpha, fftlen=fft_size))
    return moving_average(torch.from_numpy(move.T), int(part[6:])).T.numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pair", choices=sorted(PAIRS))
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args()
    pair = pair_folders(args.pair)
    alignment = world.fit_alignment(spread_waves(pair["source-ref"]), spread_waves(pair["target-ref"]), SAMPLE_RATE,
                                    settings=SETTINGS)  # the WORLD voice changer's, fitted on the training recordings
    print(f"alignment: warp {alignment.warp:.3f}", flush=True)
    for path, target_path in sentence_pairs(pair):
        wav = load_audio(path, SAMPLE_RATE)
        source = world.analyse(wav, SAMPLE_RATE, SETTINGS)
        target = world.analyse(load_audio(target_path, SAMPLE_RATE), SAMPLE_RATE, SETTINGS)
        matched = matched_frames(source, target)  # [T]
        for name in args.variants:
            frames = oracle_frames(source, target, matched, alignment, VARIANTS[name])
            save_converted(args.out / "audio" / name / f"{path.stem}.wav",
                           world.synthesize(frames, SAMPLE_RATE, len(wav), SETTINGS))
    rows = {}
    for name in args.variants:
        summary = evaluate(args.pair, ["--converted", str(args.out / "audio" / name)], args.out / name)
        rows[name] = summary.pop("converted")
    write_table(rows, args.out / "table.md", "oracle part")


if __name__ == "__main__":
    main()
