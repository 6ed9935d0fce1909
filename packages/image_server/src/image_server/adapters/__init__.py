"""Adapters that fill image_core's ports with real libraries (Pillow, Gemini, the filesystem)."""
