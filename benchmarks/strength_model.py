"""A copy of a voice model with its learned envelope correction at another strength (``G(x) = x + s * delta(x)``,
:func:`voiceconv.modelfiles.voice.with_strength`; 0 is the untrained start), to score what held-back selection
over ``data.strengths`` would ship through ``voiceconv evaluate`` or ``benchmarks/held_back_score.py``.

    .venv/bin/python benchmarks/strength_model.py MODEL OUT --strength 0.5
"""

from __future__ import annotations

import argparse
from pathlib import Path

from voiceconv.modelfiles.format import load_model_file, save_model_file
from voiceconv.modelfiles.voice import with_strength


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--strength", type=float, required=True)
    args = parser.parse_args()
    tensors, header = load_model_file(args.model)
    if header.get("model", {}).get("generator") != "envelope1d":
        raise SystemExit(f"{args.model}: only envelope1d generators have a correction to scale")
    header = {k: v for k, v in header.items() if k not in ("format", "version")}
    header["training"] = {**header.get("training", {}), "strength": args.strength}
    save_model_file(args.out, with_strength(tensors, args.strength), header)
    print(f"{args.out}: strength {args.strength:g}")


if __name__ == "__main__":
    main()
