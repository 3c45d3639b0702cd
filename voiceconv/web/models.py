"""The models the page offers: found once at start-up, loaded once on first use.

Voice conversion models and face models (``face-vae``, ``face-dbvae``,
``face-gan``) share the models folder and are told apart by the ``kind`` in
their header. Users pick a model by its key among the discovered ones; a path
never comes from the browser.
"""

from __future__ import annotations

import html
import logging
import re
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from voiceconv.convert import Converter
from voiceconv.errors import VoiceconvError
from voiceconv.families import VOICE_KIND, faces_tab_kinds
from voiceconv.modelfiles.format import read_header

log = logging.getLogger(__name__)
_MARKDOWN_MARKS = re.compile(r"([\\`*\[\]()!])")  # emphasis, code, links and images

FACE_KINDS = faces_tab_kinds()  # kind -> what the page calls it


@dataclass(frozen=True)
class ModelInfo:
    """What the page shows about one model file, read from its header (no weights loaded)."""

    key: str
    path: Path
    speakers: dict[str, str]  # {"a": name, "b": name}
    steps: int | None
    training_hours: float | None
    hardware: str | None

    @property
    def label(self) -> str:
        return f"{self.key} ({self.speakers['a']} ↔ {self.speakers['b']})"

    def direction_choices(self) -> list[tuple[str, str]]:
        """Dropdown choices ``(label, direction)``, e.g. ``("kathleen → rms", "a2b")``."""
        a, b = self.speakers["a"], self.speakers["b"]
        return [(f"{a} → {b}", "a2b"), (f"{b} → {a}", "b2a")]


def model_info(path: str | Path, key: str | None = None) -> ModelInfo:
    """Read a voice model's header; raises :class:`VoiceconvError` when it is not a voice conversion model."""
    path = Path(path)
    header = read_header(path)
    if header.get("kind") != VOICE_KIND:
        raise VoiceconvError(f"{path}: a {header.get('kind')!r} model, not a voice conversion model")
    training = header.get("training", {})
    seconds = training.get("training_seconds")
    return ModelInfo(key=key or path.stem, path=path,
                     speakers={side: header["speakers"][side]["name"] for side in "ab"},
                     steps=training.get("steps"), training_hours=None if seconds is None else seconds / 3600,
                     hardware=training.get("hardware"))


def discover_models(models_dir: str | Path | None, extra: list[str | Path] = ()) -> dict[str, ModelInfo]:
    """Voice models in ``models_dir`` (``*.safetensors``, sorted) plus ``extra`` files, by unique key.

    Files in the folder that are not voice models, or whose header or tensors
    are damaged, are skipped with a log line naming the file and the reason
    (face models quietly: the Faces tab offers them); an ``extra`` file that is
    not one raises, since the user named it. Keys are file stems, made unique
    with ``-2``, ``-3``... suffixes.
    """
    found: dict[str, ModelInfo] = {}
    for path in extra:
        _add(found, model_info(path))
    known = {info.path.resolve() for info in found.values()}
    for path in sorted(Path(models_dir).glob("*.safetensors")) if models_dir else []:
        if path.resolve() in known:
            continue
        try:
            _add(found, model_info(path))
        except VoiceconvError as err:  # every header field and tensor is checked (voiceconv.modelfiles.checks)
            if not _is_face_model(path):  # face models are offered on the Faces tab
                log.warning("skipping %s", _naming(path, err))
    return found


def _naming(path: Path, err: VoiceconvError) -> str:
    """The error's message, starting with the file it is about."""
    message = str(err)
    return message if message.startswith(str(path)) else f"{path}: {message}"


def _add(found: dict[str, ModelInfo], info: ModelInfo) -> None:
    key, n = info.key, 1
    while key in found:
        n += 1
        key = f"{info.key}-{n}"
    found[key] = ModelInfo(key, info.path, info.speakers, info.steps, info.training_hours, info.hardware)


def model_summary_markdown(info: ModelInfo) -> str:
    """The Models tab's heading for one model: what its header says (speakers, training steps and time)."""
    a, b = markdown_text(info.speakers["a"]), markdown_text(info.speakers["b"])
    facts = [f"- **speakers:** A = {a}, B = {b} (a2b converts {a} to {b})"]
    return _with_training_facts(info, facts)


def markdown_text(text: object) -> str:
    """``text`` from a model file's header as Markdown that shows it literally: HTML escaped (a speaker called
    ``<img src=x onerror=...>`` is shown, never run) and Markdown's emphasis, code, link and image marks
    backslash-escaped."""
    return _MARKDOWN_MARKS.sub(r"\\\1", html.escape(str(text), quote=False))


