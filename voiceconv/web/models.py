"""The voice models the page offers: found once at start-up, loaded once on first use.

Users pick a model by its key among the discovered ones; a path never comes
from the browser.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from voiceconv.convert import Converter
from voiceconv.errors import VoiceconvError
from voiceconv.modelfile import read_header

log = logging.getLogger(__name__)

VOICE_KIND = "voice-cyclegan"


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

    Files in the folder that are not voice models are skipped with a log line;
    an ``extra`` file that is not one raises, since the user named it. Keys are
    file stems, made unique with ``-2``, ``-3``... suffixes.
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
        except VoiceconvError as err:
            log.warning("skipping %s: %s", path, err)
    return found


def _add(found: dict[str, ModelInfo], info: ModelInfo) -> None:
    key, n = info.key, 1
    while key in found:
        n += 1
        key = f"{info.key}-{n}"
    found[key] = ModelInfo(key, info.path, info.speakers, info.steps, info.training_hours, info.hardware)


def model_summary_markdown(info: ModelInfo) -> str:
    """The Models tab's heading for one model: what its header says (speakers, training steps and time)."""
    a, b = info.speakers["a"], info.speakers["b"]
    facts = [f"- **speakers:** A = {a}, B = {b} (a2b converts {a} to {b})"]
    if info.steps is not None:
        facts.append(f"- **training steps:** {info.steps}")
    if info.training_hours is not None:
        facts.append(f"- **training time:** {info.training_hours:.2f} h")
    if info.hardware:
        facts.append(f"- **hardware:** {info.hardware}")
    facts.append(f"- **file:** `{info.path.name}`")
    return f"## {info.key}\n\n" + "\n".join(facts)


def model_documents(info: ModelInfo) -> dict[str, str]:
    """Markdown files beside the model: ``<model>.md`` as "Model card", then each ``<model>.eval_*.md`` report."""
    documents = {}
    card = info.path.with_suffix(".md")
    if card.is_file():
        documents["Model card"] = card.read_text(encoding="utf-8")
    for report in sorted(info.path.parent.glob(f"{info.path.stem}.eval_*.md")):
        documents[f"Evaluation: {report.stem.split('.eval_', 1)[1]}"] = report.read_text(encoding="utf-8")
    return documents


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
