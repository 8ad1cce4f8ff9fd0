"""Backup engines, store, manifests and retention."""
