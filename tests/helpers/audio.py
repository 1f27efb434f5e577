"""The tests' one WAV factory, on top of the emulator's own WAV writer
(:func:`airflow_provider_musicai.testing.emulator.audio.wav_header`)."""

from __future__ import annotations

import math
import struct
from pathlib import Path

from airflow_provider_musicai.testing.emulator.audio import wav_header


def wav_bytes(
    seconds: float = 0.3, rate: int = 8000, frequency: float = 440.0, channels: int = 2, width: int = 2
) -> bytes:
    """A small deterministic PCM WAV: a sine at ``frequency`` on the left, 1.5 times that on the
    right (so the channels differ), different for every frequency; ``width`` bytes per sample."""
    frames = bytearray()
    for n in range(int(seconds * rate)):
        left = int(11000 * math.sin(2 * math.pi * frequency * n / rate))
        right = int(6000 * math.sin(2 * math.pi * frequency * 1.5 * n / rate))
        for value in (left, right)[:channels]:
            if width == 1:
                frames += struct.pack("<B", (value >> 8) + 128)
            else:
                frames += struct.pack("<i", value << 16)[4 - width :]
    return wav_header(channels, rate, width, len(frames)) + bytes(frames)


def write_wav(path: Path, seconds: float = 1.0, rate: int = 8000) -> Path:
    """Write a stereo :func:`wav_bytes` to ``path`` and return it."""
    path.write_bytes(wav_bytes(seconds, rate))
    return path
