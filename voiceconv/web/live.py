"""The page's Live tab: speak into the microphone and hear the converted voice while you speak.

The browser sends what the microphone heard every :data:`BLOCK_SECONDS`
(gradio's streaming ``gr.Audio``, endpoint ``/live``). Each block goes into
this session's :class:`~voiceconv.convert.ConversionStream`, the file
conversion's own path cut in :data:`~voiceconv.convert.LIVE_WINDOWING`, and
the converted audio it completes goes straight back as 16-bit PCM in a
visually hidden JSON value, which a small Web Audio player in the page
(:data:`PLAYER_JS`) queues gap-free :data:`PLAYER_LEAD_SECONDS` ahead, skipping
what a stall piles up beyond :data:`PLAYER_BACKLOG_SECONDS`. (Gradio's
streaming audio output would need ffmpeg on the server, and its HLS player
starts three segments behind the live edge.) The page shows the delay the
player hears, counted from the click on Record (so the microphone's start-up
counts as delay), beside the server's status line: what the windows hold back
and what each block cost. When recording stops (``/live_finish``) the rest
comes back, and the whole converted take appears as a clip to replay or
download. The model is loaded and run once when the page opens and when a
recording starts, so the first block never waits for it (gradio drops the
microphone's blocks while its stream is opening).

Resources are bounded: one stream per browser session (a new recording
replaces it), at most ``limits.concurrency`` streams at once, each at most
``limits.max_seconds`` long; a stream is dropped when recording stops, when
the page is closed (gradio's ``unload``), and after :data:`IDLE_SECONDS`
without audio.
"""

from __future__ import annotations

import base64
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import gradio as gr
import numpy as np
import soundfile as sf
from gradio.data_classes import FileData
from pydantic import model_validator

from voiceconv.convert import LIVE_WINDOWING, ConversionStream, Converter
from voiceconv.web.limits import Limits, UploadError
from voiceconv.web.messages import shown_as_message

BLOCK_SECONDS = 0.1  # how often the browser sends the microphone's audio
IDLE_SECONDS = 30.0  # a stream that got no audio for this long is dropped
PLAYER_LEAD_SECONDS = 0.05  # the player schedules each block this far ahead, against network jitter
PLAYER_BACKLOG_SECONDS = 0.4  # above the bursts a WORLD chunk sets off; past this much queued (a stall), audio is skipped
STREAM_NAME = "microphone"  # how errors name the live input
MICROPHONE_RATES = (48000, 44100)  # what browsers deliver; each rate has its own resampling filter, made once

START_PLAYER_JS = """
(...inputs) => {
  const old = window.voiceconvLive;
  if (old && old.context) old.context.close();
  const context = new (window.AudioContext || window.webkitAudioContext)();
  context.resume();
  window.voiceconvLive = {context, clicked: performance.now(), next: 0, seconds: 0, skipped: 0, played: []};
  const shown = document.querySelector("#live-delay");
  if (shown) shown.textContent = "Listening...";
  return inputs;
}
"""

PLAYER_JS = """
(block) => {
  const live = window.voiceconvLive;
  if (!live || !block || !block.pcm) return [];
  const bytes = Uint8Array.from(atob(block.pcm), c => c.charCodeAt(0));
  const pcm = new Int16Array(bytes.buffer);
  if (!pcm.length) return [];
  const context = live.context;
  context.resume();
  const buffer = context.createBuffer(1, pcm.length, block.rate);
  const samples = buffer.getChannelData(0);
  for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 32768;
  const source = context.createBufferSource();
  source.buffer = buffer;
  source.connect(context.destination);
  const start = Math.max(live.next, context.currentTime + LEAD);
  // After a stall the queue grows: skip what lies beyond BACKLOG seconds of it, so the delay stays bounded.
  const skip = Math.min(buffer.duration, Math.max(0, start - context.currentTime - LEAD - BACKLOG));
  live.skipped += skip;
  if (skip >= buffer.duration) return [];
  source.start(start, skip);
  live.next = start + buffer.duration - skip;
  live.seconds += buffer.duration - skip;
  // What played when (ms on performance.now()): the block's first sample played sits block.start + skip seconds into
  // the input as the server received it, which had block.end seconds when it made this block.
  const playsAt = performance.now() + 1000 * (start - context.currentTime);
  const fromClick = (playsAt - live.clicked) / 1000 - block.start - skip;  // counting the microphone's start-up
  live.played.push({block: block.block, start: block.start + skip, end: block.end, final: block.final, playsAt,
                    fromClick});
  const delays = live.played.filter(p => !p.final).map(p => p.fromClick).sort((a, b) => a - b);
  const shown = document.querySelector("#live-delay");
  if (shown && delays.length) shown.textContent = `You hear yourself ${delays[delays.length >> 1].toFixed(2)} s ` +
    `after you speak (median over ${delays.length} blocks, counted from the click on Record; ` +
    `${live.seconds.toFixed(1)} s played` + (live.skipped > 0 ? `, ${live.skipped.toFixed(1)} s skipped to keep up)` : ")");
  return [];
}
""".replace("LEAD", str(PLAYER_LEAD_SECONDS)).replace("BACKLOG", str(PLAYER_BACKLOG_SECONDS))


