//! Content trust: verifying image signatures offline, against keys the operator installed.
//! Nothing here touches the network or the store: callers hand in bytes (a public key, a
//! signature payload, a signature) and get a verdict.
//!
//! - `keys`: public keys as operators install them (PEM SubjectPublicKeyInfo), with the
//!   fingerprint they are shown by, and signature checks with `ring`.
//! - `cosign`: cosign's key-based signatures (the "simple signing" payload and its
//!   signature), as found under the `sha256-<hex>.sig` tag scheme.
//! - `notation`: Notary Project signatures (JWS envelopes with an X.509 chain), and
//!   `x509chain`: the chain and identity checks they need.
//! - `signing`: the private key that signs the trust material a bundle carries.
//!
//! The formats are described in `docs/research/content-trust-formats.md`.

pub mod cosign;
pub mod keys;
pub mod notation;
pub mod signing;
#[cfg(test)]
pub(crate) mod testkit;
pub mod x509chain;
