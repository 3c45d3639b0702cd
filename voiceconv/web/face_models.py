"""The face models the page serves: discovered files, each loaded on first use and shared by all requests
(the Faces tab's registry, :mod:`voiceconv.web.faces`)."""

from __future__ import annotations

import logging
import threading

from torch import nn

from voiceconv.errors import VoiceconvError
from voiceconv.faces.tools import load_face_model
from voiceconv.faces.views import rarity_reference
from voiceconv.models.vae import VAE, DebiasingVAE, LatentHistograms
from voiceconv.web.limits import UploadError
from voiceconv.web.models import FaceModelInfo

log = logging.getLogger(__name__)


class FaceModels:
    """The discovered face models, each loaded on first use and shared by all requests."""

    def __init__(self, infos: dict[str, FaceModelInfo]):
        self.infos = infos
        self._loaded: dict[str, tuple[nn.Module, dict]] = {}
        self._rarity: dict[str, LatentHistograms | VoiceconvError] = {}
        self._lock = threading.Lock()

    def keys_of(self, *kinds: str) -> list[str]:
        """Keys of the models of these kinds: those of the first kind first, each kind in discovery order."""
        return [key for kind in kinds for key, info in self.infos.items() if info.kind == kind]

    def info(self, key: str) -> FaceModelInfo:
        """The discovered face model called ``key``; anything else is refused."""
        if key not in self.infos:
            raise UploadError(f"unknown face model {key!r}; choose one of {', '.join(self.infos) or 'none'}")
        return self.infos[key]

    def model(self, key: str) -> nn.Module:
        """The loaded model (eval mode) called ``key``."""
        return self._load(key)[0]

    def vae(self, key: str) -> VAE:
        """The loaded VAE or debiasing VAE called ``key``; refused for a GAN (it has no encoder)."""
        model = self.model(key)
        if not isinstance(model, VAE):
            raise UploadError(f"{key} is a {self.info(key).kind} model; reconstructing needs a VAE")
        return model

    def dbvae(self, key: str) -> DebiasingVAE:
        """The loaded debiasing VAE called ``key``."""
        model = self.model(key)
        if not isinstance(model, DebiasingVAE):
            raise UploadError(f"{key} is a {self.info(key).kind} model; the debiasing view needs a face-dbvae model")
        return model

    def rarity(self, key: str) -> LatentHistograms:
        """The debiasing VAE's rarity reference, built once; VoiceconvError if its file lacks the training codes."""
        model, _ = self._load(key)
        with self._lock:
            if key not in self._rarity:
                try:
                    self._rarity[key] = rarity_reference(model)
                except VoiceconvError as err:
                    self._rarity[key] = err
            found = self._rarity[key]
        if isinstance(found, VoiceconvError):
            raise found
        return found

    def _load(self, key: str) -> tuple[nn.Module, dict]:
        info = self.info(key)
        with self._lock:
            if key not in self._loaded:
                log.info("loading %s", info.path)
                self._loaded[key] = load_face_model(info.path)
            return self._loaded[key]
