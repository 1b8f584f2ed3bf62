//! Keys and signatures made by OpenSSL, an implementation independent of edgeyard's, for
//! the content-trust tests: key pairs as `cosign generate-key-pair` leaves them (PEM
//! private key and `PUBLIC KEY`), and signatures over a payload as cosign makes them.

use std::path::Path;
use std::process::Command;

use base64::Engine;

/// Runs openssl in `dir`; its standard output.
pub fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (scripts/test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `NAME.key` made by `openssl genpkey GENPKEY...`, and its public key as `NAME.pub`.
pub fn key_pair(dir: &Path, name: &str, genpkey: &[&str]) {
    let key = format!("{name}.key");
    let mut args = vec!["genpkey", "-out", &key];
    args.extend_from_slice(genpkey);
    openssl(dir, &args);
    let public = format!("{name}.pub");
    openssl(dir, &["pkey", "-in", &key, "-pubout", "-out", &public]);
}

/// An ECDSA P-256 key pair, what cosign makes by default.
pub fn p256_key_pair(dir: &Path, name: &str) {
    key_pair(
        dir,
        name,
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
}

/// `NAME.key`'s signature over `payload` as cosign makes it (SHA-256, DER for ECDSA), in
/// base64; `raw` signs the bytes themselves (Ed25519).
pub fn sign(dir: &Path, name: &str, payload: &[u8], raw: bool) -> String {
    std::fs::write(dir.join("payload.json"), payload).unwrap();
    let key = format!("{name}.key");
    let sig = if raw {
        openssl(
            dir,
            &[
                "pkeyutl",
                "-sign",
                "-rawin",
                "-inkey",
                &key,
                "-in",
                "payload.json",
            ],
        )
    } else {
        openssl(dir, &["dgst", "-sha256", "-sign", &key, "payload.json"])
    };
    base64::engine::general_purpose::STANDARD.encode(sig)
}

/// `SHA256:<hex>` of `NAME.pub`'s DER SubjectPublicKeyInfo, as edgeyard shows keys.
pub fn fingerprint(dir: &Path, name: &str) -> String {
    let der = openssl(
        dir,
        &[
            "pkey",
            "-pubin",
            "-in",
            &format!("{name}.pub"),
            "-outform",
            "DER",
        ],
    );
    format!(
        "SHA256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&der))
    )
}
