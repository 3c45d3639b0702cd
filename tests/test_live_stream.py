"""Live conversion: a stream pushed block by block gives the file conversion's samples, bit for bit.

``Converter.open_stream`` runs the file conversion's own stages (resampler,
WORLD chunks cut at quiet moments, windows, cross-fades, loudness matching)
one block at a time, so the tolerance is zero: whatever the block sizes, the
pushes' and finish's outputs joined are exactly ``Converter.convert`` of the
whole input with the same windowing. The web page's bounds on live streams
(one per session, a few at once, a maximum length) are tested here too.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SAMPLES
from voiceconv.audio.io import load_audio
from voiceconv.convert import LIVE_WINDOWING, REFINE_ITERATIONS, Converter, Windowing
from voiceconv.errors import EmptyAudioError, NonFiniteAudioError, SilentAudioError, TooShortError, VoiceconvError

MODEL = SAMPLES / "models" / "kathleen_rms.safetensors"
CLIP = SAMPLES / "audio" / "kathleen_arctic_a0591.flac"  # 1.8 s
OTHER_CLIP = SAMPLES / "audio" / "kathleen_arctic_a0592.flac"  # 2.6 s
MICROPHONE_RATE = 48000  # what a browser delivers: the stream resamples it


@pytest.fixture(scope="module")
def converter() -> Converter:
    return Converter(MODEL)


def test_streams_and_files_default_to_the_same_windowing(converter):
    """``open_stream`` and ``convert_stream`` both cut with the converter's own windowing unless told otherwise."""
    wav = load_audio(OTHER_CLIP, converter.features.sample_rate)
    stream = converter.open_stream(converter.features.sample_rate)
    assert stream.windowing == converter.windowing
    joined = np.concatenate([stream.push(wav), stream.finish()])
    np.testing.assert_array_equal(joined, np.concatenate(list(converter.convert_stream([wav]))))


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return load_audio(CLIP, MICROPHONE_RATE)


def streamed(converter: Converter, wav: np.ndarray, rate: int, block: int, **options) -> np.ndarray:
    """``wav`` pushed ``block`` samples at a time, then finished; every output joined."""
    stream = converter.open_stream(rate, **{"windowing": LIVE_WINDOWING, **options})
    outputs = [stream.push(wav[start : start + block]) for start in range(0, len(wav), block)]
    return np.concatenate([*outputs, stream.finish()])


@pytest.mark.parametrize("block", [1, 137, 4800, 10**9], ids=["1 sample", "137 samples", "100 ms", "one block"])
def test_stream_equals_the_file_conversion_whatever_the_blocks(converter, speech, block):
    expected = converter.convert(speech, MICROPHONE_RATE, windowing=LIVE_WINDOWING)
    np.testing.assert_array_equal(streamed(converter, speech, MICROPHONE_RATE, block), expected)


def test_a_finished_stream_lets_its_aperiodicity_thread_go(converter, speech):
    """A live stream analyses aperiodicity on a second thread (the file conversion above does not, and gives the
    same samples); a server opens many streams, so each lets its thread go when it finishes."""
    import threading

    def d4c_threads() -> int:
        return sum(thread.name.startswith("voiceconv-d4c") for thread in threading.enumerate())

    before = d4c_threads()
    stream = converter.open_stream(MICROPHONE_RATE, windowing=LIVE_WINDOWING)
    stream.push(speech)
    assert d4c_threads() == before + 1
    stream.finish()
    assert d4c_threads() == before


