"""Tiny audio helpers: container sniffing, WAV header parsing/writing, derived PCM streams.

Only the standard library is used. Every transform works on bounded blocks so inputs of any size
are processed in bounded memory.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import repeat
from operator import add, rshift, sub
from typing import BinaryIO

#: Frames read per block when transforming PCM audio.
BLOCK_FRAMES = 65536
#: Sample rate of the WAVs derived from the raw bytes of compressed inputs.
BYTES_DERIVED_RATE = 22050
#: Longest output (in seconds) derived from the raw bytes of a compressed input.
BYTES_DERIVED_MAX_SECONDS = 30

_FORMAT_PCM = 1
_FORMAT_FLOAT = 3
_FORMAT_EXTENSIBLE = 0xFFFE


class AudioError(ValueError):
    """The bytes are not audio the emulator understands (message is user-facing)."""


def sniff_format(head: bytes) -> str | None:
    """Return the container of ``head`` (the first bytes of a file): wav, aiff, flac, ogg, mp3, m4a."""
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if len(head) >= 12 and head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:3] == b"ID3":
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0 and (head[1] & 0x06) != 0:
        return "mp3"
    if len(head) >= 8 and head[4:8] == b"ftyp":
        return "m4a"
    return None


@dataclass(frozen=True)
class WavInfo:
    """What the emulator needs to know about a WAV file."""

    channels: int
    sample_rate: int
    sample_width: int
    is_float: bool
    data_offset: int
    data_size: int

    @property
    def block_align(self) -> int:
        """Bytes per frame."""
        return self.channels * self.sample_width

    @property
    def frames(self) -> int:
        """Number of whole frames in the data chunk."""
        return self.data_size // self.block_align

    @property
    def duration(self) -> float:
        """Duration in seconds."""
        return self.frames / self.sample_rate


def parse_wav(f: BinaryIO, file_size: int) -> WavInfo:
    """Parse the RIFF chunks of a WAV file positioned at 0; raise :class:`AudioError` if unusable."""
    header = f.read(12)
    if len(header) < 12 or header[:4] not in (b"RIFF", b"RF64") or header[8:12] != b"WAVE":
        raise AudioError("the file is not a RIFF/WAVE file")
    fmt: tuple[int, int, int, int] | None = None
    pos = 12
    while pos + 8 <= file_size:
        f.seek(pos)
        chunk_id, size = struct.unpack("<4sI", f.read(8))
        body = pos + 8
        if chunk_id == b"fmt ":
            raw = f.read(min(size, 40))
            if len(raw) < 16:
                raise AudioError("the WAV 'fmt ' chunk is truncated")
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", raw[:16])
            if tag == _FORMAT_EXTENSIBLE and len(raw) >= 26:
                tag = struct.unpack("<H", raw[24:26])[0]
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise AudioError("the WAV 'data' chunk comes before its 'fmt ' chunk")
            data_size = min(size, file_size - body)
            return _wav_info(fmt, body, data_size)
        pos = body + size + (size & 1)
    raise AudioError("the WAV file has no 'data' chunk")


def _wav_info(fmt: tuple[int, int, int, int], offset: int, data_size: int) -> WavInfo:
    tag, channels, rate, bits = fmt
    if channels < 1 or rate < 1:
        raise AudioError("the WAV file declares no channels or a zero sample rate")
    if tag == _FORMAT_PCM and bits in (8, 16, 24, 32):
        is_float = False
    elif tag == _FORMAT_FLOAT and bits in (32, 64):
        is_float = True
    else:
        raise AudioError(f"unsupported WAV encoding (format tag {tag}, {bits} bits per sample)")
    info = WavInfo(channels, rate, bits // 8, is_float, offset, data_size)
    if info.frames == 0:
        raise AudioError("the WAV file contains no audio frames")
    return info


def wav_header(channels: int, sample_rate: int, sample_width: int, data_size: int) -> bytes:
    """Return a canonical 44-byte PCM WAV header."""
    block_align = channels * sample_width
    return b"RIFF" + struct.pack(
        "<I4s4sIHHIIHH4sI",
        36 + data_size,
        b"WAVE",
        b"fmt ",
        16,
        _FORMAT_PCM,
        channels,
        sample_rate,
        sample_rate * block_align,
        block_align,
        sample_width * 8,
        b"data",
        data_size,
    )


def wav_bytes(channels: int, sample_rate: int, pcm16: bytes) -> bytes:
    """Return a complete 16-bit PCM WAV file holding ``pcm16``."""
    return wav_header(channels, sample_rate, 2, len(pcm16)) + pcm16


def to_pcm16(raw: bytes, sample_width: int, is_float: bool) -> bytes:
    """Convert little-endian PCM/float samples to 16-bit little-endian PCM (truncating precision)."""
    if is_float:
        floats = array("f" if sample_width == 4 else "d")
        floats.frombytes(raw)
        if sys.byteorder == "big":
            floats.byteswap()
        ints = array("h", (max(-32768, min(32767, int(x * 32767.0))) for x in floats))
        return _le(ints)
    if sample_width == 2:
        return raw
    count = len(raw) // sample_width
    out = bytearray(count * 2)
    if sample_width == 1:
        out[1::2] = raw.translate(_UNSIGNED_TO_SIGNED)
    else:
        out[0::2] = raw[sample_width - 2 :: sample_width]
        out[1::2] = raw[sample_width - 1 :: sample_width]
    return bytes(out)


_UNSIGNED_TO_SIGNED = bytes((b ^ 0x80) for b in range(256))


def _le(samples: array[int]) -> bytes:
    if sys.byteorder == "big":
        samples = array("h", samples)
        samples.byteswap()
    return samples.tobytes()


def _samples(pcm16: bytes) -> array[int]:
    samples = array("h")
    samples.frombytes(pcm16[: len(pcm16) & ~1])
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def mid_side(pcm16: bytes, channels: int) -> tuple[bytes, bytes]:
    """Split interleaved 16-bit frames into mono mid ``(L+R)>>1`` and side ``(L-R)>>1`` blocks.

    Mono input gives the input itself as mid and silence as side. Channels past the second are ignored.
    """
    samples = _samples(pcm16)
    if channels == 1:
        return _le(samples), bytes(len(samples) * 2)
    left, right = samples[0::channels], samples[1::channels]
    mid = array("h", map(rshift, map(add, left, right), repeat(1)))
    side = array("h", map(rshift, map(sub, left, right), repeat(1)))
    return _le(mid), _le(side)


def iter_wav_blocks(f: BinaryIO, info: WavInfo) -> Iterator[bytes]:
    """Yield the WAV's audio as 16-bit PCM blocks of at most :data:`BLOCK_FRAMES` frames."""
    remaining = info.frames * info.block_align
    f.seek(info.data_offset)
    step = BLOCK_FRAMES * info.block_align
    while remaining > 0:
        raw = f.read(min(step, remaining))
        if not raw:
            return
        raw = raw[: len(raw) - len(raw) % info.block_align]
        remaining -= len(raw)
        yield to_pcm16(raw, info.sample_width, info.is_float)


def bytes_derived_pcm(f: BinaryIO, parity: int) -> Iterator[bytes]:
    """Yield mono 16-bit PCM derived from the raw bytes of a compressed file.

    Sample ``i`` is the signed byte at offset ``2*i + parity`` scaled to 16 bits, capped at
    :data:`BYTES_DERIVED_MAX_SECONDS` seconds at :data:`BYTES_DERIVED_RATE` Hz.
    """
    f.seek(0)
    remaining = BYTES_DERIVED_RATE * BYTES_DERIVED_MAX_SECONDS
    while remaining > 0:
        raw = f.read(min(2 * BLOCK_FRAMES, 2 * remaining))
        picked = raw[parity::2]
        if not picked:
            return
        remaining -= len(picked)
        out = bytearray(len(picked) * 2)
        out[1::2] = picked
        yield bytes(out)
