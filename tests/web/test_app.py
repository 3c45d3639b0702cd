"""The web page: zip checks and limits directly, then ``python app.py`` as a real server driven by gradio_client."""

from __future__ import annotations

import csv
import io
import os
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from conftest import REPO
from helpers import DEFAULT_MODEL, LONG_CLIP, SHORT_CLIP, STARTUP_SECONDS, make_zip, refusal, running_app
from voiceconv.audio.io import load_audio
from voiceconv.errors import CorruptAudioError
from voiceconv.modelfiles.format import read_header
from voiceconv.web.archive import UnsafeArchiveError, check_zip, extract_zip
from voiceconv.web.limits import Limits, UploadError, check_upload_size, user_message
from voiceconv.web.models import discover_models, model_documents, model_summary_markdown
from voiceconv.web.spectrogram import colorize

SERVER_MAX_SECONDS = "2.2"  # the server under test converts SHORT_CLIP and refuses LONG_CLIP




# --- zip checks --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("member", ["../evil.wav", "sub/../../evil.wav", "..\\evil.wav", "/etc/evil.wav",
                                    "C:/evil.wav"])
def test_zip_members_escaping_the_folder_are_refused(tmp_path, member):
    archive = make_zip(tmp_path / "slip.zip", {"ok.wav": b"x", member: b"x"})
    with pytest.raises(UnsafeArchiveError, match="outside the folder|absolute path"):
        extract_zip(archive, tmp_path / "out", Limits())
    assert not (tmp_path / "evil.wav").exists() and not (tmp_path / "out").exists()


def test_zip_symlink_members_are_refused(tmp_path):
    link = zipfile.ZipInfo("link.wav")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(tmp_path / "links.zip", "w") as archive:
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        check_zip(tmp_path / "links.zip", Limits())


def test_zip_with_too_many_members_is_refused(tmp_path):
    archive = make_zip(tmp_path / "many.zip", {f"clip{i}.wav": b"x" for i in range(4)})
    with pytest.raises(UnsafeArchiveError, match="holds 4 files; a batch is limited to 3"):
        check_zip(archive, Limits(max_batch_files=3))


def test_zip_too_large_when_unpacked_is_refused(tmp_path):
    members = {"a.wav": os.urandom(300_000), "b.wav": os.urandom(300_000)}
    archive = make_zip(tmp_path / "big.zip", members, zipfile.ZIP_STORED)
    with pytest.raises(UnsafeArchiveError, match="unpacks to 0.6 MB; the limit is 0.5 MB"):
        check_zip(archive, Limits(max_zip_total_mb=0.5))
    assert len(check_zip(archive, Limits(max_zip_total_mb=1.0))) == 2


def test_highly_compressed_zip_member_is_refused_as_a_bomb(tmp_path):
    archive = make_zip(tmp_path / "bomb.zip", {"zeros.wav": bytes(4_000_000)})
    with pytest.raises(UnsafeArchiveError, match="zip bomb"):
        check_zip(archive, Limits(max_zip_total_mb=100))


def test_safe_zip_unpacks_its_files_and_skips_macos_resource_forks(tmp_path):
    archive = make_zip(tmp_path / "ok.zip", {"a.wav": b"first", "sub/b.wav": b"second", "__MACOSX/._a.wav": b"fork"})
    written = extract_zip(archive, tmp_path / "out", Limits())
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == ["a.wav", "sub/b.wav"]
    assert (tmp_path / "out" / "sub" / "b.wav").read_bytes() == b"second"


def test_zip_member_clashing_with_a_folder_is_refused(tmp_path):
    archive = make_zip(tmp_path / "clash.zip", {"take": b"a file", "take/two.wav": b"x"})
    with pytest.raises(UnsafeArchiveError, match="'take/two.wav' cannot be unpacked"):
        extract_zip(archive, tmp_path / "out", Limits())


def test_a_file_that_is_not_a_zip_is_refused(tmp_path):
    (tmp_path / "fake.zip").write_text("not a zip")
    with pytest.raises(UnsafeArchiveError, match="fake.zip is not a readable zip file"):
        check_zip(tmp_path / "fake.zip", Limits())


# --- limits, models, pictures ------------------------------------------------------------------------------------


