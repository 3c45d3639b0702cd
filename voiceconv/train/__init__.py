"""Training: the one loop (``loop.fit``), DistributedDataParallel under torchrun (``distributed``), checkpoints,
model selection on held-back data (``selection``), and the voice and speech-VAE recipes and tasks (``voice``,
``speech_vae``); the face families' recipes and tasks are in :mod:`voiceconv.faces` (``recipes``, ``tasks``,
``debias``). Only the CLI's ``train`` and ``faces compare`` verbs import it."""
