"""Score voice models on the development pairs with ``voiceconv evaluate``, beside its baselines, in one table.

The pairs of issue 19: VCC2016 SF1 -> TM1 and SM1 -> TF2 (the 10 dev sentences; WER is agreement with the
recognizer's transcript of the unconverted source) and Kathleen -> rms (the 23 evaluation prompts of
``recipes/kathleen_rms/prepare.py``; WER against the prompts), in either direction (``--direction b2a`` converts
TM1, TF2 and rms to the first speaker). Reference speakers are the *training*
recordings, so neither the speaker centroids nor the knn-vc baseline's frames include a test sentence::

    .venv/bin/python benchmarks/dev_pairs.py sf1_tm1 --model step0=runs/sf1_tm1_step0/model.safetensors \\
        --model selected=runs/sf1_tm1/best.safetensors --baselines -o runs/eval/sf1_tm1

Each model is evaluated in its own ``voiceconv evaluate`` run (the baselines with the first); the table of
every system goes to ``OUT/table.md`` and standard output.

Ten sentences leave a WER that moves by 0.1 between checkpoints. On the VCC2016 pairs, whose training folders are
parallel too (same file name, same sentence), ``--held-back N`` adds the N training recordings per speaker that a run
with ``data.held_back`` >= N never trained on (``split_held_back``'s picks) to the test sentences, and leaves them out
of the reference recordings.

Twenty-three prompts leave a WER whose change between two models has a 95% interval about 0.15 wide
(``benchmarks/paired_difference.py``). On Kathleen <-> rms, ``--wide N`` adds N prompts that only the *target* side
trained on (evenly spaced): a2b, Kathleen's own recordings of rms's prompts a0286-a0570; b2a, flite rms readings of
Kathleen's prompts a0001-a0285. They are judged against their prompts, with the target side's training recording of
the same prompt as the parallel one. No model read the source speaker saying them, but the target side trained on
them, so they are development sentences (for choosing settings), not evaluation ones.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VCC = ROOT.parent / "shared" / "data" / "vcc2016"
KATHLEEN = ROOT / "runs" / "data" / "kathleen_rms"
SHARED_KATHLEEN = ROOT.parent / "shared" / "data" / "kathleen"


def vcc_speaker(name: str) -> dict[str, Path]:
    return {"train": VCC / "train" / name, "test": VCC / "dev" / name}


def kathleen_speaker(name: str) -> dict[str, Path]:
    return {"train": KATHLEEN / name / "train", "test": KATHLEEN / name / "eval"}


PAIRS = {  # (speaker a, speaker b, transcripts of the test sentences or None)
    "sf1_tm1": (vcc_speaker("SF1"), vcc_speaker("TM1"), None),
    "sm1_tf2": (vcc_speaker("SM1"), vcc_speaker("TF2"), None),
    "kathleen_rms": (kathleen_speaker("kathleen"), kathleen_speaker("rms"), KATHLEEN / "transcripts.tsv"),
}


def with_held_back(pair: str, count: int, folder: Path) -> tuple[dict, dict, None]:
    """``pair`` (a VCC2016 one) with each speaker's ``count`` held-back training recordings moved to its test
    sentences: copies under ``folder``."""
    sys.path.insert(0, str(ROOT))
    from voiceconv.audio.io import audio_files
    from voiceconv.data.speakers import split_held_back

    a, b, transcripts = PAIRS[pair]
    if transcripts is not None:
        raise SystemExit(f"--held-back needs parallel training folders (the VCC2016 pairs), not {pair}")
    speakers = []
    for speaker in (a, b):
        train, held_back = split_held_back(audio_files(speaker["train"]), count)
        parts = {"train": train, "test": [*audio_files(speaker["test"]), *held_back]}
        copied = {}
        for part, files in parts.items():
            copied[part] = folder / speaker["train"].name / part
            copied[part].mkdir(parents=True, exist_ok=True)
            for file in files:
                copy_once(file, copied[part] / file.name)
        speakers.append(copied)
    return speakers[0], speakers[1], None


def with_wide(count: int, folder: Path, direction: str = "a2b") -> tuple[dict, dict, Path]:
    """Kathleen <-> rms with ``count`` more test sentences per side: the prompts that only the *other* side trained
    on, evenly spaced. a2b adds Kathleen's own recordings of rms's training prompts; b2a adds flite rms readings of
    Kathleen's training prompts (synthesized as ``recipes/kathleen_rms/prepare.py`` does). The other side's
    training recording of the same prompt becomes the parallel target and the prompts join the transcripts; copies
    under ``folder``."""
    a, b, transcripts = PAIRS["kathleen_rms"]
    prompts = dict(line.split("\t", 1) for line in (SHARED_KATHLEEN / "transcripts.tsv").read_text().splitlines()
                   if "\t" in line)
    source, target = (a, b) if direction == "a2b" else (b, a)
    untrained = sorted(path.stem for path in target["train"].glob("arctic_a*.flac"))  # source never read these
    picks = [untrained[round(i * (len(untrained) - 1) / max(count - 1, 1))] for i in range(count)]
    tests = {}
    for side, speaker in (("source", source), ("target", target)):
        test = tests[side] = folder / speaker["train"].parent.name / "test"
        test.mkdir(parents=True, exist_ok=True)
        for file in sorted(speaker["test"].glob("*.flac")):
            copy_once(file, test / file.name)
    for stem in picks:
        copy_once(target["train"] / f"{stem}.flac", tests["target"] / f"{stem}.flac")
        if direction == "a2b":
            copy_once(SHARED_KATHLEEN / "wav" / f"{stem}.flac", tests["source"] / f"{stem}.flac")
        elif not (tests["source"] / f"{stem}.flac").exists():
            synthesize_rms(prompts[stem], tests["source"] / f"{stem}.flac")
    wide_transcripts = folder / "transcripts.tsv"
    wide_transcripts.write_text(transcripts.read_text().rstrip("\n") + "\n"
                                + "".join(f"{stem}\t{prompts[stem]}\n" for stem in picks))
    folders = ({"train": source["train"], "test": tests["source"]}, {"train": target["train"], "test": tests["target"]})
    return (*(folders if direction == "a2b" else folders[::-1]), wide_transcripts)  # speakers a, b


def first_sentences(pair: str, count: int, folder: Path, direction: str = "a2b") -> tuple[dict, dict, Path | None]:
    """``pair`` with only the first ``count`` test sentences of the side ``direction`` converts from (copies under
    ``folder``)."""
    a, b, transcripts = PAIRS[pair]
    source = a if direction == "a2b" else b
    chosen = folder / "sentences"
    chosen.mkdir(parents=True, exist_ok=True)
    for file in sorted(source["test"].glob("*"))[:count]:
        copy_once(file, chosen / file.name)
    source = {**source, "test": chosen}
    return (source, b, transcripts) if direction == "a2b" else (a, source, transcripts)


def copy_once(file: Path, copy: Path) -> None:
    """A copy of ``file`` at ``copy`` unless one is there (the evaluation reads no linked file)."""
    if not copy.exists():
        shutil.copyfile(file, copy)


def synthesize_rms(text: str, dest: Path) -> None:
    """``text`` read by flite's rms voice into ``dest``, as the recipe's data were made."""
    sys.path.insert(0, str(ROOT / "recipes" / "kathleen_rms"))
    from prepare import synthesize

    synthesize(text, dest)


def pair_folders(pair: str, direction: str = "a2b", speakers: tuple | None = None) -> dict[str, Path]:
    """The folders of ``pair`` converted in ``direction`` (b2a: speaker b's test sentences to a), named as
    ``voiceconv evaluate``'s options: source, target-ref, source-ref, parallel (and transcripts where known);
    ``speakers``: the pair's folders as :func:`with_held_back` gives them."""
    a, b, transcripts = speakers or PAIRS[pair]
    source, target = (a, b) if direction == "a2b" else (b, a)
    folders = {"source": source["test"], "target-ref": target["train"], "source-ref": source["train"],
               "parallel": target["test"]}
    return folders if transcripts is None else {**folders, "transcripts": transcripts}


def pair_options(pair: str, direction: str, speakers: tuple | None = None) -> list[str]:
    """``voiceconv evaluate`` options for ``pair`` converted in ``direction`` (see :func:`pair_folders`)."""
    options = {"direction": direction, **pair_folders(pair, direction, speakers)}
    return [item for key, value in options.items() for item in (f"--{key}", str(value))]


COLUMNS = [("success", "success_rate", "{:.0%}"), ("sim target", "sim_target", "{:.3f}"),
           ("sim source", "sim_source", "{:.3f}"), ("MCD dB", "mcd_db", "{:.2f}"), ("WER", "wer", "{:.3f}"),
           ("DNSMOS", "dnsmos_ovrl", "{:.2f}"), ("F0 off >50c", "f0_off_50c", "{:.0%}")]


def evaluate(pair: str, system: list[str], out: Path, direction: str = "a2b", speakers: tuple | None = None) -> dict:
    """``voiceconv evaluate`` on ``pair`` in ``direction`` of what ``system`` names (``--model PATH``, and any
    further options); its report's summary."""
    command = [sys.executable, "-m", "voiceconv", "evaluate", *system, *pair_options(pair, direction, speakers),
               "-o", str(out)]
    subprocess.run(command, check=True, cwd=ROOT)
    return json.loads((out / "report.json").read_text())["summary"]


def cell(summary: dict, key: str, style: str) -> str:
    value = summary.get(key)
    value = value.get("mean") if isinstance(value, dict) else value
    return "-" if value is None or value != value else style.format(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pair", choices=sorted(PAIRS))
    parser.add_argument("--model", action="append", required=True, metavar="NAME=PATH")
    parser.add_argument("--baselines", action="store_true")
    parser.add_argument("--direction", choices=("a2b", "b2a"), default="a2b",
                        help="b2a converts the pair's second speaker's test sentences to the first (default %(default)s)")
    parser.add_argument("--held-back", type=int, default=0, metavar="N",
                        help="VCC2016 pairs: also test on the N held-back training recordings per speaker")
    parser.add_argument("--wide", type=int, default=0, metavar="N",
                        help="Kathleen <-> rms: also test on N prompts per side that only the target side trained on")
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args()
    speakers = with_held_back(args.pair, args.held_back, args.out / "sentences") if args.held_back else None
    if args.wide:
        if args.pair != "kathleen_rms":
            raise SystemExit("--wide adds the prompts the other side trained on: it needs kathleen_rms")
        speakers = with_wide(args.wide, args.out / "sentences", args.direction)
    rows = {}
    for index, spec in enumerate(args.model):
        name, _, path = spec.partition("=")
        baselines = ["--baselines"] if args.baselines and index == 0 else []
        summary = evaluate(args.pair, ["--model", path, *baselines], args.out / name, args.direction, speakers)
        rows[name] = summary.pop("converted")
        rows.update({f"baseline {system}": values for system, values in summary.items()} if index == 0 else {})
    write_table(rows, args.out / "table.md", "system")


def write_table(rows: dict[str, dict], path: Path, first_column: str) -> None:
    """The summaries ``rows`` (by name) as one Markdown table, written to ``path`` and printed."""
    lines = [f"| {first_column} | " + " | ".join(title for title, _, _ in COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(cell(summary, key, style) for _, key, style in COLUMNS) + " |"
              for name, summary in rows.items()]
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
