"""Datasets: unpaired speaker segments (cached log-mel features). Face image folders are in :mod:`voiceconv.faces.data`."""
