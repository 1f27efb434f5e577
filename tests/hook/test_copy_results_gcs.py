"""``copy_results_to`` with ``gs://``: the Google provider's ``GCSHook`` presigns a V4 PUT URL with a
service-account key made here. Signing needs only the private key, so Google is never contacted;
the signature is checked against the key's public half, for the bucket, object and PUT method."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

try:
    import airflow.providers.google.cloud.hooks.gcs  # noqa: F401
except ImportError:
    pytest.skip(
        "gs:// presigning needs the Google provider: pip install 'airflow-provider-musicai[google]'",
        allow_module_level=True,
    )

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from airflow_provider_musicai.copy_results import copy_targets
from airflow_provider_musicai.hooks._presign import presign_all

EMAIL = "musicai-tests@musicai-tests.iam.gserviceaccount.com"


@pytest.fixture
def service_account(monkeypatch: pytest.MonkeyPatch) -> rsa.RSAPublicKey:
    """``google_cloud_default`` with a fresh service-account key; returns its public key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "musicai-tests",
        "private_key_id": "test-key",
        "private_key": pem,
        "client_email": EMAIL,
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    connection = {
        "conn_type": "google_cloud_platform",
        "extra": {"keyfile_dict": json.dumps(info), "project": "musicai-tests"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", json.dumps(connection))
    return key.public_key()


def _verify_v4(url: str, method: str, public_key: rsa.RSAPublicKey) -> dict[str, str]:
    """Check ``url``'s GOOG4-RSA-SHA256 signature as Cloud Storage would; return its query."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    signature = bytes.fromhex(query.pop("X-Goog-Signature"))
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items())
    )
    signed = query["X-Goog-SignedHeaders"].split(";")
    headers = "".join(f"{name}:{parts.hostname}\n" for name in signed if name == "host")
    request = "\n".join(
        [method, parts.path, canonical_query, headers, query["X-Goog-SignedHeaders"], "UNSIGNED-PAYLOAD"]
    )
    scope = query["X-Goog-Credential"].split("/", 1)[1]
    to_sign = "\n".join(
        [
            query["X-Goog-Algorithm"],
            query["X-Goog-Date"],
            scope,
            hashlib.sha256(request.encode()).hexdigest(),
        ]
    )
    public_key.verify(signature, to_sign.encode(), padding.PKCS1v15(), hashes.SHA256())
    return query


def test_a_gs_destination_is_presigned_as_a_v4_put_signing_only_the_host(
    service_account: rsa.RSAPublicKey,
) -> None:
    targets = copy_targets({"vocals": "gs://musicai-bucket/stems/run 1/vocals.wav"})
    (url,) = presign_all(targets, expires_in=timedelta(hours=2)).values()

    parts = urlsplit(url)
    assert (parts.scheme, parts.hostname) == ("https", "storage.googleapis.com")
    assert parts.path == "/musicai-bucket/stems/run%201/vocals.wav"
    query = _verify_v4(url, "PUT", service_account)
    assert query["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256"
    assert query["X-Goog-SignedHeaders"] == "host"  # the service may PUT with any Content-Type
    assert query["X-Goog-Expires"] == "7200"
    assert query["X-Goog-Credential"].startswith(f"{EMAIL}/")
    assert targets["vocals"].uri == "gs://musicai-bucket/stems/run 1/vocals.wav"


def test_the_signature_covers_the_method_a_get_would_not_verify(
    service_account: rsa.RSAPublicKey,
) -> None:
    from cryptography.exceptions import InvalidSignature

    (url,) = presign_all(copy_targets({"vocals": "gs://musicai-bucket/vocals.wav"})).values()
    with pytest.raises(InvalidSignature):
        _verify_v4(url, "GET", service_account)


def test_a_folder_of_outputs_gets_one_signed_object_each(service_account: rsa.RSAPublicKey) -> None:
    urls: dict[str, Any] = presign_all(
        copy_targets("gs://musicai-bucket/stems/", outputs=["vocals", "accompaniment"])
    )
    assert {name: urlsplit(url).path for name, url in urls.items()} == {
        "vocals": "/musicai-bucket/stems/vocals",
        "accompaniment": "/musicai-bucket/stems/accompaniment",
    }
    for url in urls.values():
        _verify_v4(url, "PUT", service_account)
