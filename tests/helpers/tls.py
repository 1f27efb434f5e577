"""An HTTPS server on loopback whose certificate is signed by a CA made for the test.

with HttpsServer(tmp_path) as server:
    server.ca_file   # PEM of the CA: what a connection's "ca_bundle" extra points at
    server.url("/v1")
"""

from __future__ import annotations

import ssl
from pathlib import Path

from airflow_provider_musicai.testing.emulator.tls import make_tls_files
from tests.helpers.hostile import Handler, HostileServer


def make_ca_and_server_cert(folder: Path) -> tuple[Path, Path, Path]:
    """A private CA and a server certificate it signed for loopback (the emulator's own TLS
    set-up): the paths of the CA's PEM, the server certificate's PEM and the server key's PEM."""
    files = make_tls_files(folder, ["127.0.0.1"])
    return files.ca_path, files.cert_path, files.key_path


class HttpsServer(HostileServer):
    """:class:`HostileServer` behind TLS, with a certificate from a CA made for the test."""

    def __init__(self, handler: Handler, folder: Path) -> None:
        self.ca_file, cert_file, key_file = make_ca_and_server_cert(folder)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        super().__init__(handler)
        # No client has connected yet: from now on every accepted connection starts with a TLS
        # handshake (the listening socket keeps its file descriptor, so the serving loop goes on).
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)

    def url(self, path: str = "") -> str:
        """``https://127.0.0.1:<port><path>``."""
        return f"https://127.0.0.1:{self.port}{path}"
