"""The emulator's workflow catalog: metadata, parameter validation and result generation.

Results are derived deterministically from the input file:

* ``music-ai/stems-vocals-accompaniment``: 16-bit mono WAVs. For a PCM/float WAV input (any of 8/16/24/32-bit
  PCM or 32/64-bit float, converted to 16 bits), ``vocals`` is the mid channel ``(L+R)>>1`` and
  ``accompaniments`` the side channel ``(L-R)>>1`` at the input's sample rate (mono input: vocals is the
  input, accompaniments silence). For MP3/FLAC/OGG/AIFF/M4A inputs (not decoded), both are 22,050 Hz WAVs
  whose samples are the input's even (vocals) or odd (accompaniments) bytes, at most 30 s.
* ``music-ai/transcribe-vocals``: a lyrics JSON file and the language (``language`` param; ``en`` for auto).
* ``music-ai/beats-chords-key``: beats and chords JSON files plus ``bpm`` and ``key`` values.
* ``music-ai/isolate-drums``: outputs named as the real template's (``"Kick drum"``, ``"Snare drum"``,
  ``"Other"``: keys with spaces and capitals, SDK README), each a derived 16-bit WAV like the stems.

Users declare more workflows (:mod:`.catalog`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from .audio import AudioError, WavInfo, bytes_derived_pcm, iter_wav_blocks, mid_side, parse_wav, sniff_format
from .audio import wav_header as _wav_header


class ParamError(ValueError):
    """Workflow params do not fit the workflow's input schema (HTTP 422)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


class BadInputError(Exception):
    """The input file cannot be processed (job error ``BAD_INPUT``); the message is user-facing."""


class OutputSink(Protocol):
    """Where a workflow writes its result files; returns each file's signed download URL."""

    def add_file(self, filename: str, content_type: str, write: Callable[[BinaryIO], None]) -> str:
        """Create a result file filled by ``write`` and return its URL."""


@dataclass(frozen=True)
class InputAudio:
    """A fetched input file that was recognised as audio."""

    path: Path
    size: int
    container: str
    wav: WavInfo | None

    @property
    def duration(self) -> float:
        """Duration in seconds (estimated at 128 kbit/s for compressed containers)."""
        if self.wav is not None:
            return self.wav.duration
        return max(1.0, self.size / 16000)

    def digest(self) -> bytes:
        """A stable fingerprint of the file (size, first and last MiB)."""
        h = hashlib.sha256(str(self.size).encode())
        with self.path.open("rb") as f:
            h.update(f.read(1 << 20))
            if self.size > 2 << 20:
                f.seek(-(1 << 20), 2)
                h.update(f.read())
        return h.digest()


def open_input(path: Path) -> InputAudio:
    """Recognise the audio file at ``path``; raise :class:`BadInputError` with a clear message if not."""
    size = path.stat().st_size
    if size == 0:
        raise BadInputError("The input file is empty.")
    with path.open("rb") as f:
        container = sniff_format(f.read(64))
        if container is None:
            raise BadInputError(
                "The input file is not a supported audio file (expected WAV, MP3, FLAC, OGG, AIFF or M4A)."
            )
        wav = None
        if container == "wav":
            f.seek(0)
            try:
                wav = parse_wav(f, size)
            except AudioError as exc:
                raise BadInputError(f"The input WAV file is corrupted or unsupported: {exc}.") from exc
    return InputAudio(path, size, container, wav)


Generator = Callable[[InputAudio, Mapping[str, Any], OutputSink], dict[str, Any]]


#: Parameter types: ``file`` is a URL the service downloads (the job's input file).
PARAM_TYPES = ("file", "string", "number", "boolean")


@dataclass(frozen=True)
class ParamSpec:
    """One workflow parameter (input)."""

    name: str
    description: str = ""
    required: bool = False
    enum: tuple[str, ...] | None = None
    type: str = "string"

    def check(self, value: Any) -> str | None:
        """Why ``value`` does not fit, or None."""
        if self.type in ("file", "string"):
            if not isinstance(value, str) or not value:
                return f"Parameter '{self.name}' must be a non-empty string."
        elif self.type == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"Parameter '{self.name}' must be a number."
        elif not isinstance(value, bool):
            return f"Parameter '{self.name}' must be a boolean."
        if self.enum is not None and value not in self.enum:
            return f"Parameter '{self.name}' must be one of: {', '.join(self.enum)}."
        return None


