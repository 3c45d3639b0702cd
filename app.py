"""The voiceconv web page: ``python app.py`` serves http://127.0.0.1:7860 with the default model.

Thin on purpose: the options and the serving live in :mod:`voiceconv.web.serve` (``voiceconv serve`` is the same
page from an installed package); the page itself is :func:`voiceconv.web.build_app` (needs the ``app`` extra:
``pip install -e ".[app]"``). Its tabs: Convert, Batch, Live, Train, Faces and Models.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: idle threads sleep (see voiceconv/cli/__init__.py)

from voiceconv.web.serve import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
