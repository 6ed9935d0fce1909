"""Adapters that fill the core's ports with real technology (files, SQLite, Gemini, Pillow)."""