@dataclass
class LiveSession:
    """One browser session's live conversion: its stream, the converted take so far and its timings."""

    stream: ConversionStream | None  # None once finished
    last_audio: float = field(default_factory=time.monotonic)
    take: list[np.ndarray] = field(default_factory=list)  # converted blocks [n] at stream.sample_rate
    sample_rate: int = 0
    input_rate: int = 0
    samples_in: int = 0  # input received, at input_rate (the stream's own count ends with the stream)
    blocks: int = 0
    compute_seconds: float = 0.0  # spent converting, all blocks together
    stopped_at_limit: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def seconds_in(self) -> float:
        """Seconds of input received."""
        return self.samples_in / self.input_rate if self.input_rate else 0.0

    @property
    def seconds_out(self) -> float:
        """Seconds of converted audio returned so far."""
        return sum(len(block) for block in self.take) / self.sample_rate if self.sample_rate else 0.0

    def take_audio(self) -> np.ndarray:
        return np.concatenate(self.take) if self.take else np.zeros(0, np.float32)


class LiveStreams:
    """The open live streams, one per session id, at most ``max_streams`` at once, each at most ``max_seconds``
    of input; streams idle for ``idle_seconds`` are dropped when another one opens."""

    def __init__(self, max_streams: int, max_seconds: float, idle_seconds: float = IDLE_SECONDS):
        self.max_streams, self.max_seconds, self.idle_seconds = max_streams, max_seconds, idle_seconds
        self._sessions: dict[str, LiveSession] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, session_id: str) -> LiveSession | None:
        with self._lock:
            return self._sessions.get(session_id)

    def open(self, session_id: str, open_stream: Callable[[], ConversionStream]) -> LiveSession:
        """A new stream for ``session_id`` (replacing its old one), refused when ``max_streams`` others are open."""
        with self._lock:
            self._drop_idle()
            self._sessions.pop(session_id, None)
            if len(self._sessions) >= self.max_streams:
                raise UploadError(f"{len(self._sessions)} live conversions are running, the most this server takes; "
                                  "try again when one ends")
            stream = open_stream()
            session = LiveSession(stream, sample_rate=stream.sample_rate, input_rate=stream.input_rate)
            self._sessions[session_id] = session
            return session

    def drop(self, session_id: str) -> LiveSession | None:
        """Forget ``session_id``'s stream (its take is returned, and no longer kept)."""
        with self._lock:
            return self._sessions.pop(session_id, None)

    def push(self, session: LiveSession, block: np.ndarray) -> tuple[float, np.ndarray]:
        """Convert ``block`` ``[n]`` in ``session``: (where the converted audio starts in the take, in seconds; the
        converted audio ``[m]``). Past ``max_seconds`` of input the stream is finished (the block cut there) and
        later blocks give nothing."""
        with session.lock:
            started = session.seconds_out
            if session.stream is None:
                return started, np.zeros(0, np.float32)
            stream, began = session.stream, time.perf_counter()
            room = max(0, math.floor((self.max_seconds - stream.samples_in / stream.input_rate) * stream.input_rate))
            try:
                out = stream.push(block[:room])
                session.samples_in += min(len(block), room)
                if len(block) >= room:
                    out = np.concatenate([out, stream.finish()])
                    session.stream, session.stopped_at_limit = None, True
            except Exception:
                session.stream = None  # a stream that raised takes nothing more
                raise
            session.compute_seconds += time.perf_counter() - began
            session.last_audio, session.blocks = time.monotonic(), session.blocks + 1
            session.take.append(out)
            return started, out

    def finish(self, session: LiveSession) -> tuple[float, np.ndarray]:
        """The rest of ``session``'s converted audio, as :meth:`push` gives it (nothing if it already ended)."""
        with session.lock:
            started = session.seconds_out
            if session.stream is None:
                return started, np.zeros(0, np.float32)
            stream, session.stream = session.stream, None
            out = stream.finish()  # raises for a take that was empty, too short or silent
            session.take.append(out)
            return started, out

    def _drop_idle(self) -> None:
        now = time.monotonic()
        for session_id in [key for key, s in self._sessions.items() if now - s.last_audio > self.idle_seconds]:
            del self._sessions[session_id]


