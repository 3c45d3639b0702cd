"""Numbers from the page or its API, checked before use: a refusal is a one-line message naming the field."""

from __future__ import annotations

import math

import gradio as gr

from voiceconv.web.limits import UploadError

MAX_SEED = 2**32


def is_number(value: object) -> bool:
    """A finite int or float (not a bool, text or anything else an API caller may send)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and (isinstance(value, int) or math.isfinite(value)))


def checked_seed(seed: float | None) -> int:
    """A seed from 0 to MAX_SEED - 1; a float must be whole (the page's box sends 3.0 for 3)."""
    if not is_number(seed) or seed != int(seed) or not 0 <= seed < MAX_SEED:
        raise UploadError(f"the seed must be a whole number from 0 to {MAX_SEED - 1}, got {shown_value(seed)}")
    return int(seed)


def shown_value(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def checked_number_input(component: gr.Number | gr.Slider) -> gr.Number | gr.Slider:
    """``component`` with its API payload checked to be a finite number before Gradio's own preprocessing, which
    fails with a generic error on text, NaN or infinity; the refusal is a message naming the field."""
    preprocess = component.preprocess

    def checked(payload):
        if payload is not None and not is_number(payload):
            raise gr.Error(f"{component.label or 'value'} must be a number, got {shown_value(payload)}",
                           print_exception=False)
        return preprocess(payload)

    component.preprocess = checked  # on this instance: a subclass would make Gradio write a .pyi stub
    return component