@dataclass(frozen=True)
class Workflow:
    """A workflow of the catalog."""

    id: str
    slug: str
    name: str
    description: str
    created_at: str
    updated_at: str
    params: tuple[ParamSpec, ...]
    generate: Generator = field(repr=False)
    #: Names of the outputs (the keys of ``result``).
    outputs: tuple[str, ...] = ()
    #: Set for a workflow saved with errors: ``POST /job`` on it is refused with 422 (the reference's
    #: "The workflow contains errors"); the text says what is wrong.
    errors: str | None = None

    def to_doc(self) -> dict[str, Any]:
        """The workflow as ``GET /workflow`` lists it."""
        return {
            "id": self.id,
            "name": self.name,
            "slug": self.slug,
            "description": self.description,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }

    def validate_params(self, params: Mapping[str, Any]) -> None:
        """Raise :class:`ParamError` naming the first param that does not fit the input schema."""
        known = {spec.name: spec for spec in self.params}
        for name in params:
            if name not in known:
                raise ParamError(name, f"Unknown parameter '{name}' for workflow '{self.slug}'.")
        for spec in self.params:
            if spec.name not in params:
                if spec.required:
                    raise ParamError(spec.name, f"Missing required parameter '{spec.name}'.")
                continue
            problem = spec.check(params[spec.name])
            if problem is not None:
                raise ParamError(spec.name, problem)

    def input_file(self, params: Mapping[str, Any]) -> str | None:
        """The URL of the job's input file: the first ``file`` parameter given."""
        for spec in self.params:
            if spec.type == "file" and isinstance(params.get(spec.name), str):
                return str(params[spec.name])
        return None


# ---------------------------------------------------------------------------------------------- generators


def _write_stem(audio: InputAudio, which: int) -> Callable[[BinaryIO], None]:
    def write(out: BinaryIO) -> None:
        out.write(bytes(44))
        size = 0
        with audio.path.open("rb") as f:
            blocks: Iterator[bytes]
            if audio.wav is not None:
                info = audio.wav
                rate = info.sample_rate
                blocks = (mid_side(block, info.channels)[which] for block in iter_wav_blocks(f, info))
            else:
                rate = 22050
                blocks = bytes_derived_pcm(f, which)
            for block in blocks:
                out.write(block)
                size += len(block)
        out.seek(0)
        out.write(_wav_header(1, rate, 2, size))

    return write


def file_name(output: str, extension: str) -> str:
    """A storage file name for output ``output`` (``"Kick drum"`` -> ``Kick-drum.wav``)."""
    stem = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "-" for c in output).strip("-.")
    return f"{(stem or 'output')[:100]}.{extension}"


def stems_of(*names: str) -> Generator:
    """A generator writing one derived WAV per output name (alternately mid and side channels)."""

    def generate(audio: InputAudio, params: Mapping[str, Any], sink: OutputSink) -> dict[str, Any]:
        return {
            name: sink.add_file(file_name(name, "wav"), "audio/wav", _write_stem(audio, i % 2))
            for i, name in enumerate(names)
        }

    return generate


_WORDS = (
    "love",
    "night",
    "light",
    "heart",
    "fire",
    "dream",
    "road",
    "home",
    "rain",
    "sky",
    "dance",
    "baby",
    "soul",
    "time",
    "gold",
    "river",
    "shadow",
    "morning",
    "ocean",
    "city",
    "wild",
    "free",
    "stars",
    "tonight",
    "forever",
    "sun",
    "moon",
    "together",
    "alone",
)


def _json_writer(document: Any) -> Callable[[BinaryIO], None]:
    data = json.dumps(document, indent=2).encode()

    def write(out: BinaryIO) -> None:
        out.write(data)

    return write


def _transcribe(audio: InputAudio, params: Mapping[str, Any], sink: OutputSink) -> dict[str, Any]:
    digest = audio.digest()
    language = params.get("language", "auto")
    language = "en" if language == "auto" else language
    duration = min(audio.duration, 600.0)
    count = max(1, min(60, int(duration / 4)))
    span = duration / count
    lines = []
    for i in range(count):
        words = [
            _WORDS[digest[(i * 5 + j) % len(digest)] % len(_WORDS)] for j in range(3 + digest[i % 32] % 4)
        ]
        start = round(i * span, 3)
        lines.append({"start": start, "end": round(start + span * 0.9, 3), "text": " ".join(words)})
    lyrics = {"language": language, "lines": lines}
    return {
        "lyrics": sink.add_file("lyrics.json", "application/json", _json_writer(lyrics)),
        "language": language,
    }


