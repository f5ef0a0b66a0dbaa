"""Offline sources of real images (photos that ship inside PyPI packages) for demos and tests."""
