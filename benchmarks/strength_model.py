"""A copy of a voice model with its learned envelope correction at another strength (``G(x) = x + s * delta(x)``,
:func:`voiceconv.modelfiles.voice.with_strength`; 0 is the untrained start), to score what held-back selection
over ``data.strengths`` would ship through ``voiceconv evaluate`` or ``benchmarks/held_back_score.py``;
``--output-spread`` also maps its output onto other statistics (``model.output_spread``: ``target`` or ``input``).

    .venv/bin/python benchmarks/strength_model.py MODEL OUT --strength 0.5 [--output-spread input]
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
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument("--output-spread", choices=("target", "input"))
    args = parser.parse_args()
    tensors, header = load_model_file(args.model)
    if header.get("model", {}).get("generator") != "envelope1d":
        raise SystemExit(f"{args.model}: only envelope1d generators have a correction to scale")
    header = {k: v for k, v in header.items() if k not in ("format", "version")}
    header["training"] = {**header.get("training", {}), "strength": args.strength}
    if args.output_spread:
        header["model"] = {**header["model"], "output_spread": args.output_spread}
    save_model_file(args.out, with_strength(tensors, args.strength), header)
    print(f"{args.out}: strength {args.strength:g}, output spread {header['model'].get('output_spread', 'target')}")


if __name__ == "__main__":
    main()
