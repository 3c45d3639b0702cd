"""The one conversion path: waveform -> WORLD pitch alignment -> log-mel image -> generator -> image
-> refine (Griffin-Lim on the input's own STFT) -> waveform.

Pitch is converted by formula before the image is made (:mod:`voiceconv.audio.world`:
log-Gaussian F0 transform and an envelope warp, both stored in the model
file), so the generator only learns what a formula cannot. ``pitch`` on
every conversion method overrides the model's F0 transform: ``"auto"`` (the
model's), ``"source"`` (the speaker's own pitch) or ``"+N"`` / ``"-N"``
semitones; see :func:`~voiceconv.audio.world.parse_pitch`.

- :mod:`~voiceconv.convert.pipeline`: :func:`segment`, one segment through align -> image -> generator ->
  refine. The Python API, the CLI (single files and batches), evaluation, the web page, held-back model
  selection and the training media all go through it.
- :mod:`~voiceconv.convert.windowing`: how long audio is cut. Each window keeps ``window`` seconds of
  output, sees ``context`` more input on each side, meets its neighbour in a raised-cosine cross-fade, and
  is loudness matched to its input (BS.1770); WORLD aligns the input in chunks cut at its quietest moments.
  Live conversion converts each WORLD chunk as its own window instead, so a sample waits for one cut.
- :mod:`~voiceconv.convert.stream`: :class:`ConversionStream`, every stage keeping its state between
  blocks, so the same path converts audio as it arrives (``Converter.open_stream``); a stream and a file
  cut with the same :class:`Windowing` give the same samples, bit for bit. Live streams use
  :data:`LIVE_WINDOWING`, whose WORLD chunks are the windows: they hold back at most 0.22 s.
- :mod:`~voiceconv.convert.converter`: :class:`Converter`, a voice model
  (:class:`~voiceconv.modelfiles.voice.VoiceModel`) loaded for waveforms, files and streams.
"""

from voiceconv.convert.converter import ConversionResult, Converter
from voiceconv.convert.pipeline import REFINE_ITERATIONS, Pipeline, convert_image, segment, vocoder_for
from voiceconv.convert.stream import ConversionStream
from voiceconv.convert.windowing import FILE_WINDOWING, LIVE_WINDOWING, QuietChunks, WindowPlan, Windowing
from voiceconv.models.directions import Direction

__all__ = ["FILE_WINDOWING", "LIVE_WINDOWING", "REFINE_ITERATIONS", "ConversionResult", "ConversionStream", "Converter",
           "Direction", "Pipeline", "QuietChunks", "WindowPlan", "Windowing", "convert_image", "segment", "vocoder_for"]
