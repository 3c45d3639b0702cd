"""Import the optional evaluation packages with an error that names the extra to install."""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType

from voiceconv.errors import VoiceconvError


class MissingExtraError(VoiceconvError, ImportError):
    """An optional dependency is not installed."""


def require(module: str, extra: str = "eval") -> ModuleType:
    """Import ``module`` or raise a message telling the user which extra to install."""
    try:
        with warnings.catch_warnings():  # pyworld and webrtcvad import the deprecated pkg_resources
            warnings.filterwarnings("ignore", message=".*pkg_resources.*")
            return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(
            f"{module} is needed for evaluation but is not installed ({err}); "
            f"install it with: pip install 'voiceconv[{extra}]'"
        ) from None
