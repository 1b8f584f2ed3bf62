//! cosign's key-based flow, done by an implementation other than edgeyard's: the sigstore
//! crate generates the key pair as `cosign generate-key-pair` does (the private key
//! encrypted with `$COSIGN_PASSWORD`), and signs an image in a registry as `cosign sign
//! --key` does (the simple-signing payload, its signature, pushed under the image's
//! `sha256-<hex>.sig` tag). tests/content_trust.rs then checks that edgeyard verifies what it
//! made with the public key it wrote.
//!
//!     edgeyard-cosign-rs generate-key-pair DIR
//!     edgeyard-cosign-rs sign KEY HOST:PORT/REPO@sha256:HEX     (plain HTTP, anonymous)

use sigstore::cosign::constraint::PrivateKeySigner;
use sigstore::cosign::{Constraint, CosignCapabilities, SignatureLayer};
use sigstore::crypto::signing_key::SigStoreKeyPair;
use sigstore::crypto::SigningScheme;
use sigstore::registry::{Auth, ClientConfig, ClientProtocol, OciReference};
use zeroize::Zeroizing;

type Failure = Box<dyn std::error::Error>;

fn password() -> Zeroizing<Vec<u8>> {
    Zeroizing::new(
        std::env::var("COSIGN_PASSWORD")
            .unwrap_or_default()
            .into_bytes(),
    )
}

fn generate(dir: &str) -> Result<(), Failure> {
    let pair = SigningScheme::ECDSA_P256_SHA256_ASN1
        .create_signer()?
        .to_sigstore_keypair()?;
    let private = pair.private_key_to_encrypted_pem(&password())?;
    std::fs::write(format!("{dir}/cosign.key"), private.as_bytes())?;
    std::fs::write(format!("{dir}/cosign.pub"), pair.public_key_to_pem()?)?;
    Ok(())
}

async fn sign(key: &str, image: &str) -> Result<(), Failure> {
    let image: OciReference = image.parse()?;
    let mut config = ClientConfig::default();
    config.protocol = ClientProtocol::Http;
    let mut client = sigstore::cosign::ClientBuilder::default()
        .with_oci_client_config(config)
        .build()?;
    let auth = Auth::Anonymous;
    let (signature_image, digest) = client.triangulate(&image, &auth).await?;
    let mut layer = SignatureLayer::new_unsigned(&image, &digest)?;
    let raw = Zeroizing::new(std::fs::read(key)?);
    // Decrypted here to fail early with a clear message on a wrong password.
    SigStoreKeyPair::from_encrypted_pem(&raw, &password())?;
    let signer =
        PrivateKeySigner::new_with_raw(raw, password(), &SigningScheme::ECDSA_P256_SHA256_ASN1)?;
    signer.add_constraint(&mut layer)?;
    client
        .push_signature(None, &auth, &signature_image, vec![layer])
        .await?;
    println!("signed {image} ({digest}) as {signature_image}");
    Ok(())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let done = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [_, "generate-key-pair", dir] => generate(dir),
        [_, "sign", key, image] => sign(key, image).await,
        _ => Err("usage: edgeyard-cosign-rs generate-key-pair DIR | sign KEY IMAGE".into()),
    };
    if let Err(e) = done {
        eprintln!("edgeyard-cosign-rs: {e}");
        std::process::exit(1);
    }
}
