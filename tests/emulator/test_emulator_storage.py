"""The storage listener: signed URLs, expiry, methods, Authorization refusal, streaming PUT/GET, outputs."""

from __future__ import annotations

import io
import socket
import struct
import time
import wave
from urllib.parse import urlsplit

import pytest
import requests

pytestmark = pytest.mark.airflow_independent

STEMS = "music-ai/stems-vocals-accompaniment"


def raw_request(url: str, head: str, body: bytes = b"", read: bool = True) -> bytes:
    """Send a hand-made HTTP request (``head`` lacks the request target host line) and read the answer."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        target = parts.path + ("?" + parts.query if parts.query else "")
        sock.sendall(head.format(target=target, host=parts.netloc).encode() + body)
        if not read:
            return b""
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def xml_code(response: requests.Response) -> str:
    assert response.headers["content-type"].startswith("application/xml")
    return response.text.split("<Code>")[1].split("</Code>")[0]


def test_put_get_head_roundtrip(api):
    urls = api.get("/upload").json()
    data = bytes(range(256)) * 1000
    put = requests.put(urls["uploadUrl"], data=data, headers={"Content-Type": "audio/wav"}, timeout=10)
    assert put.status_code == 200 and put.headers["etag"]
    got = requests.get(urls["downloadUrl"], timeout=10)
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-length"] == str(len(data)) and got.headers["content-type"] == "audio/wav"
    head = requests.head(urls["downloadUrl"], timeout=10)
    assert (
        head.status_code == 200 and head.headers["content-length"] == str(len(data)) and head.content == b""
    )


def test_range_requests(api):
    urls = api.get("/upload").json()
    data = bytes(range(256)) * 40
    requests.put(urls["uploadUrl"], data=data, timeout=10)
    part = requests.get(urls["downloadUrl"], headers={"Range": "bytes=10-19"}, timeout=10)
    assert part.status_code == 206 and part.content == data[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(data)}"
    tail = requests.get(urls["downloadUrl"], headers={"Range": "bytes=-5"}, timeout=10)
    assert tail.status_code == 206 and tail.content == data[-5:]
    bad = requests.get(urls["downloadUrl"], headers={"Range": f"bytes={len(data)}-"}, timeout=10)
    assert bad.status_code == 416


def test_get_before_upload_is_404(api):
    response = requests.get(api.get("/upload").json()["downloadUrl"], timeout=10)
    assert response.status_code == 404 and xml_code(response) == "NoSuchKey"


def test_wrong_method_is_403(api):
    urls = api.get("/upload").json()
    assert requests.get(urls["uploadUrl"], timeout=10).status_code == 403
    wrong = requests.put(urls["downloadUrl"], data=b"x", timeout=10)
    assert wrong.status_code == 403 and "signed for GET" in wrong.text
    assert requests.delete(urls["downloadUrl"], timeout=10).status_code == 405


@pytest.mark.parametrize(
    "mangle",
    [
        lambda u: u.split("?")[0],
        lambda u: u.replace("X-Signature=", "X-Signature=00"),
        lambda u: u.replace("X-Expires=", "X-Expires=9"),
        lambda u: u.replace("/storage/", "/storage/0", 1)[:-1],
    ],
)
def test_bad_or_missing_signature_is_403(api, mangle):
    urls = api.get("/upload").json()
    requests.put(urls["uploadUrl"], data=b"abc", timeout=10)
    response = requests.get(mangle(urls["downloadUrl"]), timeout=10)
    assert response.status_code in (403, 404)
    assert requests.put(mangle(urls["uploadUrl"]), data=b"x", timeout=10).status_code in (403, 404)
    assert requests.get(urls["downloadUrl"], timeout=10).content == b"abc"


def test_expired_urls_are_400_expired_token_as_gcs_answers(api, emu):
    emu.admin.configure(upload_url_ttl_seconds=60, download_url_ttl_seconds=60)
    urls = api.get("/upload").json()
    assert requests.put(urls["uploadUrl"], data=b"abc", timeout=10).status_code == 200
    expiry = int(urls["downloadUrl"].split("X-Expires=")[1].split("&")[0])
    emu.admin.advance_clock(max(0.0, expiry - time.time()) + 1)  # emulated time: no wait for the expiry
    for response in (
        requests.get(urls["downloadUrl"], timeout=10),
        requests.put(urls["uploadUrl"], data=b"x", timeout=10),
    ):
        assert response.status_code == 400 and xml_code(response) == "ExpiredToken"
        assert response.text.startswith(
            "<?xml version='1.0' encoding='UTF-8'?><Error><Code>ExpiredToken</Code>"
            "<Message>Invalid argument.</Message><Details>The provided token has expired. "
            "Request signature expired at: "
        )
        assert "X-Signature" not in response.text


def test_malformed_expiry_is_400_malformed_security_header(api):
    urls = api.get("/upload").json()
    for url in (urls["uploadUrl"], urls["downloadUrl"]):
        bad = url.replace("X-Expires=", "X-Expires=soon")
        response = requests.request("PUT" if url == urls["uploadUrl"] else "GET", bad, data=b"x", timeout=10)
        assert response.status_code == 400 and xml_code(response) == "MalformedSecurityHeader"


def test_result_url_expiry_is_configurable(api, emu, wav):
    emu.admin.configure(result_url_ttl_seconds=-1)
    doc = api.wait(api.create(api.upload(wav)))
    assert requests.get(doc["result"]["vocals"], timeout=10).status_code == 400
    emu.admin.configure(result_url_ttl_seconds=3600)
    doc = api.wait(api.create(api.upload(wav)))
    assert requests.get(doc["result"]["vocals"], timeout=10).status_code == 200
    expiry = int(doc["result"]["vocals"].split("X-Expires=")[1].split("&")[0])
    assert 3500 < expiry - time.time() <= 3600


@pytest.mark.parametrize(
    ("value", "leak"),
    [("test-api-key", True), ("other-api-key", True), ("Bearer test-api-key", True), ("Bearer other", False)],
)
def test_authorization_header_is_refused_and_leaks_counted(api, emu, value, leak):
    urls = api.get("/upload").json()
    put = requests.put(urls["uploadUrl"], data=b"abc", headers={"Authorization": value}, timeout=10)
    get = requests.get(urls["downloadUrl"], headers={"Authorization": value}, timeout=10)
    assert put.status_code == get.status_code == 400
    assert emu.admin.counters()["credential_leaks"] == (2 if leak else 0)


def test_api_key_in_another_header_or_the_query_is_counted(api, emu):
    urls = api.get("/upload").json()
    requests.put(urls["uploadUrl"], data=b"abc", headers={"X-Api-Key": emu.api_key}, timeout=10)
    assert requests.get(urls["downloadUrl"] + "&key=test-api-key", timeout=10).status_code == 200
    assert emu.admin.counters()["credential_leaks"] == 2


def test_storage_and_api_paths_are_separate(api, emu):
    assert (
        requests.get(emu.storage_url + "/v1/application", headers=emu.headers(), timeout=10).status_code
        == 400
    )
    assert requests.get(emu.storage_url + "/v1/application", timeout=10).status_code == 404
    urls = api.get("/upload").json()
    on_api = urls["uploadUrl"].replace(emu.storage_url, emu.base_url)
    assert requests.put(on_api, data=b"x", timeout=10).status_code in (404, 405)


def test_chunked_put_is_accepted_as_gcs_accepts_it(api, emu):
    urls = api.get("/upload").json()
    response = requests.put(urls["uploadUrl"], data=iter([b"abc", b"def" * 100_000]), timeout=10)
    assert response.status_code == 200, response.text
    assert requests.get(urls["downloadUrl"], timeout=10).content == b"abc" + b"def" * 100_000


def test_chunked_put_cut_short_stores_nothing(api, emu):
    urls = api.get("/upload").json()
    head = "PUT {target} HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n"
    raw_request(urls["uploadUrl"], head, b"3\r\nabc\r\n", read=False)
    assert requests.get(urls["downloadUrl"], timeout=10).status_code == 404


def test_put_without_length_or_chunking_is_411(api, emu):
    urls = api.get("/upload").json()
    answer = raw_request(
        urls["uploadUrl"], "PUT {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 411")
    assert requests.get(urls["downloadUrl"], timeout=10).status_code == 404


def test_put_cut_short_leaves_no_object(api, emu):
    urls = api.get("/upload").json()
    head = "PUT {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1000000\r\n\r\n"
    raw_request(urls["uploadUrl"], head, b"x" * 300000, read=False)
    # Give the server time to notice the dropped client. Whether its temp file is already removed
    # is not asserted: on a loaded CI machine it sometimes outlived a 60 s wait (see the issue note);
    # what users rely on is that no object is ever committed from a short body.
    deadline = time.monotonic() + 5
    while emu.admin.storage()["temp_files"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert emu.admin.storage()["objects"] == 0
    assert requests.get(urls["downloadUrl"], timeout=10).status_code == 404
    assert emu.admin.counters()["objects_stored"] == 0


def test_reupload_overwrites(api):
    urls = api.get("/upload").json()
    requests.put(urls["uploadUrl"], data=b"one", timeout=10)
    requests.put(urls["uploadUrl"], data=b"second", timeout=10)
    assert requests.get(urls["downloadUrl"], timeout=10).content == b"second"


def samples(data: bytes) -> tuple[wave._wave_params, list[int]]:
    with wave.open(io.BytesIO(data)) as w:
        params = w.getparams()
        frames = w.readframes(w.getnframes())
    return params, list(struct.unpack(f"<{len(frames) // 2}h", frames))


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_stems_are_wavs_derived_from_the_input(api, wav_factory, width):
    source = wav_factory(seconds=0.2, rate=8000, channels=2, width=width)
    doc = api.wait(api.create(api.upload(source)))
    assert doc["status"] == "SUCCEEDED", doc
    vocals = requests.get(doc["result"]["vocals"], timeout=10)
    accompaniments = requests.get(doc["result"]["accompaniments"], timeout=10)
    assert vocals.headers["content-type"] == "audio/wav"
    v_params, v = samples(vocals.content)
    a_params, a = samples(accompaniments.content)
    assert (v_params.nchannels, v_params.sampwidth, v_params.framerate, v_params.nframes) == (
        1,
        2,
        8000,
        1600,
    )
    assert a_params.nframes == 1600
    _, pcm = samples(wav_factory(seconds=0.2, rate=8000, channels=2, width=2))
    left, right = pcm[0::2], pcm[1::2]
    tolerance = 0 if width >= 2 else 256
    assert all(abs(x - ((lt + r) >> 1)) <= tolerance for x, lt, r in zip(v, left, right, strict=True))
    assert all(abs(x - ((lt - r) >> 1)) <= tolerance for x, lt, r in zip(a, left, right, strict=True))
    assert any(v) and any(a)


def test_mono_input_gives_input_and_silence(api, wav_factory):
    source = wav_factory(seconds=0.1, channels=1)
    doc = api.wait(api.create(api.upload(source)))
    _, v = samples(requests.get(doc["result"]["vocals"], timeout=10).content)
    _, a = samples(requests.get(doc["result"]["accompaniments"], timeout=10).content)
    assert v == samples(source)[1] and not any(a)


@pytest.mark.parametrize(
    "head",
    [
        b"ID3\x04\x00\x00\x00\x00\x00\x00",
        b"fLaC\x00\x00\x00\x22",
        b"OggS\x00\x02",
        b"\x00\x00\x00\x20ftypM4A ",
    ],
)
def test_other_containers_give_byte_derived_wavs(api, head):
    data = head + bytes(range(256)) * 20
    doc = api.wait(api.create(api.upload(data)))
    assert doc["status"] == "SUCCEEDED", doc
    params, v = samples(requests.get(doc["result"]["vocals"], timeout=10).content)
    assert params.framerate == 22050 and params.nframes == (len(data) + 1) // 2
    assert v[:3] == [struct.unpack("b", data[i : i + 1])[0] << 8 for i in (0, 2, 4)]


def test_large_streamed_upload(api, emu):
    urls = api.get("/upload").json()
    size = 64 << 20

    class Body:
        """A file-like body of known length, read in chunks (never held in memory)."""

        def __init__(self) -> None:
            self.left = size

        def __len__(self) -> int:
            return self.left

        def read(self, n: int = -1) -> bytes:
            n = self.left if n < 0 else min(n, self.left)
            self.left -= n
            return b"\x5a" * n

    response = requests.put(urls["uploadUrl"], data=Body(), timeout=30)
    assert response.status_code == 200
    with requests.get(urls["downloadUrl"], stream=True, timeout=30) as got:
        total = sum(len(c) for c in got.iter_content(1 << 20))
    assert total == size
    assert emu.admin.counters()["bytes_stored"] == size
