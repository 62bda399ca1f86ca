"""Datasets: the procedural toy world and adapters for the real on-disk formats."""
