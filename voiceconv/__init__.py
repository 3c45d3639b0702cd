"""voiceconv: voice conversion with CycleGAN on mel-spectrogram images.

Waveforms become log-mel "images", image-to-image networks convert them, and
Griffin-Lim turns the converted images back into audio.
"""

__version__ = "0.1.0"
