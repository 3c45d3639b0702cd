"""Objective metrics for converted speech (needs the ``eval`` extra: ``pip install voiceconv[eval]``)."""
