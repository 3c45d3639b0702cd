"""Datasets: unpaired speaker segments (cached log-mel features) and, later, image folders."""
