"""Transcripts: ``id<TAB>text`` files that say what a recording's words are.

``voiceconv evaluate --transcripts`` scores word error rates against them, and a speaker folder may carry one
named ``transcripts.tsv`` (ids are paths relative to the folder, without the extension): model selection then
judges the held-back recordings' words against the text read, as the evaluation does, instead of against the
recognizer's reading of the input. Without transcripts, parallel folders (the same sentences read by both
speakers under the same file names, as VCC2016's) can stand in: ``data.word_reference: parallel`` judges them
against the recognizer's reading of the other speaker's recording of the same sentence (:func:`parallel_recordings`).
"""

from __future__ import annotations

from pathlib import Path

from voiceconv.errors import VoiceconvError

FOLDER_TRANSCRIPTS = "transcripts.tsv"  # the name a speaker folder's transcript file has


def read_transcripts(path: Path) -> dict[str, str]:
    """``id<TAB>text`` lines -> {id: text}; blank and ``#`` lines ignored."""
    texts = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        key, sep, text = line.partition("\t")
        if not sep:
            raise VoiceconvError(f"{path}:{number}: expected 'id<TAB>text', got {line[:60]!r}")
        texts[key.strip()] = text.strip()
    return texts


def folder_transcripts(folder: Path, files: list[Path]) -> dict[Path, str]:
    """The transcript of each of ``files`` (under ``folder``) that the folder's ``transcripts.tsv`` has;
    empty when the folder has none."""
    path = Path(folder) / FOLDER_TRANSCRIPTS
    if not path.is_file():
        return {}
    texts = read_transcripts(path)
    keyed = {file: recording_id(file, folder) for file in files}
    return {file: texts[key] for file, key in keyed.items() if key in texts}


def recording_id(file: Path, folder: Path) -> str:
    """A recording's id in its speaker folder: its path relative to the folder, without the extension."""
    return file.relative_to(folder).with_suffix("").as_posix()


def parallel_recordings(folder: Path, files: list[Path],
                        other_folder: Path, other_files: list[Path]) -> dict[Path, Path]:
    """Each of ``files`` (under ``folder``) -> the recording of ``other_files`` (under ``other_folder``) with the
    same path relative to its folder, less the extension: the same sentence read by the other speaker, in parallel
    folders. Files without one are left out."""
    others = {recording_id(file, other_folder): file for file in other_files}
    keyed = {file: recording_id(file, folder) for file in files}
    return {file: others[key] for file, key in keyed.items() if key in others}
