"""Runbooks shipped as package data (one YAML file per failure mode)."""
