"""Operators of the Music AI provider."""
