"""What several verbs share: argparse types and options."""

from __future__ import annotations

import argparse

from voiceconv.errors import VoiceconvError


def feature_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="feature parameter override, e.g. --set n_mels=128 (repeatable)")


def add_pitch(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pitch", default="auto", type=pitch_setting, metavar="auto|source|+N|-N",
                        help="auto: the model's F0 transform onto the target speaker (default); source: keep the "
                             "speaker's own pitch; +N / -N: move the speaker's pitch by N semitones (e.g. +2, -3.5)")


def pitch_setting(text: str) -> str:
    """argparse type: a --pitch setting, checked."""
    from voiceconv.audio.world import parse_pitch

    try:
        parse_pitch(text)
    except VoiceconvError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value
