"""The two directions of a CycleGAN, spelled once: ``a2b`` (G_AB turns domain A into B) and ``b2a`` (G_BA back).

Torch-free, so that command lines can offer them as choices without loading a network.
"""

from __future__ import annotations

from typing import Literal, get_args

from voiceconv.errors import ConfigError

Direction = Literal["a2b", "b2a"]
DIRECTIONS: tuple[Direction, ...] = get_args(Direction)


def checked_direction(direction: object) -> Direction:
    """``direction`` when it is one of :data:`DIRECTIONS`; a one-line ConfigError otherwise."""
    if direction not in DIRECTIONS:
        raise ConfigError(f"direction must be a2b or b2a, not {str(direction)[:20]!r}")
    return direction  # type: ignore[return-value]


def source_side(direction: Direction) -> str:
    """The side (``"a"`` or ``"b"``) a direction converts from."""
    return direction[0]


def target_side(direction: Direction) -> str:
    """The side (``"a"`` or ``"b"``) a direction converts to."""
    return direction[-1]
