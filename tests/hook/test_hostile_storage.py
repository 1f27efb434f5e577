"""Uploads and downloads against storage servers that are not our emulator (issue 8, storage side).

Each test serves the API's answers (``/v1/upload``, ``/v1/job/<id>``) and the signed storage URLs
from one :class:`HostileServer`, answering as Cloud Storage, a CDN or a broken proxy would.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import json
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_musicai.exceptions import (
    MusicAIAPIError,
    MusicAIConfigurationError,
    MusicAIInputError,
    MusicAITransportError,
)
from airflow_provider_musicai.hooks.musicai import MusicAIHook
from tests.helpers.hooks import HookOn
from tests.helpers.hostile import HostileServer, Reply, Request

KEY = "hostile-storage-key"
SIGNATURE = "X-Goog-Signature=deadbeefcafe"
MAX_RETRIES = 3
EXPIRED_XML = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>ExpiredToken</Code><Message>Invalid argument."
    b"</Message><Details>The provided token has expired. Request signature expired at: "
    b"2026-01-01T00:00:00+00:00</Details></Error>"
)
MALFORMED_XML = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>MalformedSecurityHeader</Code><Message>Your request "
    b"has a malformed header.</Message><ParameterName>X-Goog-Expires</ParameterName></Error>"
)
AUDIO = bytes(range(256)) * 64  # 16 KiB


@pytest.fixture
def hook_on(hook_on: HookOn) -> HookOn:
    """A hook whose connection points at ``server``'s ``/v1`` (extras override the quick retries)."""
    return functools.partial(hook_on, key=KEY, conn_id="musicai_hostile", max_retries=MAX_RETRIES, timeout=10)


def job_document(server: HostileServer, result: dict[str, Any], job_id: str = "job-1") -> dict[str, Any]:
    return {"id": job_id, "status": "SUCCEEDED", "workflow": "w", "result": result}


def signed(server: HostileServer, path: str) -> str:
    return server.url(f"{path}?{SIGNATURE}")


def serve_job(
    result: Callable[[], dict[str, Any]], storage: Callable[[Request], Reply]
) -> Callable[[Request], Reply]:
    """A handler that answers ``GET /v1/job/job-1`` with ``result()`` and anything else with ``storage``."""

    def handler(request: Request) -> Reply:
        if request.path == "/v1/job/job-1":
            return Reply(
                200, json_body={"id": "job-1", "status": "SUCCEEDED", "workflow": "w", "result": result()}
            )
        return storage(request)

    return handler


def upload_server(put: Callable[[Request, int], Reply]) -> HostileServer:
    """``GET /v1/upload`` hands out ``/put/<n>`` (a new one each time); ``PUT /put/<n>`` answers
    ``put(request, n)``."""
    counter = {"n": 0}
    lock = threading.Lock()
    server: HostileServer

    def handler(request: Request) -> Reply:
        if request.path == "/v1/upload":
            with lock:
                counter["n"] += 1
                number = counter["n"]
            return Reply(
                200,
                json_body={
                    "uploadUrl": server.url(f"/put/{number}?{SIGNATURE}"),
                    "downloadUrl": server.url(f"/get/{number}?{SIGNATURE}"),
                },
            )
        if request.method == "PUT" and request.path.startswith("/put/"):
            return put(request, int(request.path.rsplit("/", 1)[1]))
        return Reply(404, body=b"not here")

    server = HostileServer(handler)
    return server


def assert_no_secrets(text: str) -> None:
    assert KEY not in text
    assert "deadbeefcafe" not in text


# -- 3. expired signed URLs: Cloud Storage answers 400 ExpiredToken, not 403 ----------------------


@pytest.mark.parametrize(
    "body", [EXPIRED_XML, MALFORMED_XML], ids=["ExpiredToken", "MalformedSecurityHeader"]
)
def test_upload_with_an_expired_url_retries_with_a_fresh_one(
    hook_on: Callable[..., MusicAIHook], tmp_path: Path, body: bytes
) -> None:
    source = tmp_path / "track.wav"
    source.write_bytes(AUDIO)
    with upload_server(
        lambda request, n: (
            Reply(400, body=body, headers={"content-type": "application/xml"}) if n == 1 else Reply(200)
        )
    ) as server:
        url = hook_on(server).upload_file(source)
        assert url.startswith(server.url("/get/2?"))
        assert len(server.requests_to("GET", "/v1/upload")) == 2
        puts = server.requests_to("PUT", "/put/")
        assert [r.path for r in puts] == ["/put/1", "/put/2"]
        assert puts[1].body == AUDIO
        assert all("authorization" not in r.headers for r in puts)