def test_a_windowing_sets_the_griffin_lim_iterations_of_its_windows(converter, speech):
    """A windowing that names no iteration count, or the pipeline's own (REFINE_ITERATIONS), converts exactly as the
    pipeline does; one that names another count refines its windows with that many, and the converter's own
    pipeline is left as it was."""
    import dataclasses

    own = dataclasses.replace(LIVE_WINDOWING, refine_iterations=None)
    named = dataclasses.replace(LIVE_WINDOWING, refine_iterations=REFINE_ITERATIONS)
    eight = dataclasses.replace(LIVE_WINDOWING, refine_iterations=8)
    assert converter.pipeline.vocoder.n_iter == REFINE_ITERATIONS != 8
    with_own = converter.convert(speech, MICROPHONE_RATE, windowing=own)
    np.testing.assert_array_equal(converter.convert(speech, MICROPHONE_RATE, windowing=named), with_own)
    with_eight = converter.convert(speech, MICROPHONE_RATE, windowing=eight)
    assert with_own.shape == with_eight.shape and not np.array_equal(with_own, with_eight)
    assert np.corrcoef(with_own, with_eight)[0, 1] > 0.9  # the same speech, refined more
    assert converter.pipeline.vocoder.n_iter == REFINE_ITERATIONS
    with pytest.raises(VoiceconvError, match="refine_iterations"):
        converter.open_stream(MICROPHONE_RATE, windowing=dataclasses.replace(LIVE_WINDOWING, refine_iterations=-1))


def test_stream_equals_the_file_conversion_in_any_windowing_direction_and_pitch(converter):
    wav = load_audio(OTHER_CLIP, converter.features.sample_rate)
    windowing = Windowing(window=0.5, context=0.1, crossfade=0.05, align_chunk=0.3, align_context=0.1)
    expected = converter.convert(wav, converter.features.sample_rate, "b2a", "+3", windowing)
    got = streamed(converter, wav, converter.features.sample_rate, 1000, direction="b2a", pitch="+3",
                   windowing=windowing)
    np.testing.assert_array_equal(got, expected)


def test_stream_equals_the_file_conversion_with_the_coarser_world_analysis(speech):
    """New models' WORLD analysis (D4C every 32 ms, interpolated per chunk) keeps the stream equal to the file."""
    from voiceconv.audio.world import DEFAULT_SETTINGS

    coarse = Converter(MODEL, world=DEFAULT_SETTINGS)
    assert coarse.alignment("a2b").settings.aperiodicity_period_ms == 32.0
    expected = coarse.convert(speech, MICROPHONE_RATE, windowing=LIVE_WINDOWING)
    np.testing.assert_array_equal(streamed(coarse, speech, MICROPHONE_RATE, 4800), expected)


def test_two_streams_keep_their_own_state(converter, speech):
    """Interleaved pushes into two streams (different input, direction and pitch) give each its own conversion."""
    other = load_audio(OTHER_CLIP, MICROPHONE_RATE)
    first = converter.open_stream(MICROPHONE_RATE, "a2b", "auto", LIVE_WINDOWING)
    second = converter.open_stream(MICROPHONE_RATE, "b2a", "source", LIVE_WINDOWING)
    outputs: dict[str, list[np.ndarray]] = {"first": [], "second": []}
    for start in range(0, max(len(speech), len(other)), 2400):
        outputs["first"].append(first.push(speech[start : start + 2400]))
        outputs["second"].append(second.push(other[start : start + 2400]))
    outputs["first"].append(first.finish())
    outputs["second"].append(second.finish())
    np.testing.assert_array_equal(np.concatenate(outputs["first"]),
                                  converter.convert(speech, MICROPHONE_RATE, "a2b", "auto", LIVE_WINDOWING))
    np.testing.assert_array_equal(np.concatenate(outputs["second"]),
                                  converter.convert(other, MICROPHONE_RATE, "b2a", "source", LIVE_WINDOWING))


def test_live_stream_holds_back_no_more_than_its_windowing_says(converter):
    rate, block = converter.features.sample_rate, 1600  # no resampling; 100 ms blocks
    wav = load_audio(OTHER_CLIP, rate)
    stream = converter.open_stream(rate, windowing=LIVE_WINDOWING)
    bound = LIVE_WINDOWING.max_held_back_seconds(converter.features) + block / rate
    held_back = []
    for start in range(0, len(wav), block):
        stream.push(wav[start : start + block])
        held_back.append(stream.held_back_seconds)
    assert 0.0 < max(held_back) <= bound < 1.0
    stream.finish()
    assert stream.samples_out == len(wav) and stream.held_back_seconds == 0.0


