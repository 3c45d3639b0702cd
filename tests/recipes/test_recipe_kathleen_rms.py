"""recipes/kathleen_rms/prepare.py: prompt parsing, the fixed split, copying, and flite rms synthesis."""

from __future__ import annotations

import importlib.util
import shutil
import sys

import pytest
import soundfile as sf

from conftest import REPO

SCRIPT = REPO / "recipes" / "kathleen_rms" / "prepare.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("kathleen_rms_prepare", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


prep = _load_script()

needs_flite = pytest.mark.skipif(
    shutil.which("flite") is None, reason="flite is not installed (apt-get install flite)"
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('( arctic_a0001 "Author of the danger trail, Philip Steels, etc." )',
         ("arctic_a0001", "Author of the danger trail, Philip Steels, etc.")),
        ('( arctic_a0028 "Robbery, bribery, fraud, " )', ("arctic_a0028", "Robbery, bribery, fraud,")),
        ('( arctic_a0589 "I was sick once: typhoid." )\n', ("arctic_a0589", "I was sick once: typhoid.")),
        ('( x "She said \\"no\\"." )', ("x", 'She said "no".')),
        ("   \n", None),
    ],
)
def test_parse_prompt_line(line, expected):
    assert prep.parse_prompt_line(line) == expected


def test_parse_prompt_line_rejects_garbage():
    with pytest.raises(ValueError, match="festvox"):
        prep.parse_prompt_line("arctic_a0001\tAuthor of the danger trail")


@pytest.mark.shared_data
def test_real_prompts_file_parses_completely(shared_data):
    prompts = prep.read_prompts(shared_data / prep.PROMPTS_RELPATH)
    assert list(prompts) == prep.arctic_ids(1, 593)
    assert prompts["arctic_a0001"] == "Author of the danger trail, Philip Steels, etc."
    assert all(text and '"' not in text for text in prompts.values())


def test_split_is_disjoint_and_covers_what_it_says():
    ids = prep.split_ids()
    evals, kathleen, rms = set(ids["eval"]), set(ids["kathleen_train"]), set(ids["rms_train"])
    assert ids["eval"][0] == "arctic_a0571" and ids["eval"][-1] == "arctic_a0593" and len(evals) == 23
    assert ids["kathleen_train"][0] == "arctic_a0001" and ids["kathleen_train"][-1] == "arctic_a0285"
    assert ids["rms_train"][0] == "arctic_a0286" and ids["rms_train"][-1] == "arctic_a0570"
    assert len(kathleen) == len(rms) == 285
    assert not (evals & kathleen) and not (evals & rms) and not (kathleen & rms)
    assert evals | kathleen | rms == set(prep.arctic_ids(1, 593))
    assert {"arctic_a0591", "arctic_a0592"} <= evals  # the demo clips in samples/audio/ stay held out


def test_copies_are_idempotent_and_replace_old_links(tmp_path):
    src = tmp_path / "src.flac"
    src.write_bytes(b"fLaC data")
    copy, old_link = tmp_path / "out" / "b.flac", tmp_path / "out" / "a.flac"
    assert prep.copy_recording(src, copy) and not copy.is_symlink() and copy.read_bytes() == b"fLaC data"
    assert not prep.copy_recording(src, copy)
    old_link.symlink_to(src)  # what earlier versions made: the reader never follows a link out of its folder
    assert prep.copy_recording(src, old_link) and not old_link.is_symlink() and old_link.read_bytes() == b"fLaC data"
    with pytest.raises(FileNotFoundError):
        prep.copy_recording(tmp_path / "missing.flac", tmp_path / "out" / "c.flac")


def test_missing_flite_gives_the_install_hint(monkeypatch):
    monkeypatch.setattr(prep.shutil, "which", lambda name: None)
    with pytest.raises(prep.FliteNotFoundError, match="apt-get install flite"):
        prep.find_flite()


@pytest.mark.shared_data
@needs_flite
def test_synthesizes_two_prompts_as_16k_mono_flac(shared_data, tmp_path):
    prompts = prep.read_prompts(shared_data / prep.PROMPTS_RELPATH)
    ids = ["arctic_a0591", "arctic_a0592"]
    assert prep.synthesize_many(prompts, ids, tmp_path, jobs=2) == 2
    for i in ids:
        info = sf.info(tmp_path / f"{i}.flac")
        assert (info.samplerate, info.channels, info.format) == (16000, 1, "FLAC")
        words = len(prompts[i].split())
        assert 0.15 * words < info.duration < 1.0 * words + 1.0, (i, info.duration, words)
        wav, _ = sf.read(tmp_path / f"{i}.flac")
        assert 0.05 < abs(wav).max() <= 1.0
    mtimes = [(tmp_path / f"{i}.flac").stat().st_mtime_ns for i in ids]
    assert prep.synthesize_many(prompts, ids, tmp_path, jobs=2) == 0  # idempotent: nothing redone
    assert [(tmp_path / f"{i}.flac").stat().st_mtime_ns for i in ids] == mtimes
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{i}.flac" for i in ids]  # no temp files left
