"""Model files: safetensors weights plus a JSON header with everything needed to use them.

One way in, one way through:

- :mod:`~voiceconv.modelfiles.format` writes and reads files (``save_model_file``, ``read_header``,
  ``load_model_file``); every file it reads is checked first.
- :mod:`~voiceconv.modelfiles.checks` is that check: pure functions on a parsed header and its tensors
  (the generic field rules in :mod:`~voiceconv.modelfiles.fields`, each kind's expectations in
  :mod:`~voiceconv.modelfiles.kinds`).
- :mod:`~voiceconv.modelfiles.layout` names a voice file's tensors (torch-free).
- :mod:`~voiceconv.modelfiles.voice` is the voice family's bundle, after torchaudio's pipeline bundles:
  ``VoiceModel.from_file(path)`` gives typed ``features``, ``config``, ``alignment``, ``stats`` and
  ``generators()``.

Errors are :class:`voiceconv.errors.ModelFileError`: one line naming the file and the field.
Dependencies point one way: voice -> format -> checks -> kinds -> fields -> layout; nothing here imports
conversion or training.
"""
