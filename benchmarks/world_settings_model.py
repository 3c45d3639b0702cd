"""A copy of a voice model whose WORLD alignment analyses with other settings (its fitted F0 statistics, warp,
weights and everything else kept), to score an old model with a new analysis through ``voiceconv evaluate``.

    .venv/bin/python benchmarks/world_settings_model.py MODEL OUT [--dio-speed 2] [--envelope-ms 16]
        [--aperiodicity-ms 16] [--no-stonemask]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from voiceconv.audio.world import Alignment
from voiceconv.modelfiles.format import load_model_file, save_model_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--dio-speed", type=int)
    parser.add_argument("--envelope-ms", type=float)
    parser.add_argument("--aperiodicity-ms", type=float)
    parser.add_argument("--no-stonemask", action="store_true")
    args = parser.parse_args()
    tensors, header = load_model_file(args.model)
    alignment = Alignment.from_dict(header["alignment"])
    changes = {"dio_speed": args.dio_speed, "envelope_period_ms": args.envelope_ms,
               "aperiodicity_period_ms": args.aperiodicity_ms, "stonemask": False if args.no_stonemask else None}
    settings = replace(alignment.settings, **{k: v for k, v in changes.items() if v is not None})
    header = {k: v for k, v in header.items() if k not in ("format", "version")}
    header["alignment"] = replace(alignment, settings=settings.check()).to_dict()
    save_model_file(args.out, tensors, header)
    print(f"{args.out}: WORLD {header['alignment']['world']}")


if __name__ == "__main__":
    main()
