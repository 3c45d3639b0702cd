"""Audit a folder of face images: broken files, and non-faces by a face VAE's reconstruction error.

A VAE trained on faces reconstructs faces well and anything else badly. Each readable image is reconstructed
(posterior mean) by the model; an image is flagged when the log of its mean squared error is above the
folder's ``median + mad_k * MAD`` (so a folder of faces the model reconstructs less well than its training
faces does not flag them all) and above ``min_error``. Unreadable images are flagged with the loader's reason.
Nothing in the folder is written to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from voiceconv.audit.outliers import robust_threshold
from voiceconv.audit.report import Flags, table_csv, write_text
from voiceconv.errors import ImageFileError, VoiceconvError

BATCH = 64  # images reconstructed at once


@dataclass(frozen=True)
class FaceAuditSettings:
    """Thresholds of the face audit's reconstruction-error cut."""

    mad_k: float = 3.0
    min_error: float = 0.02  # per-pixel squared error in [-1, 1] units; the default face VAE's training faces: ~0.03


@dataclass
class ImageAudit(Flags):
    """One image: the VAE's reconstruction error (None where unreadable) and the reasons it is flagged."""

    path: Path
    reconstruction_error: float | None = None
    reasons: list[str] = field(default_factory=list)


@dataclass
class FaceAuditReport:
    """Every audited image, the model that judged them and the error cut it used."""

    files: list[ImageAudit]
    model: Path
    cut: float | None  # the reconstruction error above which images are flagged

    @property
    def flagged(self) -> list[ImageAudit]:
        """The flagged images, in folder order."""
        return [f for f in self.files if f.flagged]

    def csv_text(self) -> str:
        """``file,flagged,reason`` for every image; flagged is ``yes`` or ``no``."""
        return table_csv(self.files)

    def write_csv(self, path: str | Path) -> Path:
        """Write :meth:`csv_text` to ``path`` atomically."""
        return write_text(path, self.csv_text())

    def markdown(self) -> str:
        """The report for people: the cut, then every image's error and reason."""
        cut = f"{self.cut:.4f}" if self.cut is not None else "none (too few readable images)"
        lines = ["# Face folder audit", "",
                 (f"Model: {self.model}. Reconstruction-error cut: {cut}. "
                  f"{len(self.flagged)} of {len(self.files)} image(s) flagged."), "",
                 "| file | reconstruction error | flagged | reason |", "|---|---|---|---|"]
        for f in self.files:
            error = "" if f.reconstruction_error is None else f"{f.reconstruction_error:.4f}"
            lines.append(f"| {f.path} | {error} | {'yes' if f.flagged else 'no'} | {f.reason.replace('|', '/')} |")
        return "\n".join(lines) + "\n"


def audit_face_folder(folder: str | Path, model_path: str | Path,
                      settings: FaceAuditSettings = FaceAuditSettings()) -> FaceAuditReport:
    """Audit every image under ``folder`` with the face VAE (or DB-VAE) in ``model_path``."""
    import torch

    from voiceconv.faces.data import image_files, load_face_image
    from voiceconv.faces.tools import load_face_model, require_model_class
    from voiceconv.models.vae import VAE

    model, header = load_face_model(model_path)
    require_model_class(model, VAE, "faces audit")
    size = header["image"]["height"]
    files = image_files(folder)
    if not files:
        raise VoiceconvError(f"{folder}: no image files in this folder (searched recursively)")
    audits, images = [], []
    for path in files:
        audit = ImageAudit(path)
        audits.append(audit)
        try:
            images.append((audit, load_face_image(path, size)))  # [3, size, size]
        except ImageFileError as err:
            audit.reasons.append(f"unreadable: {str(err).removeprefix(f'{path}: ')}")
    with torch.no_grad():
        for start in range(0, len(images), BATCH):
            chunk = images[start:start + BATCH]
            batch = torch.stack([image for _, image in chunk])  # [B, 3, size, size]
            errors = (model.reconstruct(batch) - batch).pow(2).flatten(1).mean(dim=1)  # [B]
            for (audit, _), error in zip(chunk, errors.tolist()):
                audit.reconstruction_error = error
    cut = flag_poor_reconstructions([a for a, _ in images], settings)
    return FaceAuditReport(audits, Path(model_path), cut)


def flag_poor_reconstructions(audits: list[ImageAudit], settings: FaceAuditSettings) -> float | None:
    """Flag images reconstructed far worse than the folder's; returns the error cut (None: too few images)."""
    if len(audits) < 5:
        return None
    logs = np.log(np.array([a.reconstruction_error for a in audits]) + 1e-12)
    cut = float(max(np.exp(robust_threshold(logs, settings.mad_k)), settings.min_error))
    for a in audits:
        if a.reconstruction_error > cut:
            a.reasons.append(f"unlike a face to the model: reconstruction error {a.reconstruction_error:.4f} "
                             f"(the folder's cut {cut:.4f})")
    return cut
