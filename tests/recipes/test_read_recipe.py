"""One reader for every recipe: the training CLI's configs, the family table's ``kind`` and the Train tab."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from voiceconv.config import read_recipe
from voiceconv.errors import ConfigError
from voiceconv.families import VOICE_KIND, recipe_kind


def test_a_recipe_is_read_as_its_mapping_of_sections(tmp_path):
    (tmp_path / "r.yaml").write_text("train:\n  steps: 3\n")
    assert read_recipe(tmp_path / "r.yaml") == {"train": {"steps": 3}}
    assert recipe_kind(tmp_path / "r.yaml") == VOICE_KIND


@pytest.mark.parametrize("text, message", [("[1, 2]", "must be a mapping"), ("a: [", "not valid YAML")])
def test_a_bad_recipe_is_a_config_error(tmp_path, text, message):
    (tmp_path / "r.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_recipe(tmp_path / "r.yaml")
    with pytest.raises(ConfigError, match=message):
        recipe_kind(tmp_path / "r.yaml")


def test_a_missing_recipe_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        read_recipe(tmp_path / "missing.yaml")


def test_a_recipe_extends_another_key_by_key(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "voice.yaml").write_text(
        "kind: voice-cyclegan\nmodel:\n  generator_channels: 48\n  pull_weight: 30.0\n"
        "data:\n  held_back: 12\n  faces: [x, y]\n  pull:\n    k: 8\n    blend: 0.5\n")
    (tmp_path / "pair.yaml").write_text("extends: base/voice.yaml\ndata:\n  speaker_a: a\n  faces: [z]\n"
                                        "  pull:\n    k: 2\n")
    assert read_recipe(tmp_path / "pair.yaml") == {
        "kind": "voice-cyclegan", "model": {"generator_channels": 48, "pull_weight": 30.0},
        "data": {"held_back": 12, "faces": ["z"], "speaker_a": "a", "pull": {"k": 2, "blend": 0.5}}}


@pytest.mark.parametrize("text, message", [("extends: pair.yaml\n", "in a loop"), ("extends: [1]\n", "must name"),
                                           ("extends: missing.yaml\n", "cannot read")])
def test_a_bad_extends_is_a_config_error(tmp_path, text, message):
    (tmp_path / "pair.yaml").write_text(text)
    (tmp_path / "other.yaml").write_text("extends: pair.yaml\n")
    with pytest.raises(ConfigError, match=message):
        read_recipe(tmp_path / "pair.yaml")
    if "loop" in message:
        with pytest.raises(ConfigError, match=message):
            read_recipe(tmp_path / "other.yaml")


def test_the_voice_recipes_share_one_base_and_name_their_speakers():
    from voiceconv.train.recipes import load_recipe_as
    from voiceconv.train.voice import VoiceRecipe

    root = Path(__file__).resolve().parents[2] / "recipes"
    kathleen = load_recipe_as(VoiceRecipe, root / "kathleen_rms.yaml", [], None)
    vcc = load_recipe_as(VoiceRecipe, root / "vcc2016_sf1_tm1.yaml", [], None)
    base = load_recipe_as(VoiceRecipe, root / "base" / "voice.yaml", [], None)
    assert (kathleen.data.speaker_a, vcc.data.speaker_b) == ("runs/data/kathleen_rms/kathleen/train",
                                                             "../shared/data/vcc2016/train/TM1")
    for recipe in (kathleen, vcc):
        assert (recipe.model, recipe.train, recipe.features) == (base.model, base.train, base.features)
        assert dataclasses.replace(recipe.data, speaker_a="", speaker_b="") == base.data
