"""Sensors of the Music AI provider."""