def test_upload_400_that_is_not_an_expiry_is_not_retried(
    hook_on: Callable[..., MusicAIHook], tmp_path: Path
) -> None:
    source = tmp_path / "track.wav"
    source.write_bytes(AUDIO)
    bad = b"<Error><Code>InvalidArgument</Code><Message>Bad header.</Message></Error>"
    with upload_server(lambda request, n: Reply(400, body=bad)) as server:
        with pytest.raises(MusicAIAPIError, match="HTTP 400") as raised:
            hook_on(server).upload_file(source)
        assert len(server.requests_to("PUT")) == 1
        assert_no_secrets(str(raised.value))


@pytest.mark.parametrize(
    "body", [EXPIRED_XML, MALFORMED_XML], ids=["ExpiredToken", "MalformedSecurityHeader"]
)
def test_download_with_an_expired_url_reads_the_job_again(
    hook_on: Callable[..., MusicAIHook], tmp_path: Path, body: bytes
) -> None:
    reads = {"n": 0}
    server: HostileServer

    def result() -> dict[str, Any]:
        reads["n"] += 1
        return {"vocals": signed(server, f"/files/{reads['n']}/vocals.wav")}

    def storage(request: Request) -> Reply:
        if request.path == "/files/1/vocals.wav":
            return Reply(400, body=body, headers={"content-type": "application/xml"})
        return Reply(200, body=AUDIO)

    with HostileServer(serve_job(result, storage)) as server:
        hook = hook_on(server)
        written = hook.download_results("job-1", tmp_path)
        assert Path(written["vocals"]).read_bytes() == AUDIO
        assert [r.path for r in server.requests_to("GET", "/files/")] == [
            "/files/1/vocals.wav",
            "/files/2/vocals.wav",
        ]


def test_download_with_an_expired_url_and_no_job_id_fails_naming_the_expiry(
    hook_on: Callable[..., MusicAIHook], tmp_path: Path
) -> None:
    with HostileServer(lambda request: Reply(400, body=EXPIRED_XML)) as server:
        job = {"status": "SUCCEEDED", "result": {"vocals": signed(server, "/files/vocals.wav")}}
        with pytest.raises(MusicAIAPIError, match="Signed URLs expire") as raised:
            hook_on(server).download_results(job, tmp_path)
        assert len(server.requests_to("GET", "/files/")) == 1
        assert_no_secrets(str(raised.value))
    assert list(tmp_path.iterdir()) == []


# -- 4. an upload PUT answered 3xx stored nothing ------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_upload_answered_with_a_redirect_is_a_failed_upload(
    hook_on: Callable[..., MusicAIHook], tmp_path: Path, status: int
) -> None:
    source = tmp_path / "track.wav"
    source.write_bytes(AUDIO)
    with upload_server(
        lambda request, n: Reply(status, headers={"location": "http://127.0.0.1:9/elsewhere"})
    ) as server:
        with pytest.raises(MusicAIAPIError, match=f"HTTP {status}.*Only a 2xx") as raised:
            hook_on(server).upload_file(source)
        assert len(server.requests_to("PUT")) == 1  # not retried blindly, not followed
        assert_no_secrets(str(raised.value))


# -- 5. only a complete 200 body is a result -----------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        (Reply(204), 204),
        (Reply(206, body=AUDIO[:100], headers={"content-range": f"bytes 0-99/{len(AUDIO)}"}), 206),
        (Reply(300, body=b"<a href='x'>choose</a>"), 300),
        (Reply(302, body=b"moved"), 302),
    ],
    ids=["204", "206", "300", "302-without-location"],
)
def test_a_download_that_is_not_a_whole_file_is_not_saved(
    hook_on: Callable[..., MusicAIHook], tmp_path: Path, reply: Reply, status: int
) -> None:
    with HostileServer(lambda request: reply) as server:
        job = job_document(server, {"vocals": signed(server, "/files/vocals.wav")})
        with pytest.raises(MusicAIAPIError, match=f"HTTP {status}.*nothing was saved") as raised:
            hook_on(server).download_results(job, tmp_path)
        assert_no_secrets(str(raised.value))
    assert list(tmp_path.iterdir()) == []


