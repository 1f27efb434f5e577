"""Hooks of the Music AI provider."""