class LiveHandlers:
    """What the Live tab's microphone events do; ``handlers`` is the page's (models, converters, limits)."""

    def __init__(self, handlers, limits: Limits):
        self.handlers, self.limits = handlers, limits
        self.streams = LiveStreams(limits.concurrency, limits.max_seconds)
        self._warm: set[int] = set()  # converters that have run the live windows once
        self._warming = threading.Lock()

    @shown_as_message
    def push(self, audio: tuple[int, np.ndarray] | None, key: str, direction: str, pitch: str,
             request: gr.Request) -> tuple[dict, str]:
        """(converted block for the player, status line) for one block from the microphone."""
        if audio is None:
            return gr.skip(), gr.skip()
        rate, block = _mono_float(audio)
        if not len(block):
            return gr.skip(), f"The last {STREAM_NAME} block held no samples; nothing to convert."
        session = self.streams.get(request.session_hash)
        if session is None:
            converter = self._converter(key)
            session = self.streams.open(request.session_hash, lambda: converter.open_stream(
                rate, direction, pitch, LIVE_WINDOWING, name=STREAM_NAME))
        elif session.stream is not None and session.stream.input_rate != rate:
            raise UploadError(f"the microphone's sample rate changed from {session.stream.input_rate} to {rate} Hz "
                              "mid-recording; record again")
        started, out = self.streams.push(session, block)
        return _player_block(out, session, started, final=False), _status(session, self.limits)

    @shown_as_message
    def finish(self, request: gr.Request) -> tuple[dict, tuple[int, np.ndarray] | None, str]:
        """(the last converted block, the whole converted take, status line) when recording stops."""
        session = self.streams.get(request.session_hash)
        if session is None:
            return gr.skip(), None, "Nothing was recorded: press Record and speak."
        try:
            started, out = self.streams.finish(session)
        finally:
            self.streams.drop(request.session_hash)
        take = _pcm16(session.take_audio())
        return (_player_block(out, session, started, final=True), (session.sample_rate, take),
                _finished_status(session))

    @shown_as_message
    def prepare(self, key: str) -> None:
        """Recording is starting: load the model, run it once and make each microphone rate's resampling filter
        (opening a stream makes it), so that the first block is not held up: a wait the player would never catch
        up."""
        converter = self._converter(key)
        with self._warming:
            if id(converter) not in self._warm:
                streams = [converter.open_stream(rate, windowing=LIVE_WINDOWING) for rate in MICROPHONE_RATES]
                rate = MICROPHONE_RATES[0]
                streams[0].push(np.random.default_rng(0).normal(0.0, 0.01, rate).astype(np.float32))  # [rate]: 1 s
                self._warm.add(id(converter))

    def leave(self, request: gr.Request) -> None:
        """The page was closed: drop its stream."""
        self.streams.drop(request.session_hash)

    def _converter(self, key: str) -> Converter:
        return self.handlers.converters.get(self.handlers.model(key).path)


def live_tab(handlers, voice: list[gr.Dropdown]) -> LiveHandlers:
    """The Live tab's parts and events; ``voice`` holds the shared model, direction and pitch controls (read when
    a recording starts). Endpoints: ``/live`` (one microphone block in, converted audio out) and ``/live_finish``."""
    live = LiveHandlers(handlers, handlers.limits)
    gr.Markdown("Press **Record** and speak: you hear the converted voice while you speak, and the delay you hear "
                "is shown below. The model, direction and pitch above apply from the next recording; takes are "
                f"limited to {handlers.limits.max_seconds:g} s. Use headphones, or the microphone hears the converted "
                "voice too.")
    with gr.Row():
        with gr.Column():
            microphone = microphone_input(gr.Audio(sources=["microphone"], streaming=True, type="numpy",
                                                   label="Microphone", elem_id="live-input"))
            status = gr.Markdown(elem_id="live-status")
            gr.HTML('<p id="live-delay"></p>')  # the player writes the delay it measures here
        take = gr.Audio(label="Converted take (when you stop)", interactive=False, buttons=["download"],
                        elem_id="live-take")
    block = gr.JSON(visible="hidden", elem_id="live-block")  # each converted block, on its way to the player
    microphone.start_recording(live.prepare, voice[0], None, js=START_PLAYER_JS, api_visibility="private",
                               show_progress="hidden")
    microphone.stream(live.push, [microphone, *voice], [block, status], api_name="live",
                      stream_every=BLOCK_SECONDS, time_limit=math.ceil(handlers.limits.max_seconds) + 5,
                      show_progress="hidden")
    microphone.stop_recording(live.finish, None, [block, take, status], api_name="live_finish",
                              show_progress="hidden")
    block.change(None, block, None, js=PLAYER_JS, api_visibility="private")
    root = gr.context.Context.root_block  # the page being built
    if root is not None:
        root.load(live.prepare, voice[0], None, api_visibility="private", show_progress="hidden")  # load the model
        root.unload(live.leave)  # drop a session's stream when its page closes
    return live


