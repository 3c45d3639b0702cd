"""The web page: a Gradio app over the conversion API, training jobs and the face models (Convert, Batch, Live,
Train, Faces, Models tabs).

``build_app`` lives in :mod:`voiceconv.web.page` and is imported lazily, so the
gradio-free parts (upload limits, zip checks, model discovery, spectrogram
pictures) can be used without importing gradio. With a password, :mod:`voiceconv.web.gate` shows a visitor
without credentials the login form only, and throttles wrong logins.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_app", "launch_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from voiceconv.web import page

        return getattr(page, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
