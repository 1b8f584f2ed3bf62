//! edgeyard: a container registry for edge hardware.
//!
//! Module map, each layer importing only from the layers listed before it:
//!
//! - [`oci`]: pure vocabulary: digests and hashing, names/tags/references, manifests.
//! - [`error`]: the one error type, mapped to the spec's error codes.
//! - [`storage`]: blob bytes on disk (layout, uploads, atomic commit, streaming reads).
//! - [`meta`]: metadata in sled (repos, links, manifests, tags, referrers, uploads).
//! - [`registry`]: the use cases, behind one cheap-to-clone `Registry` handle.
//! - [`client`], [`remote`]: HTTP(S) to other servers: a small client, and another registry
//!   spoken to as docker would (login, manifests, blobs, tags), for mirrors, sync and push-to.
//! - [`registry`]: also mirrors (pull-through, sync, eviction), bundles and replication.
//! - [`http`]: routes, handlers, and the error-to-response mapping.
//! - [`server`]: the accept loop, what one connection may hold (its share of read buffers, a
//!   watchdog for idle and stalled connections, a lingering close), and graceful shutdown.
//! - [`config`], [`cli`], [`telemetry`]: what `main` needs to start things.
//!
//! The rule: handlers call the registry; the registry calls storage and meta; nothing calls
//! upward, and `http` never touches the disk or sled.

// Every `unsafe` block says why it is sound (clippy, with warnings as errors, enforces it).
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod auth;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod error;
pub mod governance;
pub mod http;
pub mod meta;
pub mod metrics;
pub mod oci;
pub mod registry;
pub mod remote;
pub mod server;
pub mod storage;
pub mod systemd;
pub mod telemetry;
pub mod tls;