def held_back_while_streaming(converter: Converter, wav: np.ndarray, windowing: Windowing, block: int) -> float:
    """The most audio a stream cut in ``windowing`` held back while ``wav`` was pushed ``block`` samples at a time."""
    stream = converter.open_stream(converter.features.sample_rate, windowing=windowing)
    held_back = []
    for start in range(0, len(wav), block):
        stream.push(wav[start : start + block])
        held_back.append(stream.held_back_seconds)
    stream.finish()
    return max(held_back)


def test_live_windowing_waits_for_one_world_chunk_not_a_chunk_and_a_window(converter):
    """Each WORLD chunk is its own window, so a live sample waits for its chunk to be cut, not then for a window
    past it as well: a stream holds back at most a chunk, its context and half a fade (plus the block)."""
    rate, block = converter.features.sample_rate, 1600
    wav = load_audio(OTHER_CLIP, rate)
    chunks = dict(align_chunk=0.2, align_context=0.08)
    one_wait = held_back_while_streaming(converter, wav, Windowing(window=None, **chunks), block)
    two_waits = held_back_while_streaming(converter, wav, Windowing(0.128, 0.064, 0.048, **chunks), block)
    assert one_wait <= 0.2 + 0.08 + 0.01 + block / rate < two_waits
    assert LIVE_WINDOWING.chunks_are_windows
    live = held_back_while_streaming(converter, wav, LIVE_WINDOWING, block)
    assert live <= LIVE_WINDOWING.align_chunk + LIVE_WINDOWING.align_context + 0.01 + block / rate


def test_chunk_windows_without_pitch_alignment(converter, speech):
    """A model from before pitch alignment (no WORLD pass) is still cut into quiet chunks as windows."""
    plain = Converter(MODEL)
    plain.alignments = {}
    assert plain.alignment("a2b") is None
    got = streamed(plain, speech, MICROPHONE_RATE, 4800)
    np.testing.assert_array_equal(got, plain.convert(speech, MICROPHONE_RATE, windowing=LIVE_WINDOWING))
    assert len(got) == round(len(speech) / 3) and np.abs(got).max() > 0.01


def test_a_world_lead_in_costs_no_delay(converter):
    """More input before each chunk for WORLD's analysis holds nothing back longer, and the stream still equals the
    file conversion."""
    rate, block = converter.features.sample_rate, 1600
    wav = load_audio(OTHER_CLIP, rate)
    short, long = (Windowing(window=None, align_chunk=0.15, align_context=0.064, align_lead_in=lead) for lead in (None, 0.3))
    assert long.max_held_back_seconds(converter.features) == short.max_held_back_seconds(converter.features)
    assert held_back_while_streaming(converter, wav, long, block) == held_back_while_streaming(converter, wav, short, block)
    got = streamed(converter, wav, rate, 1000, windowing=long)
    np.testing.assert_array_equal(got, converter.convert(wav, rate, windowing=long))
    assert not np.array_equal(got, converter.convert(wav, rate, windowing=short))  # WORLD did see the lead-in


def test_chunk_windows_need_a_chunk_length_and_a_lead_in_no_shorter_than_the_context(converter):
    with pytest.raises(VoiceconvError, match="align_chunk"):
        Windowing(window=None, align_chunk=None).plan(converter.features)
    with pytest.raises(VoiceconvError, match="lead-in"):
        Windowing(window=1.0, context=0.1, crossfade=0.05, align_chunk=0.3, align_context=0.2,
                  align_lead_in=0.1).plan(converter.features)


@pytest.mark.parametrize("wav,error", [(np.zeros(0, np.float32), EmptyAudioError),
                                       (np.full(300, 0.1, np.float32), TooShortError),
                                       (np.zeros(16000, np.float32), SilentAudioError)],
                         ids=["empty", "shorter than the minimum", "silent"])
