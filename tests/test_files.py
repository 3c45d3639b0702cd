"""voiceconv.files: atomic outputs leave nothing half-written, even when interrupted at the worst moment."""

from __future__ import annotations

import signal

import pytest

from voiceconv import files


def test_an_interrupt_just_after_the_temporary_file_is_made_removes_it(tmp_path, monkeypatch):
    """Ctrl-C (or SIGTERM as an interrupt) landing between the temporary file's creation and the block that owns
    it used to leave a ``.partial`` file behind (a killed batch run's CI flake); now it waits for that moment to
    pass, then stops the write with nothing left."""
    made = files._locked_temporary

    def made_then_interrupted(path):
        fd, tmp = made(path)
        signal.raise_signal(signal.SIGINT)  # the handler runs here, before the name reaches atomic_output
        return fd, tmp

    monkeypatch.setattr(files, "_locked_temporary", made_then_interrupted)
    # Ctrl-C as a terminal delivers it: a process started in the background (nohup ... &) inherits SIGINT ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with files.atomic_output(tmp_path / "out.wav") as tmp:
                tmp.write_bytes(b"never")
        assert list(tmp_path.iterdir()) == []
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_an_atomic_output_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "out.txt"
    with files.atomic_output(target) as tmp:
        tmp.write_text("done")
    assert target.read_text() == "done" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    with pytest.raises(RuntimeError), files.atomic_output(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("failed midway")
    assert target.read_text() == "done" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]