class MicrophoneBlock(FileData):
    """gradio's file payload; anything else (a number, text) becomes a payload without a path that names it, which
    :func:`microphone_input` refuses with a message (a validation error would reach the page as gradio's blank
    error)."""

    @model_validator(mode="before")
    @classmethod
    def _a_file(cls, value):
        if value is None or isinstance(value, dict | FileData):
            return value
        return {"path": "", "orig_name": f"{type(value).__name__} {str(value)[:20]!r}",
                "meta": {"_type": "gradio.FileData"}}


def microphone_input(component: gr.Audio) -> gr.Audio:
    """``component`` reading each block itself (libsndfile: integer or float samples, any channels) instead of
    gradio's reader, which needs ffmpeg for float WAV and fails without a message; an unreadable block, or a
    payload that is no file, is refused in one line."""
    def read(payload) -> tuple[int, np.ndarray] | None:
        if payload is None:
            return None
        if not payload.path:
            raise gr.Error(f"the {STREAM_NAME} block must be an audio file, not {payload.orig_name}",
                           print_exception=False)
        try:
            samples, rate = sf.read(payload.path, dtype="float32", always_2d=True)  # [n, channels], in [-1, 1]
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as err:
            raise gr.Error(f"the {STREAM_NAME} block is not audio that can be read ({err})",
                           print_exception=False) from None
        return int(rate), samples

    component.preprocess = read  # on this instance: a subclass would make gradio write a .pyi stub
    component.data_model = MicrophoneBlock
    return component


def _mono_float(audio: tuple[int, np.ndarray]) -> tuple[int, np.ndarray]:
    """gradio's ``(rate, samples [n] or [n, channels])`` of integers or floats -> ``(rate, float32 [n])``: integers
    scaled to [-1, 1) by their type's range (before the channels are averaged), channels averaged."""
    rate, samples = audio
    samples = np.asarray(samples)
    if not isinstance(rate, int | np.integer) or not 8000 <= rate <= 192000:
        raise UploadError(f"the {STREAM_NAME}'s sample rate {rate!r} is not between 8000 and 192000 Hz")
    if samples.ndim not in (1, 2) or samples.dtype.kind not in "iuf":
        raise UploadError(f"expected mono or multi-channel audio samples, got {samples.dtype} of shape {samples.shape}")
    if samples.dtype.kind in "iu":
        info = np.iinfo(samples.dtype)
        middle = (int(info.max) + int(info.min) + 1) / 2  # 0 for signed, 128 for 8-bit unsigned
        samples = (samples.astype(np.float64) - middle) / (int(info.max) + 1 - middle)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    samples = samples.astype(np.float32)
    if not np.isfinite(samples).all():
        raise UploadError(f"the {STREAM_NAME} block holds NaN or infinite samples")
    return int(rate), samples


def _pcm16(wav: np.ndarray) -> np.ndarray:
    return (np.clip(wav, -1.0, 1.0) * 32767).astype(np.int16)


def _player_block(wav: np.ndarray, session: LiveSession, start: float, final: bool) -> dict:
    """What the page's player takes: 16-bit PCM (base64) at ``rate``; where it ``start``s in the take and where
    the input ``end``ed when it was made (seconds); how many input blocks had come (``block``); and whether it is
    the ``final`` one, made when recording stopped."""
    if not len(wav):
        return gr.skip()
    return {"block": session.blocks, "rate": session.sample_rate, "start": round(start, 4),
            "end": round(session.seconds_in, 4), "final": final,
            "pcm": base64.b64encode(_pcm16(wav).astype("<i2").tobytes()).decode("ascii")}


def _status(session: LiveSession, limits: Limits) -> str:
    stream = session.stream
    if stream is None:
        return (f"Stopped at the {limits.max_seconds:g} s limit of a take: press Stop to get the take, then Record "
                "again." if session.stopped_at_limit else "Stopped.")
    factor = session.compute_seconds / session.seconds_in if session.seconds_in else 0.0
    return (f"Converting: {session.seconds_in:.1f} s heard, {session.seconds_out:.1f} s returned; the windows hold "
            f"back {stream.held_back_seconds:.2f} s; converting took {factor:.2f} s per second of audio (real-time "
            "factor)")


def _finished_status(session: LiveSession) -> str:
    return f"Done: {session.seconds_out:.1f} s converted in {session.blocks} blocks."
