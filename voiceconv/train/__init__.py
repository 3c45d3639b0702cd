"""Training: the one loop (``loop.fit``), DistributedDataParallel under torchrun (``distributed``), checkpoints,
model selection on held-back data (``selection``), and each family's recipe and task (``voice``, ``faces`` with
``face_recipes``, ``debias``, ``speech_vae``). Only the CLI's ``train`` and ``faces compare`` verbs import it."""