def test_stream_refuses_at_finish_what_the_file_conversion_refuses(converter, wav, error):
    with pytest.raises(error):
        converter.convert(wav, converter.features.sample_rate, windowing=LIVE_WINDOWING)
    stream = converter.open_stream(converter.features.sample_rate, windowing=LIVE_WINDOWING, name="microphone")
    assert np.abs(stream.push(wav)).max(initial=0.0) < 1e-4  # nothing to hear before finish refuses it
    with pytest.raises(error, match="microphone"):
        stream.finish()


def test_finished_or_broken_stream_takes_nothing_more(converter, speech):
    stream = converter.open_stream(MICROPHONE_RATE)
    stream.push(speech)
    stream.finish()
    with pytest.raises(VoiceconvError, match="finished"):
        stream.push(speech[:100])
    broken = converter.open_stream(MICROPHONE_RATE)
    with pytest.raises(NonFiniteAudioError):
        broken.push(np.array([0.1, np.nan], np.float32))
    with pytest.raises(VoiceconvError, match="finished"):
        broken.finish()
    with pytest.raises(VoiceconvError, match="direction"):
        converter.open_stream(MICROPHONE_RATE, direction="sideways")


def test_page_bounds_live_streams(converter, speech):
    """One stream per session (a new one replaces it), at most ``max_streams`` at once, each cut at ``max_seconds``
    of input and then finished; dropping a session forgets it."""
    pytest.importorskip("gradio", reason="the web page needs the app extra: pip install -e '.[app]'")
    from voiceconv.web.limits import UploadError
    from voiceconv.web.live import LiveStreams

    streams = LiveStreams(max_streams=2, max_seconds=1.0)
    open_stream = lambda: converter.open_stream(MICROPHONE_RATE, windowing=LIVE_WINDOWING)  # noqa: E731
    first = streams.open("alice", open_stream)
    assert streams.open("alice", open_stream) is not first and len(streams) == 1  # a new take replaces the old
    streams.open("bob", open_stream)
    with pytest.raises(UploadError, match="2 live conversions are running"):
        streams.open("carol", open_stream)
    alice = streams.get("alice")
    half = MICROPHONE_RATE // 2
    (start, first_half), (second_start, rest) = streams.push(alice, speech[:half]), streams.push(alice, speech[half:])
    assert alice.stream is None and alice.stopped_at_limit  # 1.8 s pushed, cut at 1 s and finished
    assert start == 0.0 and second_start == len(first_half) / converter.features.sample_rate
    np.testing.assert_array_equal(np.concatenate([first_half, rest]),
                                  converter.convert(speech[:MICROPHONE_RATE], MICROPHONE_RATE, windowing=LIVE_WINDOWING))
    assert len(streams.push(alice, speech)[1]) == 0 and len(streams.finish(alice)[1]) == 0
    streams.drop("bob")
    assert streams.get("bob") is None and len(streams) == 1


def test_preparing_a_recording_makes_each_microphone_rates_resampling_filter(converter):
    """Record runs the model once from each rate a browser delivers, so the first block of a take never waits for
    its resampling filter to be made (and scipy imported): a wait the gap-free player would keep all take long."""
    pytest.importorskip("gradio", reason="the web page needs the app extra: pip install -e '.[app]'")
    from types import SimpleNamespace

    from voiceconv.audio.resample import StreamResampler, polyphase_filter
    from voiceconv.web.limits import Limits
    from voiceconv.web.live import MICROPHONE_RATES, LiveHandlers

    handlers = SimpleNamespace(model=lambda key: SimpleNamespace(path=MODEL),
                               converters=SimpleNamespace(get=lambda path: converter))
    live = LiveHandlers(handlers, Limits())
    polyphase_filter.cache_clear()
    live.prepare("default")
    made = polyphase_filter.cache_info().misses
    for rate in MICROPHONE_RATES:
        StreamResampler(rate, converter.features.sample_rate)  # what the take's stream makes
    assert made >= len(MICROPHONE_RATES) and polyphase_filter.cache_info().misses == made  # none made again
