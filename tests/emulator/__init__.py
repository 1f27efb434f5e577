"""emulator tests."""