def test_upload_size_limit_names_the_file_and_the_limit(tmp_path):
    (tmp_path / "big.wav").write_bytes(bytes(3000))
    with pytest.raises(UploadError, match=r"big.wav is 0.0 MB; uploads are limited to 0.002 MB"):
        check_upload_size(tmp_path / "big.wav", Limits(max_upload_mb=0.002))
    check_upload_size(tmp_path / "big.wav", Limits(max_upload_mb=0.003))


def test_error_messages_name_the_upload_not_the_server_temp_path():
    err = CorruptAudioError("/tmp/gradio/0123abcd/speech.wav", "truncated", "get the complete file")
    assert user_message(err) == "speech.wav: truncated (get the complete file)"


def test_discovery_skips_files_that_are_not_voice_models(tmp_path):
    (tmp_path / "junk.safetensors").write_text("not a model")
    models = discover_models(tmp_path, [DEFAULT_MODEL])
    assert list(models) == ["kathleen_rms"]
    info = models["kathleen_rms"]
    assert info.direction_choices() == [("kathleen → rms", "a2b"), ("rms → kathleen", "b2a")]
    training = read_header(DEFAULT_MODEL)["training"]
    assert info.steps == training["steps"] and info.training_hours == pytest.approx(training["training_seconds"] / 3600)


def test_model_card_shows_header_facts_card_and_evaluation_reports():
    info = discover_models(None, [DEFAULT_MODEL])["kathleen_rms"]
    summary = model_summary_markdown(info)
    training = read_header(DEFAULT_MODEL)["training"]
    assert f"**training steps:** {training['steps']}" in summary
    assert f"**training time:** {training['training_seconds'] / 3600:.2f} h" in summary
    documents = model_documents(info)
    assert list(documents) == ["Model card", "Evaluation: a2b", "Evaluation: b2a"]  # both directions evaluated
    assert documents["Model card"] == DEFAULT_MODEL.with_suffix(".md").read_text(encoding="utf-8")


def test_spectrogram_picture_has_low_frequencies_at_the_bottom():
    image = -np.ones((1, 8, 5))
    image[0, 0, :] = 1.0  # loudest in the lowest mel band
    picture = colorize(image, row_scale=2, max_column_scale=3)
    assert picture.shape == (16, 15, 3) and picture.dtype == np.uint8
    assert picture[-1].mean() > 200 and picture[0].mean() < 10  # pale yellow bottom row, black top row


# --- the real server ---------------------------------------------------------------------------------------------








@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    with running_app(tmp_path_factory.mktemp("app"), "--max-seconds", SERVER_MAX_SECONDS) as url:
        yield url


@pytest.fixture
def client(server, tmp_path):
    from gradio_client import Client

    return Client(server, verbose=False, download_files=str(tmp_path))




