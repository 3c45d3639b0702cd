"""The voiceconv web page's launcher: options, passwords and serving, behind ``python app.py`` and ``voiceconv serve``.

``--auth USER:PASSWORD`` (or ``--auth-file FILE``, or the ``VOICECONV_AUTH``
environment variable, which keep the password out of the process list)
makes every page and endpoint ask for a password (a visitor without it sees
the login form only, and wrong logins lock a client out for longer and
longer: :mod:`voiceconv.web.gate`); a page reachable beyond this computer
without one is announced with a warning. SIGTERM stops it as Ctrl-C does.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported

from voiceconv.errors import VoiceconvError
from voiceconv.interrupts import sigterm_as_interrupt
from voiceconv.web.limits import Limits

CHECKOUT = Path(__file__).resolve().parents[2]
HOME = CHECKOUT if (CHECKOUT / "samples").is_dir() else Path.cwd()  # a checkout (or editable install), else here
SAMPLES = HOME / "samples"
AUTH_VARIABLE = "VOICECONV_AUTH"


DESCRIPTION = "Serve the voiceconv web page (Convert, Batch, Live, Train, Faces, Models)."


def parse_args(argv: list[str] | None = None, prog: str = "app.py") -> argparse.Namespace:
    """The command-line options of ``python app.py`` (and ``voiceconv serve``)."""
    p = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    add_options(p)
    return p.parse_args(argv)


def add_options(p: argparse.ArgumentParser) -> None:
    """The page's options (paths default to this checkout's ``samples/``, ``runs/`` and ``recipes/``, or to the
    current folder's when voiceconv is installed without a checkout)."""
    defaults = Limits()
    p.add_argument("--model", type=Path, help="model file to select first (added to those in --models-dir)")
    p.add_argument("--models-dir", type=Path, default=SAMPLES / "models",
                   help="folder of *.safetensors voice and face models")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--share", action="store_true", help="also publish a temporary public gradio.live link")
    auth = p.add_mutually_exclusive_group()
    auth.add_argument("--auth", metavar="USER:PASSWORD", action="append",
                      help="ask for this user name and password (repeatable); other users of the computer can see "
                           f"it in the process list, so prefer --auth-file or the {AUTH_VARIABLE} variable")
    auth.add_argument("--auth-file", type=Path, metavar="FILE",
                      help="ask for a password: one USER:PASSWORD per line (lines starting with # are ignored)")
    p.add_argument("--max-upload-mb", type=float, default=defaults.max_upload_mb, help="largest uploaded file")
    p.add_argument("--max-seconds", type=float, default=defaults.max_seconds, help="longest clip converted")
    p.add_argument("--max-batch-files", type=int, default=defaults.max_batch_files, help="most files in one batch")
    p.add_argument("--concurrency", type=int, default=defaults.concurrency, help="requests converted at once")
    train = p.add_argument_group("the Train tab")
    train.add_argument("--runs-dir", type=Path, default=HOME / "runs" / "page",
                       help="where training jobs live, one folder each (default %(default)s)")
    train.add_argument("--recipes-dir", type=Path, default=HOME / "recipes",
                       help="voice recipes offered on the Train tab (default %(default)s)")
    train.add_argument("--no-training", action="store_true", help="serve the page without the Train tab")
    train.add_argument("--max-training-jobs", type=int, default=defaults.max_training_jobs,
                       help="training jobs queued or running at once (one trains at a time)")
    train.add_argument("--max-training-audio-minutes", type=float, default=defaults.max_training_audio_minutes,
                       help="audio of both speakers together in one job")
    train.add_argument("--max-training-minutes", type=float, default=defaults.max_training_minutes,
                       help="the largest time budget of one job")
    train.add_argument("--max-training-files", type=int, default=defaults.max_training_files,
                       help="recordings of one speaker in one job")


