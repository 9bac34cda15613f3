"""Gaia compatibility: the in-memory transformation chain and the `.history` file format."""