def test_app_without_models_exits_with_a_message(tmp_path):
    pytest.importorskip("gradio", reason="the web page needs the app extra: pip install -e '.[app]'")
    result = subprocess.run([sys.executable, str(REPO / "app.py"), "--models-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=STARTUP_SECONDS, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == f"app.py: error: no voice models found in {tmp_path}; pass --model or --models-dir\n"


def test_server_converts_an_uploaded_file(client):
    from gradio_client import handle_file

    audio, input_picture, output_picture = client.predict(handle_file(str(SHORT_CLIP)), "kathleen_rms", "a2b",
                                                          api_name="/convert")
    assert Path(audio).name == "kathleen_arctic_a0591_rms.wav"
    wav, rate = sf.read(audio)
    assert rate == 16000 and abs(len(wav) / rate - sf.info(SHORT_CLIP).duration) < 0.05
    assert 0.01 < np.abs(wav).max() <= 1.0
    for picture in (input_picture, output_picture):
        with Image.open(picture) as image:
            assert image.format == "PNG" and image.mode == "RGB" and image.height == 256


def test_server_pitch_setting_moves_the_converted_pitch_and_refuses_nonsense(client):
    from gradio_client import handle_file

    from voiceconv.audio import world

    def median_f0(wav: np.ndarray) -> float:
        f0, _ = world.extract_f0(wav, 16000)
        return float(np.median(f0[f0 > 0]))

    audio = client.predict(handle_file(str(SHORT_CLIP)), "kathleen_rms", "a2b", "+4", api_name="/convert")[0]
    moved = median_f0(sf.read(audio, dtype="float32")[0]) / median_f0(load_audio(SHORT_CLIP, 16000))
    assert 12 * np.log2(moved) == pytest.approx(4.0, abs=0.5)  # the speaker's own pitch, 4 semitones up
    message = refusal(client, handle_file(str(SHORT_CLIP)), "kathleen_rms", "a2b", "higher",
                      api_name="/convert")
    assert message.startswith("pitch must be 'auto', 'source' or a number of semitones")


def test_server_explains_a_file_that_is_not_audio(client, tmp_path):
    from gradio_client import handle_file

    (tmp_path / "speech.wav").write_text("this is text, not audio")
    message = refusal(client, handle_file(str(tmp_path / "speech.wav")), "kathleen_rms", "a2b", api_name="/convert")
    assert message.startswith("speech.wav: is not an audio file")


def test_server_refuses_a_clip_over_the_duration_limit(client):
    from gradio_client import handle_file

    message = refusal(client, handle_file(str(LONG_CLIP)), "kathleen_rms", "b2a", api_name="/convert")
    assert message == ("kathleen_arctic_a0592.flac is 2.6 s long; clips are limited to 2.2 s "
                       "(cut it into shorter pieces)")


def test_server_only_offers_the_discovered_models(client):
    from gradio_client import handle_file

    message = refusal(client, handle_file(str(SHORT_CLIP)), str(DEFAULT_MODEL), "a2b", api_name="/convert")
    assert "unknown model" in message and "choose one of kathleen_rms" in message  # a path is no model key


def test_server_converts_a_zip_and_reports_the_failures(client, tmp_path):
    from gradio_client import handle_file

    upload = make_zip(tmp_path / "voices.zip", {"kathleen_arctic_a0591.flac": SHORT_CLIP.read_bytes(),
                                                "more/again.flac": SHORT_CLIP.read_bytes(),
                                                "more/long.flac": LONG_CLIP.read_bytes(),
                                                "notes/bad.wav": b"this is text, not audio"})
    archive, table, summary = client.predict([handle_file(str(upload))], "kathleen_rms", "a2b",
                                             api_name="/convert_batch")
    assert Path(archive).name == "kathleen_to_rms.zip"
    with zipfile.ZipFile(archive) as result:
        assert sorted(result.namelist()) == ["failures.csv", "kathleen_arctic_a0591.wav", "more/again.wav"]
        wav, rate = sf.read(io.BytesIO(result.read("more/again.wav")))
        failures = {row["file"]: row["reason"] for row in csv.DictReader(io.StringIO(result.read("failures.csv").decode()))}
    assert abs(len(wav) / rate - sf.info(SHORT_CLIP).duration) < 0.05
    assert failures["notes/bad.wav"].startswith("is not an audio file")
    assert failures["more/long.flac"].startswith("is 2.6 s long")
    assert {row[0]: row[1] for row in table["data"]} == failures
    assert summary.startswith("Converted 2 file(s)") and summary.endswith("2 failed.")


def test_server_rejects_a_zip_with_members_outside_its_folder(client, tmp_path):
    from gradio_client import handle_file

    upload = make_zip(tmp_path / "slip.zip", {"ok.flac": SHORT_CLIP.read_bytes(), "../evil.flac": b"x"})
    message = refusal(client, [handle_file(str(upload))], "kathleen_rms", "a2b", api_name="/convert_batch")
    assert message == "slip.zip: member '../evil.flac' points outside the folder ('..'); refusing the zip"


def test_voiceconv_serve_is_the_same_page_from_the_installed_command(tmp_path):
    """``voiceconv serve`` takes app.py's options from the console command (run outside the checkout) and stops
    with the same one-line message."""
    pytest.importorskip("gradio", reason="the web page needs the app extra: pip install -e '.[app]'")
    command = [sys.executable, "-m", "voiceconv", "serve"]
    helped = subprocess.run(command + ["--help"], capture_output=True, text=True, timeout=STARTUP_SECONDS, cwd=tmp_path)
    assert helped.returncode == 0 and "--max-training-jobs" in helped.stdout and "--auth-file" in helped.stdout
    result = subprocess.run(command + ["--models-dir", str(tmp_path)], capture_output=True, text=True,
                            timeout=STARTUP_SECONDS, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == (f"voiceconv serve: error: no voice models found in {tmp_path}; "
                             "pass --model or --models-dir\n")
