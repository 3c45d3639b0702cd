"""The voiceconv web page: ``python app.py`` serves http://127.0.0.1:7860 with the default model.

Thin on purpose: parses the options and launches the page that
:func:`voiceconv.web.build_app` builds (needs the ``app`` extra: ``pip install -e ".[app]"``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: idle threads sleep (see voiceconv/cli.py)
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from voiceconv.errors import VoiceconvError  # noqa: E402
from voiceconv.web.limits import Limits  # noqa: E402

SAMPLES = Path(__file__).resolve().parent / "samples"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line options of ``python app.py``."""
    defaults = Limits()
    p = argparse.ArgumentParser(description="Serve the voiceconv web page (Convert, Batch, Faces, Models).")
    p.add_argument("--model", type=Path, help="model file to select first (added to those in --models-dir)")
    p.add_argument("--models-dir", type=Path, default=SAMPLES / "models",
                   help="folder of *.safetensors voice and face models")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--share", action="store_true", help="also publish a temporary public gradio.live link")
    p.add_argument("--max-upload-mb", type=float, default=defaults.max_upload_mb, help="largest uploaded file")
    p.add_argument("--max-seconds", type=float, default=defaults.max_seconds, help="longest clip converted")
    p.add_argument("--max-batch-files", type=int, default=defaults.max_batch_files, help="most files in one batch")
    p.add_argument("--concurrency", type=int, default=defaults.concurrency, help="requests converted at once")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Build the page and serve it until interrupted; returns the exit status."""
    args = parse_args(argv)
    try:
        from voiceconv.web import build_app, launch_app

        limits = Limits(max_upload_mb=args.max_upload_mb, max_seconds=args.max_seconds,
                        max_batch_files=args.max_batch_files, concurrency=args.concurrency)
        examples = sorted((SAMPLES / "audio").glob("*.flac"))
        faces = sorted(p for p in (SAMPLES / "faces").glob("*") if p.suffix in (".jpg", ".png"))
        demo = build_app(args.models_dir, args.model, limits, examples, face_examples=faces)
    except VoiceconvError as err:
        print(f"app.py: error: {err}", file=sys.stderr)
        return 1
    try:
        launch_app(demo, limits, args.host, args.port, args.share,
                   allowed_paths=[SAMPLES / "audio", SAMPLES / "faces"])
    except OSError as err:  # e.g. the port is taken
        print(f"app.py: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
