"""Shared basics every stage uses: CRS choice, threads, progress, text safety, file guards.

Nothing here imports a stage (``io``, ``analysis``, ``rules``, ``render``, ``pipeline``).
"""