_ROOTS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_MAJOR_DEGREES = ((0, ""), (5, ""), (7, ""), (9, "m"))
_MINOR_DEGREES = ((0, "m"), (8, ""), (3, ""), (10, ""))


def _beats_chords_key(audio: InputAudio, params: Mapping[str, Any], sink: OutputSink) -> dict[str, Any]:
    digest = audio.digest()
    bpm = round(70 + int.from_bytes(digest[:2], "big") % 1100 / 10, 1)
    root = digest[2] % 12
    minor = digest[3] % 2 == 1
    key = f"{_ROOTS[root]} {'minor' if minor else 'major'}"
    interval = 60.0 / bpm
    count = max(1, int(min(audio.duration, 600.0) / interval))
    beats = [{"time": round(i * interval, 3), "beatNum": i % 4 + 1} for i in range(count)]
    degrees = _MINOR_DEGREES if minor else _MAJOR_DEGREES
    chords = []
    for bar, first in enumerate(range(0, count, 4)):
        offset, quality = degrees[digest[(4 + bar) % len(digest)] % len(degrees)]
        end = min(first + 4, count) * interval
        chords.append(
            {
                "start": round(first * interval, 3),
                "end": round(end, 3),
                "chord": _ROOTS[(root + offset) % 12] + quality,
            }
        )
    return {
        "chords": sink.add_file("chords.json", "application/json", _json_writer(chords)),
        "beats": sink.add_file("beats.json", "application/json", _json_writer(beats)),
        "bpm": bpm,
        "key": key,
    }


_INPUT_URL = ParamSpec("inputUrl", "URL of the audio file to process.", required=True, type="file")

#: Languages accepted by ``music-ai/transcribe-vocals``.
LANGUAGES = ("auto", "en", "pt", "es", "fr", "de", "it", "ja")

WORKFLOWS: tuple[Workflow, ...] = (
    Workflow(
        id="5d0c7f7e-1c43-4f2a-8d7e-7f3b1f0e9a11",
        slug="music-ai/isolate-drums",
        name="Isolate drums",
        description="Split the drums of a song into kick, snare and the rest.",
        created_at="2025-01-20T09:12:03.417Z",
        updated_at="2025-01-20T09:14:55.080Z",
        params=(_INPUT_URL,),
        generate=stems_of("Kick drum", "Snare drum", "Other"),
        outputs=("Kick drum", "Snare drum", "Other"),
    ),
    Workflow(
        id="7c1a2f4e-5b0d-4f59-9a47-2f1f2b6c8e31",
        slug="music-ai/beats-chords-key",
        name="Beats, chords and key",
        description="Detect the beat grid, BPM, chord progression and musical key of a song.",
        created_at="2024-12-16T18:31:36.102Z",
        updated_at="2024-12-16T18:32:34.723Z",
        params=(_INPUT_URL,),
        generate=_beats_chords_key,
        outputs=("chords", "beats", "bpm", "key"),
    ),
    Workflow(
        id="2362a51f-e9f9-4472-bbd2-c40a0cc83ae2",
        slug="music-ai/transcribe-vocals",
        name="Transcribe vocals",
        description="Transcribe the lyrics sung in a song, with line timings.",
        created_at="2024-12-13T15:11:42.022Z",
        updated_at="2024-12-13T15:11:45.932Z",
        params=(
            _INPUT_URL,
            ParamSpec("language", "Lyrics language, or 'auto' to detect it.", enum=LANGUAGES),
        ),
        generate=_transcribe,
        outputs=("lyrics", "language"),
    ),
    Workflow(
        id="3a82e3b2-9de6-4979-986d-78805dd2152b",
        slug="music-ai/stems-vocals-accompaniment",
        name="Stems: vocals and accompaniment",
        description="Separate a song into a vocals stem and an accompaniment stem.",
        created_at="2024-11-05T10:02:11.540Z",
        updated_at="2024-11-05T10:05:48.001Z",
        params=(_INPUT_URL,),
        generate=stems_of("vocals", "accompaniments"),
        outputs=("vocals", "accompaniments"),
    ),
)
"""The built-in catalog, newest first (the order ``GET /workflow`` lists it in)."""