def main(argv: list[str] | None = None, prog: str = "app.py") -> int:
    """Parse ``argv``, build the page and serve it until interrupted; returns the exit status."""
    return serve(parse_args(argv, prog), prog)


def serve(args: argparse.Namespace, prog: str = "app.py") -> int:
    """Build the page of ``args`` and serve it until interrupted; returns the exit status (messages start
    with ``prog``)."""
    logging.basicConfig(level=logging.WARNING, format=f"{prog}: %(levelname)s: %(message)s")
    try:
        users = credentials(args)
    except VoiceconvError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    exposed = _exposure(args.host, args.port, args.share)
    if exposed and not users:
        print(f"{prog}: warning: the page is open to anyone who can reach {exposed}, with no password; add --auth-file "
              f"FILE (or {AUTH_VARIABLE}=USER:PASSWORD) to ask for one", file=sys.stderr)
    try:
        from voiceconv.web import build_app, launch_app
        from voiceconv.web.training import TrainingJobs

        limits = Limits(max_upload_mb=args.max_upload_mb, max_seconds=args.max_seconds,
                        max_batch_files=args.max_batch_files, concurrency=args.concurrency,
                        max_training_jobs=args.max_training_jobs,
                        max_training_audio_minutes=args.max_training_audio_minutes,
                        max_training_minutes=args.max_training_minutes, max_training_files=args.max_training_files)
        examples = sorted((SAMPLES / "audio").glob("*.flac"))
        faces = sorted(p for p in (SAMPLES / "faces").glob("*") if p.suffix in (".jpg", ".png"))
        training = None if args.no_training else TrainingJobs(args.runs_dir, args.recipes_dir, limits)
        demo = build_app(args.models_dir, args.model, limits, examples, face_examples=faces, training=training)
    except VoiceconvError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    try:
        with sigterm_as_interrupt():  # kill or a service manager's stop: closed as Ctrl-C, temp folder removed
            launch_app(demo, limits, args.host, args.port, args.share,
                       allowed_paths=[SAMPLES / "audio", SAMPLES / "faces"],
                       auth=password_check(users) if users else None)
    except KeyboardInterrupt:  # before gradio's own loop took over
        pass
    except OSError as err:  # e.g. the port is taken
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    return 0


def credentials(args: argparse.Namespace) -> dict[str, str]:
    """``{user: password}`` from --auth, --auth-file or $VOICECONV_AUTH (the first given); {} without any."""
    if args.auth:
        lines, where = args.auth, "--auth"
    elif args.auth_file is not None:
        try:
            text = args.auth_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise VoiceconvError(f"--auth-file {args.auth_file}: cannot read it "
                                 f"({getattr(err, 'strerror', None) or err})") from None
        lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        where = f"--auth-file {args.auth_file}"
        if not lines:
            raise VoiceconvError(f"{where}: holds no USER:PASSWORD line")
    elif os.environ.get(AUTH_VARIABLE):
        lines, where = [os.environ[AUTH_VARIABLE]], AUTH_VARIABLE
    else:
        return {}
    users = {}
    for number, line in enumerate(lines, 1):
        user, sep, password = line.partition(":")
        if not sep or not user.strip() or not password:
            raise VoiceconvError(f"{where}: entry {number} is not USER:PASSWORD (a user name, a colon, a password)")
        users[user.strip()] = password
    return users


def password_check(users: dict[str, str]) -> Callable[[str, str], bool]:
    """Gradio's login check: the user's password, compared in constant time."""
    def check(user: str, password: str) -> bool:
        expected = users.get(str(user))
        return expected is not None and hmac.compare_digest(expected.encode(), str(password).encode())

    return check


def _exposure(host: str, port: int, share: bool) -> str | None:
    """Where beyond this computer the page can be reached (None: loopback only)."""
    if share:
        return "its public gradio.live link"
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:  # a host name
        pass
    everywhere = " (every interface)" if host in ("", "0.0.0.0", "::") else ""
    return f"{host}:{port}{everywhere}"

