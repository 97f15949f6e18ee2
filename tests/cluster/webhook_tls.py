"""The validating webhook served on loopback with TLS: a serving certificate for
127.0.0.1 and the ValidatingWebhookConfiguration that points the apiserver at it.

Shared by the cluster tests and the cluster benchmarks (bench/ imports it
from here): plain functions, no pytest. The apiserver reaches the webhook by
URL on 127.0.0.1: the local control plane has no kube-proxy, and Endpoints
refuse loopback addresses, so a Service reference could not be routed.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import socket
import subprocess
import time
from pathlib import Path


def serving_certificate(folder: Path) -> tuple[Path, Path, bytes]:
    """A CA and a certificate for 127.0.0.1 signed by it: (cert, key, CA PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "millrace-webhook-test-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = folder / "tls.crt", folder / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path, ca.public_bytes(serialization.Encoding.PEM)



def webhook_configuration(name: str, namespace: str, port: int, ca: bytes) -> dict:
    def webhook(plural: str, path: str) -> dict:
        return {
            "name": f"{plural}.millrace.dev",
            "clientConfig": {"url": f"https://127.0.0.1:{port}/{path}", "caBundle": base64.b64encode(ca).decode()},
            "rules": [{"apiGroups": ["millrace.dev"], "apiVersions": ["v1alpha1"], "resources": [plural],
                       "operations": ["CREATE", "UPDATE"], "scope": "Namespaced"}],
            # Only this test's namespace: other tests share the control plane.
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "failurePolicy": "Fail", "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 10,
        }
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [webhook("flows", "validate-flow"), webhook("flowruns", "validate-flowrun")]}


def wait_until_listening(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"kopf exited with {proc.returncode}:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"the webhook server did not listen on {port}:\n{log.read_text()}")
