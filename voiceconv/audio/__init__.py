"""Audio input/output, log-mel spectrogram images and the Griffin-Lim vocoder."""
