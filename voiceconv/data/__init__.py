"""Datasets: unpaired speaker segments (cached log-mel features) and face image folders (cached pixels)."""
