"""A minimal HTTP/1.1 server on loopback that discards PUT bodies and serves GETs from memory.

It is the "nothing but the wire" reference for the transfer benchmarks: clients (curl, the hook)
talk to it exactly as they talk to the emulator's storage listener, so comparing the two runs
shows whether the emulator is what limits a transfer. A thread per connection reads bodies into
one reused 4 MiB buffer and answers GET ``/<bytes>`` with that many bytes from a preallocated
block, so its own cost per byte is a single ``recv_into``/``sendall``.

Run: ``python benchmarks/loopback_sink.py`` prints its port on the first line, then serves.
"""

from __future__ import annotations

import socket
import sys
import threading

BUFFER = 4 << 20
_BLOCK = memoryview(bytes(range(256)) * (BUFFER // 256))


def _readline(conn: socket.socket) -> bytes:
    """One header line, read byte by byte so that no body byte is consumed."""
    chunks = []
    while True:
        byte = conn.recv(1)
        if not byte:
            return b"".join(chunks)
        chunks.append(byte)
        if byte == b"\n":
            return b"".join(chunks)


def _request_head(conn: socket.socket, first: bytes) -> tuple[str, str, dict[str, str]]:
    method, target, *_ = first.decode("latin-1").split()
    found: dict[str, str] = {}
    while True:
        line = _readline(conn)
        if line in (b"\r\n", b"\n", b""):
            return method, target, found
        name, _, value = line.decode("latin-1").partition(":")
        found[name.strip().lower()] = value.strip()


def _serve(conn: socket.socket) -> None:
    buffer = bytearray(BUFFER)
    view = memoryview(buffer)
    with conn:
        while True:
            first = _readline(conn)
            if not first.strip():
                return
            method, target, headers = _request_head(conn, first)
            if method == "PUT":
                if headers.get("expect", "").lower() == "100-continue":
                    conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                left = int(headers.get("content-length", "0"))
                while left:
                    got = conn.recv_into(view[: min(left, BUFFER)])
                    if not got:
                        return
                    left -= got
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            elif method == "GET":
                size = int(target.strip("/").split("?")[0] or 0)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                    + f"Content-Length: {size}\r\n\r\n".encode()
                )
                while size:
                    step = min(size, BUFFER)
                    conn.sendall(_BLOCK[:step])
                    size -= step
            else:
                conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")


def main() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    print(server.getsockname()[1], flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=_serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
