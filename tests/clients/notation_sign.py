"""Signs an image as the Notary Project's notation does, for tests/content_trust.rs, with
libraries independent of edgeyard: pyca/cryptography makes a CA and a signing certificate
(RSA-2048, so the JWS algorithm is PS256), jwcrypto builds the JWS envelope (flattened JSON
serialization) following the Notary Project's JWS signature envelope specification.

Usage: notation_sign.py OUTDIR DIGEST SIZE MEDIATYPE
Writes OUTDIR/ca.crt (the root, PEM: what the operator installs) and OUTDIR/envelope.json.
"""

import datetime
import json
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from jwcrypto import jwk, jws
from jwcrypto.common import json_encode

SCHEME = "io.cncf.notary.signingScheme"


def name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "Bavaria"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Factory"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def usage(**on: bool) -> x509.KeyUsage:
    flags = dict.fromkeys(
        [
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ],
        False,
    )
    flags.update(on)
    return x509.KeyUsage(**flags)


def main() -> None:
    out, digest, size, media_type = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("Factory Root CA"))
        .issuer_name(name("Factory Root CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("Release Signer"))
        .issuer_name(ca.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    payload = json.dumps(
        {"targetArtifact": {"mediaType": media_type, "digest": digest, "size": size}}
    )
    signer = jws.JWS(
        payload.encode(),
        header_registry={
            SCHEME: jws.JWSEHeaderParameter("Notary Project signing scheme", True, True, None)
        },
    )
    protected = {
        "alg": "PS256",
        "cty": "application/vnd.cncf.notary.payload.v1+json",
        "crit": [SCHEME],
        SCHEME: "notary.x509",
        "io.cncf.notary.signingTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    b64 = __import__("base64").b64encode
    unprotected = {
        "x5c": [b64(c.public_bytes(serialization.Encoding.DER)).decode() for c in (leaf, ca)],
        "io.cncf.notary.signingAgent": "jwcrypto test signer",
    }
    key = jwk.JWK.from_pem(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    signer.add_signature(key, None, json_encode(protected), json_encode(unprotected))
    with open(f"{out}/envelope.json", "w") as f:
        f.write(signer.serialize(compact=False))
    with open(f"{out}/ca.crt", "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))


main()
