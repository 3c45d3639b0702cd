"""Errors a user can act on, shown as messages on the page (``gr.Error``) instead of tracebacks."""

from __future__ import annotations

import functools
from collections.abc import Callable

import gradio as gr

from voiceconv.errors import VoiceconvError
from voiceconv.web.limits import user_message


def shown_as_message(handler: Callable) -> Callable:
    """Turn a :class:`VoiceconvError` raised by ``handler`` into a message on the page."""

    @functools.wraps(handler)
    def wrapper(*args):
        try:
            return handler(*args)
        except VoiceconvError as err:
            raise gr.Error(user_message(err), print_exception=False) from None

    return wrapper
