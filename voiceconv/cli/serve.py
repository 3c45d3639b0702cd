"""``voiceconv serve``: the web page from an installed package, with the options of ``python app.py``."""

from __future__ import annotations

import argparse


def add_verbs(verbs: argparse._SubParsersAction) -> None:
    from voiceconv.web.serve import DESCRIPTION, add_options

    p = verbs.add_parser("serve", help="serve the web page (as python app.py)", description=DESCRIPTION)
    add_options(p)
    p.set_defaults(run=_serve)


def _serve(args: argparse.Namespace) -> int:
    from voiceconv.web.serve import serve

    return serve(args, "voiceconv serve")