def model_documents(info: ModelInfo | FaceModelInfo) -> dict[str, str]:
    """Markdown files beside the model: ``<model>.md`` as "Model card", then each ``<model>.eval_*.md`` report."""
    documents = {}
    card = info.path.with_suffix(".md")
    if card.is_file():
        documents["Model card"] = card.read_text(encoding="utf-8")
    for report in sorted(info.path.parent.glob(f"{info.path.stem}.eval_*.md")):
        documents[f"Evaluation: {report.stem.split('.eval_', 1)[1]}"] = report.read_text(encoding="utf-8")
    return documents


# --- face models ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class FaceModelInfo:
    """What the page shows about one face model file, read from its header (no weights loaded)."""

    key: str
    path: Path
    kind: str  # one of FACE_KINDS
    image_size: int  # pixels per side
    latent: int  # size of the latent code
    faces: dict[str, int]  # training faces per folder
    steps: int | None
    training_hours: float | None
    hardware: str | None

    @property
    def label(self) -> str:
        return f"{self.key} ({FACE_KINDS[self.kind]})"


def face_model_info(path: str | Path, key: str | None = None) -> FaceModelInfo:
    """Read a face model's header; raises :class:`VoiceconvError` when it is not one of :data:`FACE_KINDS`."""
    path = Path(path)
    header = read_header(path)
    kind = header.get("kind")
    if kind not in FACE_KINDS:
        raise VoiceconvError(f"{path}: a {kind!r} model, not one of the face models ({', '.join(FACE_KINDS)})")
    training = header.get("training", {})
    seconds = training.get("training_seconds")
    return FaceModelInfo(key=key or path.stem, path=path, kind=kind, image_size=header["image"]["height"],
                         latent=header["model"]["latent"], faces=dict(header.get("data", {}).get("faces", {})),
                         steps=training.get("steps"), training_hours=None if seconds is None else seconds / 3600,
                         hardware=training.get("hardware"))


def discover_face_models(models_dir: str | Path | None) -> dict[str, FaceModelInfo]:
    """Face models in ``models_dir`` (``*.safetensors``, sorted) by unique key; other files are skipped quietly."""
    found: dict[str, FaceModelInfo] = {}
    for path in sorted(Path(models_dir).glob("*.safetensors")) if models_dir else []:
        try:
            info = face_model_info(path)
        except VoiceconvError:
            continue  # a voice model, or not a usable model at all (discover_models reports those)
        key, n = info.key, 1
        while key in found:
            n += 1
            key = f"{info.key}-{n}"
        found[key] = replace(info, key=key)
    return found


def face_model_summary_markdown(info: FaceModelInfo) -> str:
    """The Models tab's heading for one face model: kind, image and latent size, training faces, steps and time."""
    facts = [f"- **kind:** {FACE_KINDS[info.kind]} (`{info.kind}`), {info.image_size} x {info.image_size} "
             f"pixel faces, {info.latent} latents"]
    if info.faces:
        groups = ", ".join(f"{markdown_text(name)} {count}" for name, count in info.faces.items())
        facts.append(f"- **training faces:** {sum(info.faces.values())} ({groups})")
    return _with_training_facts(info, facts)


def _is_face_model(path: Path) -> bool:
    try:
        return read_header(path).get("kind") in FACE_KINDS
    except VoiceconvError:
        return False


class ConverterCache:
    """One :class:`Converter` per model file, loaded on first use and shared by all requests."""

    def __init__(self) -> None:
        self._converters: dict[Path, Converter] = {}
        self._lock = threading.Lock()

    def get(self, path: Path) -> Converter:
        """The loaded converter for ``path`` (loading it at most once, even under concurrent requests)."""
        with self._lock:
            if path not in self._converters:
                log.info("loading %s", path)
                self._converters[path] = Converter(path)
            return self._converters[path]


def _with_training_facts(info, facts: list[str]) -> str:
    """A model's Markdown heading: ``facts`` then its training steps, time, hardware and file name."""
    if info.steps is not None:
        facts.append(f"- **training steps:** {info.steps}")
    if info.training_hours is not None:
        facts.append(f"- **training time:** {info.training_hours:.2f} h")
    if info.hardware:
        facts.append(f"- **hardware:** {markdown_text(info.hardware)}")
    facts.append(f"- **file:** {markdown_text(info.path.name)}")
    return f"## {markdown_text(info.key)}\n\n" + "\n".join(facts)
