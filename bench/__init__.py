"""Runnable benchmarks: ``uv run python -m bench.<name> [--quick]``.

The method and the figures are in docs/benchmarks.md.
"""
