"""hook tests."""
