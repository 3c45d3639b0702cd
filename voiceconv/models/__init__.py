"""Generative models on images (spectrograms or faces). Each exposes ``train_step(batch) -> dict of losses``."""
