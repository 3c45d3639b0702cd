"""``voiceconv faces groups``: detection per group of a face-classifier or face-dbvae file, on GROUP/*.png."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import SAMPLES
from voiceconv.cli import main
from voiceconv.config import to_dict
from voiceconv.errors import VoiceconvError
from voiceconv.faces.data import load_face_image
from voiceconv.faces.groups import detection_by_group, load_face_detector, read_group_rates, report_beside
from voiceconv.faces.tasks import image_header
from voiceconv.families import FACE_CLASSIFIER
from voiceconv.modelfiles.format import save_model_file
from voiceconv.models.vae import FaceClassifier, VAEConfig

SIZE = 32


@pytest.fixture
def group_folder(tmp_path):
    """Three groups of random pictures (3, 2 and 4 images; one unreadable file), an empty folder, a stray file."""
    rng = np.random.default_rng(0)
    for group, count in (("DF", 3), ("LM", 2), ("LF", 4)):
        (tmp_path / "faces" / group).mkdir(parents=True)
        for index in range(count):
            pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "faces" / group / f"{index}.png")
    (tmp_path / "faces" / "LF" / "broken.png").write_bytes(b"not a png")
    (tmp_path / "faces" / "empty").mkdir()
    (tmp_path / "faces" / "notes.txt").write_text("not a group")
    return tmp_path / "faces"


def classifier_file(path, bias: float | None = None):
    config = VAEConfig(channels=(8, 16), latent=4)
    model = FaceClassifier(3, SIZE, SIZE, config, seed=1)
    if bias is not None:  # every image on one side of the threshold
        last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
        torch.nn.init.zeros_(last.weight)
        torch.nn.init.constant_(last.bias, bias)
    header = {"kind": FACE_CLASSIFIER, "model": to_dict(config), "image": image_header(SIZE),
              "data": {"faces": {}}, "training": {"steps": 0}}
    save_model_file(path, {k: v for k, v in model.state_dict().items() if k != "steps_done"}, header)
    return path


def test_each_group_is_counted_as_the_detector_classifies_its_images(group_folder, tmp_path):
    model, header = load_face_detector(classifier_file(tmp_path / "c.safetensors"))
    assert header["kind"] == FACE_CLASSIFIER
    report = detection_by_group(model, group_folder)
    assert list(report["groups"]) == ["DF", "LF", "LM"]  # folders without images are not groups
    for group, count in (("DF", 3), ("LF", 4), ("LM", 2)):
        files = sorted((group_folder / group).glob("[0-9].png"))
        with torch.no_grad():
            expected = int((model.classify(torch.stack([load_face_image(f, SIZE) for f in files])) > 0).sum())
        assert report["groups"][group]["images"] == count
        assert report["groups"][group]["detected"] == expected
        assert report["groups"][group]["rate"] == expected / count
    assert report["groups"]["LF"]["unreadable"] and "broken.png" in report["groups"]["LF"]["unreadable"][0]
    rates = {g: v["rate"] for g, v in report["groups"].items()}
    assert report["worst_rate"] == min(rates.values()) and report["gap"] == max(rates.values()) - min(rates.values())


@pytest.mark.parametrize("bias, rate", [(5.0, 1.0), (-5.0, 0.0)])
def test_the_command_reports_every_group_and_writes_json(group_folder, tmp_path, capsys, bias, rate):
    path = classifier_file(tmp_path / "c.safetensors", bias)
    assert main(["faces", "groups", "--model", str(path), str(group_folder), "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "| DF | 3 |" in out and "| LM | 2 |" in out and "broken.png" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["kind"] == FACE_CLASSIFIER and report["overall"] == rate
    assert [g["detected"] for g in report["groups"].values()] == [round(rate * n) for n in (3, 4, 2)]


def test_the_shipped_debiasing_vae_is_a_detector_and_bad_folders_are_clear_errors(group_folder, tmp_path):
    model, header = load_face_detector(SAMPLES / "models" / "faces_dbvae.safetensors")
    assert sum(g["images"] for g in detection_by_group(model, group_folder)["groups"].values()) == 9
    with pytest.raises(VoiceconvError, match="no group folders"):
        detection_by_group(model, group_folder / "DF")
    with pytest.raises(VoiceconvError, match="not a folder"):
        detection_by_group(model, tmp_path / "missing")
    assert main(["faces", "groups", "--model", str(SAMPLES / "models" / "faces_vae.safetensors"),
                 str(group_folder)]) == 1  # a plain VAE detects nothing: refused with one line


def test_a_report_written_beside_a_model_reads_back_and_strangers_files_are_refused(group_folder, tmp_path):
    detector = SAMPLES / "models" / "faces_dbvae.safetensors"
    beside = report_beside(tmp_path / "faces_dbvae.safetensors")
    assert beside.name == "faces_dbvae.groups.json"
    assert main(["faces", "groups", "--model", str(detector), str(group_folder), "--json", str(beside)]) == 0
    rates = read_group_rates(beside)
    assert list(rates) == ["DF", "LF", "LM"] and [n for _, n in rates.values()] == [3, 4, 2]
    for content, problem in ((b"{not json", "not a group report"), (b'{"groups": {"A": {"detected": 5, "images": 2}}}',
                                                                       "0 <= detected <= images"),
                             (b'{"groups": []}', "not a group report"), (b" " * 1_000_001, "larger than")):
        bad = tmp_path / "bad.groups.json"
        bad.write_bytes(content)
        with pytest.raises(VoiceconvError, match=problem):
            read_group_rates(bad)