# -- 6. gzip-encoded results land decoded, integrity checked against the encoded length ---------


def test_gzip_encoded_result_is_saved_decoded(hook_on: Callable[..., MusicAIHook], tmp_path: Path) -> None:
    encoded = gzip.compress(AUDIO)
    with HostileServer(
        lambda request: Reply(200, body=encoded, headers={"content-encoding": "gzip"})
    ) as server:
        job = job_document(server, {"notes": signed(server, "/files/notes.json")})
        written = hook_on(server).download_results(job, tmp_path)
    assert Path(written["notes"]).read_bytes() == AUDIO


def test_gzip_encoded_result_cut_short_is_retried_then_fails(
    hook_on: Callable[..., MusicAIHook], tmp_path: Path
) -> None:
    encoded = gzip.compress(os.urandom(64 << 10))
    cut = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(encoded)}\r\n\r\n".encode()
    with HostileServer(lambda request: Reply(raw=cut + encoded[: len(encoded) // 2])) as server:
        job = job_document(server, {"notes": signed(server, "/files/notes.bin")})
        with pytest.raises(MusicAITransportError):
            hook_on(server).download_results(job, tmp_path)
        assert len(server.requests_to("GET", "/files/")) == MAX_RETRIES + 1
    assert list(tmp_path.iterdir()) == []


def test_gzip_result_cut_short_without_a_length_is_not_saved(
    hook_on: Callable[..., MusicAIHook], tmp_path: Path
) -> None:
    # No Content-Length, no chunked framing: the connection's close ends the body, so only the
    # gzip stream itself (its trailer) tells that it is whole.
    encoded = gzip.compress(os.urandom(64 << 10))
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nConnection: close\r\n\r\n"
    with HostileServer(lambda request: Reply(raw=head + encoded[:-100])) as server:
        job = job_document(server, {"notes": signed(server, "/files/notes.bin")})
        with pytest.raises(MusicAITransportError, match="gzip body ended before its end"):
            hook_on(server, max_retries=1).download_results(job, tmp_path)
        assert len(server.requests_to("GET", "/files/")) == 2
    assert list(tmp_path.iterdir()) == []


def test_gzip_result_with_a_wrong_checksum_is_not_saved(
    hook_on: Callable[..., MusicAIHook], tmp_path: Path
) -> None:
    encoded = bytearray(gzip.compress(AUDIO))
    encoded[-8] ^= 0xFF  # the CRC-32 of the content, in the gzip trailer
    with HostileServer(
        lambda request: Reply(200, body=bytes(encoded), headers={"content-encoding": "gzip"})
    ) as server:
        job = job_document(server, {"notes": signed(server, "/files/notes.bin")})
        with pytest.raises(MusicAITransportError, match="gzip body is corrupt"):
            hook_on(server, max_retries=0).download_results(job, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_gzip_result_of_several_members_is_saved_whole(
    hook_on: Callable[..., MusicAIHook], tmp_path: Path
) -> None:
    big = os.urandom(3 << 20)  # decoded in bounded pieces
    encoded = gzip.compress(AUDIO) + gzip.compress(big)
    with HostileServer(
        lambda request: Reply(200, body=encoded, headers={"content-encoding": "x-gzip"})
    ) as server:
        job = job_document(server, {"notes": signed(server, "/files/notes.bin")})
        written = hook_on(server).download_results(job, tmp_path)
    assert Path(written["notes"]).read_bytes() == AUDIO + big


# -- 8. result.json is strict JSON ---------------------------------------------------------------


def test_non_finite_numbers_are_written_as_strings(
    hook_on: Callable[..., MusicAIHook], tmp_path: Path
) -> None:
    body = (
        b'{"id": "job-1", "status": "SUCCEEDED", "result": '
        b'{"bpm": NaN, "gain": Infinity, "low": -Infinity, "nested": {"x": [NaN, 1.5]}}}'
    )

    with HostileServer(
        lambda request: Reply(200, body=body, headers={"content-type": "application/json"})
    ) as server:
        written = hook_on(server).download_results("job-1", tmp_path)
    text = Path(written["bpm"]).read_text()

    def refuse(token: str) -> Any:
        raise AssertionError(f"{token} is not JSON")

    values = json.loads(text, parse_constant=refuse)
    assert values == {"bpm": "NaN", "gain": "Infinity", "low": "-Infinity", "nested": {"x": ["NaN", 1.5]}}
    assert math.isnan(float(values["bpm"])) and float(values["gain"]) == math.inf


# -- 9. files and links already in the destination -----------------------------------------------


@pytest.fixture
def two_results() -> Iterator[tuple[HostileServer, dict[str, Any]]]:
    server: HostileServer

    def result() -> dict[str, Any]:
        return {"vocals": signed(server, "/files/vocals.wav"), "bpm": 120}

    with HostileServer(serve_job(result, lambda request: Reply(200, body=AUDIO))) as server:
        yield server, result()


def test_existing_file_is_replaced_and_logged(
    hook_on: Callable[..., MusicAIHook],
    two_results: tuple[HostileServer, dict[str, Any]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    server, _ = two_results
    (tmp_path / "vocals.wav").write_bytes(b"old")
    with caplog.at_level(logging.INFO):  # Airflow 2 logs through logging, Airflow 3 through structlog
        written = hook_on(server).download_results("job-1", tmp_path)
    assert Path(written["vocals"]).read_bytes() == AUDIO
    assert f"Replacing a file {tmp_path / 'vocals.wav'}" in caplog.text + "".join(capfd.readouterr())


def test_a_symbolic_link_is_replaced_not_followed(
    hook_on: Callable[..., MusicAIHook], two_results: tuple[HostileServer, dict[str, Any]], tmp_path: Path
) -> None:
    server, _ = two_results
    dest = tmp_path / "dest"
    dest.mkdir()
    precious_inside = dest / "precious.wav"
    precious_inside.write_bytes(b"keep me")
    precious_outside = tmp_path / "outside.json"
    precious_outside.write_text("{}")
    (dest / "vocals.wav").symlink_to(precious_inside)
    (dest / "result.json").symlink_to(precious_outside)
    written = hook_on(server).download_results("job-1", dest)
    assert precious_inside.read_bytes() == b"keep me"
    assert precious_outside.read_text() == "{}"
    assert not (dest / "vocals.wav").is_symlink() and not (dest / "result.json").is_symlink()
    assert Path(written["vocals"]) == dest / "vocals.wav"
    assert (dest / "vocals.wav").read_bytes() == AUDIO
    assert json.loads((dest / "result.json").read_text()) == {"bpm": 120}


@pytest.mark.parametrize("overwrite", [False, "False", "false"])
def test_overwrite_false_fails_naming_the_file_before_any_download(
    hook_on: Callable[..., MusicAIHook],
    two_results: tuple[HostileServer, dict[str, Any]],
    tmp_path: Path,
    overwrite: Any,
) -> None:
    server, _ = two_results
    (tmp_path / "result.json").write_text("{}")
    with pytest.raises(MusicAIInputError, match=r"result\.json.*overwrite=False"):
        hook_on(server).download_results("job-1", tmp_path, overwrite=overwrite)
    assert server.requests_to("GET", "/files/") == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_overwrite_false_into_an_empty_folder_downloads(
    hook_on: Callable[..., MusicAIHook], two_results: tuple[HostileServer, dict[str, Any]], tmp_path: Path
) -> None:
    server, _ = two_results
    written = hook_on(server).download_results("job-1", tmp_path, overwrite=False)
    assert Path(written["vocals"]).read_bytes() == AUDIO


def test_download_operator_passes_a_templated_overwrite(
    hook_on: Callable[..., MusicAIHook], two_results: tuple[HostileServer, dict[str, Any]], tmp_path: Path
) -> None:
    from airflow_provider_musicai.operators.musicai import MusicAIDownloadResultsOperator

    server, _ = two_results
    hook_on(server)  # registers the connection musicai_hostile
    (tmp_path / "vocals.wav").write_bytes(b"old")
    operator = MusicAIDownloadResultsOperator(
        task_id="download",
        job_id="job-1",
        destination=str(tmp_path),
        overwrite="{{ params.replace }}",
        musicai_conn_id="musicai_hostile",
    )
    assert "overwrite" in operator.template_fields
    operator.overwrite = "False"  # what rendering "{{ params.replace }}" with replace=False gives
    with pytest.raises(MusicAIInputError, match=r"vocals\.wav.*overwrite=False"):
        operator.execute({})  # type: ignore[arg-type]
    assert (tmp_path / "vocals.wav").read_bytes() == b"old"
    operator.overwrite = True
    operator.execute({})  # type: ignore[arg-type]
    assert (tmp_path / "vocals.wav").read_bytes() == AUDIO


def test_overwrite_must_be_a_boolean(hook_on: Callable[..., MusicAIHook], tmp_path: Path) -> None:
    with HostileServer(lambda request: Reply(500)) as server:
        with pytest.raises(MusicAIConfigurationError, match="overwrite must be true or false"):
            hook_on(server).download_results("job-1", tmp_path, overwrite="maybe")
        assert server.requests == []


# -- 11. a wall-clock bound on transfers ---------------------------------------------------------


def test_a_trickled_download_is_cut_off_and_retried(
    hook_on: Callable[..., MusicAIHook], tmp_path: Path
) -> None:
    with HostileServer(lambda request: Reply(200, body=AUDIO[:400], trickle=0.05)) as server:
        job = job_document(server, {"vocals": signed(server, "/files/vocals.wav")})
        hook = hook_on(server, transfer_min_rate=1000, transfer_rate_window=0.3, max_retries=1)
        with pytest.raises(MusicAITransportError, match=r"too slow.*transfer_min_rate") as raised:
            hook.download_results(job, tmp_path)
        assert len(server.requests_to("GET", "/files/")) == 2  # retried within the retry budget
        assert_no_secrets(str(raised.value))
    assert list(tmp_path.iterdir()) == []


def test_a_download_longer_than_transfer_max_time_is_cut_off(
    hook_on: Callable[..., MusicAIHook], tmp_path: Path
) -> None:
    with HostileServer(
        lambda request: Reply(200, body=AUDIO[:400], trickle=0.05, trickle_chunk=20)
    ) as server:
        job = job_document(server, {"vocals": signed(server, "/files/vocals.wav")})
        hook = hook_on(server, transfer_min_rate=0, transfer_max_time=0.2, max_retries=0)
        with pytest.raises(MusicAITransportError, match=r"longer than 0\.2s.*transfer_max_time"):
            hook.download_results(job, tmp_path)


def test_an_upload_the_storage_reads_slowly_is_cut_off(
    hook_on: Callable[..., MusicAIHook], tmp_path: Path
) -> None:
    source = tmp_path / "big.wav"
    source.write_bytes(os.urandom(16 << 20))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(30)
    puts: list[int] = []

    def storage() -> None:  # reads a PUT body at about 1 MB/s, then says it is stored
        with contextlib.suppress(OSError):
            connection, _ = listener.accept()
            with connection:
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
                received = 0
                while chunk := connection.recv(16 << 10):
                    received += len(chunk)
                    puts.append(received)
                    time.sleep(0.015)
                    if received >= source.stat().st_size:
                        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                        return

    threading.Thread(target=storage, daemon=True).start()
    storage_url = f"http://127.0.0.1:{listener.getsockname()[1]}/put/1?{SIGNATURE}"
    api = HostileServer(
        lambda request: Reply(200, json_body={"uploadUrl": storage_url, "downloadUrl": storage_url})
    )
    try:
        hook = hook_on(api, transfer_min_rate=20e6, transfer_rate_window=0.5, max_retries=0)
        with pytest.raises(MusicAITransportError, match=r"too slow.*transfer_min_rate") as raised:
            hook.upload_file(source)
        assert_no_secrets(str(raised.value))
        assert puts and puts[-1] < source.stat().st_size
    finally:
        api.close()
        listener.close()


@pytest.mark.parametrize(
    ("extra", "value"),
    [("transfer_min_rate", -1), ("transfer_rate_window", 0), ("transfer_max_time", "soon")],
)
def test_transfer_bounds_are_validated(
    hook_on: Callable[..., MusicAIHook], tmp_path: Path, extra: str, value: Any
) -> None:
    with (
        HostileServer(lambda request: Reply(500)) as server,
        pytest.raises(MusicAIConfigurationError, match=extra),
    ):
        hook_on(server, **{extra: value}).download_results("job-1", tmp_path)


# -- 15. a result URL that cannot be parsed ------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://[::1/x.wav?sig=deadbeefcafe", "https://host:port/x.wav?sig=deadbeefcafe"]
)
def test_unparseable_result_url_is_a_typed_error_naming_the_key(
    hook_on: Callable[..., MusicAIHook], tmp_path: Path, url: str
) -> None:
    with HostileServer(lambda request: Reply(500)) as server:
        job = job_document(server, {"drums": url})
        with pytest.raises(
            MusicAIAPIError, match="Result 'drums' of job job-1 is not a usable URL"
        ) as raised:
            hook_on(server).download_results(job, tmp_path)
        assert_no_secrets(str(raised.value))
        assert server.requests == []
    assert list(tmp_path.iterdir()) == []


# -- 18. URL schemes are case-insensitive --------------------------------------------------------


def test_upper_case_scheme_results_are_downloaded(
    hook_on: Callable[..., MusicAIHook], tmp_path: Path
) -> None:
    with HostileServer(lambda request: Reply(200, body=AUDIO)) as server:
        url = signed(server, "/files/vocals.wav").replace("http://", "HTTP://")
        written = hook_on(server).download_results(job_document(server, {"vocals": url}), tmp_path)
        assert len(server.requests_to("GET", "/files/")) == 1
    assert Path(written["vocals"]).read_bytes() == AUDIO
    assert not (tmp_path / "result.json").exists()


def test_upper_case_scheme_results_never_reach_xcom_signed() -> None:
    from airflow_provider_musicai import references

    job = {
        "id": "job-1",
        "status": "SUCCEEDED",
        "result": {
            "vocals": "HTTPS://storage.example/v.wav?X-Goog-Signature=deadbeefcafe",
            "n": ["Http://storage.example/n.wav?X-Goog-Signature=deadbeefcafe"],
        },
    }
    public = references.public_job_document(job)
    assert public["result"]["vocals"] == references.result_reference("job-1", "vocals")
    assert_no_secrets(json.dumps(public))


def test_upper_case_scheme_results_are_logged_redacted() -> None:
    from airflow_provider_musicai.status_log import describe_result

    shown = describe_result({"result": {"vocals": "HTTPS://s.example/v.wav?X-Goog-Signature=deadbeefcafe"}})
    assert shown == "vocals=https://s.example/v.wav?<redacted>"


def test_overwrite_policy_on_object_storage(
    hook_on: Callable[..., MusicAIHook], two_results: tuple[HostileServer, dict[str, Any]]
) -> None:
    from fsspec.implementations.memory import MemoryFileSystem

    server, _ = two_results
    fs = MemoryFileSystem()
    folder = "/hostile-overwrite"
    fs.pipe(f"{folder}/vocals.wav", b"old")
    hook = hook_on(server)
    with pytest.raises(MusicAIInputError, match=r"memory://.*vocals\.wav.*overwrite=False"):
        hook.download_results("job-1", f"memory://{folder}", overwrite=False)
    assert fs.cat(f"{folder}/vocals.wav") == b"old"
    assert server.requests_to("GET", "/files/") == []
    written = hook.download_results("job-1", f"memory://{folder}")
    assert fs.cat(f"{folder}/vocals.wav") == AUDIO
    assert written["vocals"] == f"memory://{folder}/vocals.wav"
    fs.rm(folder, recursive=True)


@pytest.mark.parametrize("encoding", ["compress", "x-unknown", "gzip, compress"])
def test_a_result_in_an_encoding_that_cannot_be_decoded_is_not_saved(
    hook_on: Callable[..., MusicAIHook], tmp_path: Path, encoding: str
) -> None:
    with HostileServer(
        lambda request: Reply(200, body=b"\x1b\x00compressed", headers={"content-encoding": encoding})
    ) as server:
        job = job_document(server, {"vocals": signed(server, "/files/vocals.wav")})
        with pytest.raises(MusicAIAPIError, match=r"Content-Encoding .*cannot be decoded"):
            hook_on(server).download_results(job, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_overwrite_false_never_replaces_a_file_that_appears_during_the_download(
    hook_on: Callable[..., MusicAIHook], tmp_path: Path
) -> None:
    def storage(request: Request) -> Reply:
        (tmp_path / "vocals.wav").write_bytes(b"written meanwhile by someone else")
        return Reply(200, body=AUDIO)

    server = HostileServer(serve_job(lambda: {"vocals": signed(server, "/files/vocals.wav")}, storage))
    with server, pytest.raises(MusicAIInputError, match=r"vocals\.wav \(overwrite=False\)"):
        hook_on(server).download_results("job-1", tmp_path, overwrite=False)
    assert (tmp_path / "vocals.wav").read_bytes() == b"written meanwhile by someone else"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vocals.wav"]  # no temporary file left
