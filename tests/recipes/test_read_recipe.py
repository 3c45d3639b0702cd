"""One reader for every recipe: the training CLI's configs, the family table's ``kind`` and the Train tab."""

from __future__ import annotations

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
