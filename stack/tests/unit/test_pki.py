"""The control plane's certificates chain to one CA and carry the right identities."""

from __future__ import annotations

from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from checkout_stack import pki


def test_issued_certificates_chain_to_the_ca_and_are_reused(tmp_path: Path) -> None:
    ca = pki.CertificateAuthority(tmp_path, "test-ca")
    server = ca.issue(
        "apiserver", common_name="kube-apiserver", server_names=("kubernetes",), server_ips=("127.0.0.1",)
    )
    admin = ca.issue("admin", common_name="admin", organizations=("system:masters",))
    ca_cert = x509.load_pem_x509_certificate(ca.files.cert.read_bytes())
    for pair in (server, admin):
        cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
        public_key = ca_cert.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        cert.verify_directly_issued_by(ca_cert)
        assert oct(pair.key.stat().st_mode & 0o777) == "0o600"
    admin_cert = x509.load_pem_x509_certificate(admin.cert.read_bytes())
    assert admin_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    usage = admin_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    san = (
        x509.load_pem_x509_certificate(server.cert.read_bytes())
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value
    )
    assert san.get_values_for_type(x509.DNSName) == ["kubernetes"]

    before = server.cert.read_bytes()
    assert pki.CertificateAuthority(tmp_path, "test-ca").issue("apiserver", common_name="x").cert.read_bytes() == before


def test_kubeconfig_points_at_the_server_with_the_client_certificate(tmp_path: Path) -> None:
    ca = pki.CertificateAuthority(tmp_path, "test-ca")
    client = ca.issue("admin", common_name="admin")
    path = pki.write_kubeconfig(
        tmp_path / "kubeconfig",
        server="https://127.0.0.1:1",
        ca=ca.files.cert,
        client=client,
        name="checkout-local",
        user="admin",
    )
    config = yaml.safe_load(path.read_text())
    assert config["current-context"] == "checkout-local"
    assert config["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:1"
    assert config["users"][0]["user"]["client-certificate"] == str(client.cert)
