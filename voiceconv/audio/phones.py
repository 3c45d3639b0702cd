"""A small frame-level phone model: which phone each WORLD frame belongs to, whoever speaks.

The kNN pull matches a source frame to the target speaker's nearest frames. Matched on speaker-normalized cepstra
alone, many matches land on the wrong sound (recipes/kathleen_rms/README.md, "Where the missing similarity lives").
A phone model gives each frame a description that is the same for every speaker: the probabilities of the phones.

Input: a frame's log spectral envelope, normalized over its utterance (cepstral mean and variance normalization,
c0..c_n), its voicing flag, and those of ``CONTEXT`` frames either side. Output: log-probabilities of the phone set.
It is trained on flite voices whose phone segmentation is known (recipes/phones), with the envelope frequency-warped
at random so that vocal tracts of every length look familiar. It is ours, not a judge: ``voiceconv evaluate``'s WER
comes from pocketsphinx, which no part of training sees.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from voiceconv.audio.features import dct_matrix

CEPSTRA = 24  # c1..c24 beside c0
CONTEXT = 5  # frames either side (50 ms at 10-ms frames)
HIDDEN = 384
LOG_FLOOR = 1e-12
#: The model the kNN pull uses, trained by recipes/phones (its README is the model card).
SHIPPED = Path(__file__).with_name("phones.safetensors")


def frame_columns(envelope: np.ndarray, f0: np.ndarray) -> torch.Tensor:
    """A WORLD envelope ``[T, bins]`` and F0 ``[T]`` -> each frame's utterance-normalized cepstra c0..c_n and voicing
    ``[T, CEPSTRA + 2]``."""
    log_envelope = torch.from_numpy(np.log(envelope + LOG_FLOOR).astype(np.float32))  # [T, bins]
    cepstra = log_envelope @ dct_matrix(log_envelope.shape[1], CEPSTRA + 1).T  # [T, C + 1]
    cepstra = (cepstra - cepstra.mean(dim=0)) / (cepstra.std(dim=0, unbiased=False) + 1e-3)
    voiced = torch.from_numpy((f0 > 0).astype(np.float32))[:, None]  # [T, 1]
    return torch.cat([cepstra, voiced], dim=1)


def with_context(columns: torch.Tensor, context: int = CONTEXT) -> torch.Tensor:
    """Columns ``[T, D]`` -> ``[T, D (2 context + 1)]``: each frame's and its neighbours' (edges repeated)."""
    frames = columns.shape[0]
    padded = nn.functional.pad(columns.T[None], (context, context), mode="replicate")[0]  # [D, T + 2 context]
    return torch.cat([padded[:, i:i + frames] for i in range(2 * context + 1)]).T.contiguous()


COLUMNS = CEPSTRA + 2
class PhoneModel(nn.Module):
    """An MLP from a frame's and its ``context`` neighbours' :func:`frame_columns` ``[N, COLUMNS (2 context + 1)]``
    to phone logits ``[N, len(phones)]``."""

    def __init__(self, phones: tuple[str, ...], context: int = CONTEXT, hidden: int = HIDDEN):
        super().__init__()
        self.phones, self.context = tuple(phones), context
        self.layers = nn.Sequential(
            nn.Linear(COLUMNS * (2 * context + 1), hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Dropout(0.1),
            nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Dropout(0.1),
            nn.Linear(hidden, len(self.phones)))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.layers(inputs)

    @torch.no_grad()
    def posteriors(self, envelope: np.ndarray, f0: np.ndarray) -> torch.Tensor:
        """Phone probabilities ``[T, phones]`` of a WORLD envelope ``[T, bins]`` with its F0 ``[T]``."""
        was_training = self.training
        self.eval()
        out = self(with_context(frame_columns(envelope, f0), self.context)).softmax(dim=1)
        self.train(was_training)
        return out


def save_phone_model(model: PhoneModel, path: Path) -> None:
    """Write ``model`` as safetensors (weights in float32) with its phone set and shape in the header."""
    header = {"phones": json.dumps(list(model.phones)), "context": str(model.context),
              "hidden": str(model.layers[0].out_features)}
    save_file({name: value.contiguous() for name, value in model.state_dict().items()}, str(path), metadata=header)


def load_phone_model(path: Path) -> PhoneModel:
    """A phone model written by :func:`save_phone_model` (safetensors: reading it runs no code), in eval mode."""
    with safe_open(str(path), framework="pt") as file:
        header = file.metadata()
        model = PhoneModel(tuple(json.loads(header["phones"])), int(header["context"]), int(header["hidden"]))
        model.load_state_dict({name: file.get_tensor(name) for name in file.keys()})
    return model.eval()


def fingerprint(model: PhoneModel) -> str:
    """A short digest of a model's phone set and weights (what a cache of its outputs is keyed on)."""
    digest = hashlib.sha256(json.dumps([model.phones, model.context]).encode())
    for name, value in sorted(model.state_dict().items()):
        digest.update(name.encode() + value.detach().float().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


@lru_cache(maxsize=1)
def shipped_model() -> PhoneModel:
    """The package's phone model (:data:`SHIPPED`), read once."""
    return load_phone_model(SHIPPED)


@dataclass(frozen=True)
class Segmentation:
    """An utterance's phones and where each ends (seconds)."""

    phones: tuple[str, ...]
    ends: tuple[float, ...]

    @classmethod
    def read(cls, text: str) -> Segmentation:
        rows = [line.split("\t") for line in text.splitlines() if line.strip()]
        return cls(tuple(r[0] for r in rows), tuple(float(r[1]) for r in rows))

    def frame_labels(self, frames: int, frame_period_s: float) -> list[str]:
        """The phone at each frame's centre time ``t * frame_period_s`` (the last phone past the end)."""
        ends = np.asarray(self.ends)
        index = np.minimum(np.searchsorted(ends, np.arange(frames) * frame_period_s, side="right"), len(ends) - 1)
        return [self.phones[i] for i in index]
