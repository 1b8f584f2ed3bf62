//! The OCI distribution-spec v1.1.1 conformance suite's four workflows, replayed in Rust
//! against the real binary: the same requests in the same order, with the same fixtures
//! (tab-indented Go-style JSON with `data` and the unknown `newUnspecifiedField`, the gzip
//! layer, 42-byte random blobs, the referrer artifacts), set up as the suite runs against
//! edgeyard: one namespace (`OCI_NAMESPACE`), `OCI_CROSSMOUNT_NAMESPACE` left to its default
//! `conformance-<uuid>`, `OCI_AUTOMATIC_CROSSMOUNT=true`, manifests deleted before blobs.
//! The suite itself cannot run here (its Go dependencies are unreachable), so every case is
//! mirrored, and asserted exactly: where the suite accepts alternatives (201 or 202, 2xx or
//! 405, "if the header is present") the answer edgeyard gives and the spec allows is pinned.
//! Every failing check of a workflow is collected and reported together with its request.
//! Requests go out as the suite's Go client sends them: on one kept-alive connection, with
//! its User-Agent and Accept-Encoding, and a Content-Length only with a body or on
//! POST/PUT/PATCH (so early refusals, 204s and HEAD answers must be framed right for the
//! next request to work).
//!
//! Each workflow runs on its own server with authentication off; the pull workflow runs once
//! more with authentication on and an administrator's Basic credentials; and all four run in
//! order in one namespace of one server, as the suite does (blobs deleted by one workflow are
//! pushed again by the next).
//!
//! Coverage by the suite's own case names. "api.rs: f" = also covered by `tests/api.rs` test
//! `f`; every case is replayed here, since each workflow needs the state its earlier cases
//! leave. Cases marked NEW were covered by no test before this file.
//!
//! Pull
//! - Setup: Populate registry with test blob (x2) / test layer / test manifest (tag, and
//!   by digest) — api.rs: monolithic_upload_then_get_head_and_ranges,
//!   manifests_by_tag_and_digest_exact_bytes; NEW for manifests carrying `data` and an
//!   unknown descriptor field.
//! - Pull blobs: HEAD request to nonexistent blob should result in 404 response — api.rs:
//!   wrong_digest_is_refused_and_stores_nothing. HEAD request to existing blob should yield
//!   200 — api.rs: monolithic_upload_then_get_head_and_ranges. GET nonexistent blob should
//!   result in 404 response — NEW. GET request to existing blob URL should yield 200 —
//!   api.rs: monolithic_upload_then_get_head_and_ranges.
//! - Pull manifests: HEAD request to nonexistent manifest should return 404 — api.rs:
//!   invalid_names_tags_digests_and_traversal (the `.INVALID_MANIFEST_NAME` failure of the
//!   last run; here in its workflow, next to a pushed image). HEAD request to manifest[0] path
//!   (digest) / manifest path (tag) should yield 200 response — api.rs:
//!   manifests_by_tag_and_digest_exact_bytes. HEAD request to manifest[1] path (digest) —
//!   NEW (a manifest pushed by digest). GET nonexistent manifest should return 404 — api.rs:
//!   invalid_names_tags_digests_and_traversal (same failure). GET request to manifest[0]
//!   path (digest) / manifest[1] path (digest) /
//!   manifest path (tag) should yield 200 response — api.rs:
//!   manifests_by_tag_and_digest_exact_bytes.
//! - Error codes: 400 response body should contain OCI-conforming JSON message
//!   (`sha256:totallywrong`, a GET with a body) — NEW (api.rs:
//!   invalid_names_tags_digests_and_traversal checks `sha256:abc` without a body).
//! - Teardown: Delete manifest[0] / manifest[1] created in setup, Delete config[0] /
//!   config[1] / layer blob created in setup — api.rs: deletes.
//!
//! Push
//! - Blob Upload Streamed: PATCH request with blob in body should yield 202 response, PUT
//!   request to session URL with digest should yield 201 response — api.rs:
//!   docker_style_patch_without_range_then_put; NEW: the closing PUT without a body and its
//!   Location.
//! - Blob Upload Monolithic: GET nonexistent blob should result in 404 response — NEW.
//!   POST request with digest and blob should yield a 201 or 202, GET request to blob URL
//!   from prior request should yield 200 or 404 based on response code, POST request should
//!   yield a session ID, PUT upload of a blob should yield a 201 Response, GET request to
//!   existing blob should yield 200 response, PUT upload of a layer blob should yield a 201
//!   Response, GET request to existing layer should yield 200 response — api.rs:
//!   monolithic_upload_then_get_head_and_ranges, chunked_upload_with_status_and_out_of_order_chunk,
//!   sixteen_clients_pushing_small_blobs_all_finish.
//! - Blob Upload Chunked: Out-of-order blob upload should return 416 — NEW (a first chunk
//!   not starting at 0; api.rs skips ahead mid-upload). PATCH request with first chunk should
//!   return 202 — api.rs: chunked_upload_with_status_and_out_of_order_chunk. Retry previous
//!   blob chunk should return 416 — NEW. Get on stale blob upload should return 204 with a
//!   range and location — NEW (the POST's Location after a PATCH). PATCH request with second
//!   chunk should return 202, PUT request with digest should return 201 — api.rs:
//!   chunked_upload_with_status_and_out_of_order_chunk.
//! - Cross-Repository Blob Mount: Cross-mounting of a blob without the from argument should
//!   yield session id — NEW. POST request to mount another repository's blob should return
//!   201 or 202, GET request to test digest within cross-mount namespace should return 200 —
//!   api.rs: cross_repository_mount. Cross-mounting of nonexistent blob should yield session
//!   id — skipped by the suite when the mount answers 201; api.rs: cross_repository_mount,
//!   and checked here too. Cross-mounting without from, and automatic content discovery
//!   enabled should return a 201 — api.rs: cross_repository_mount (NEW here: into the
//!   `conformance-<uuid>` namespace). Cross-mounting without from, and automatic content
//!   discovery disabled should return a 202 — not run (the suite skips it with automatic
//!   cross-mount on).
//! - Manifest Upload: GET nonexistent manifest should return 404 — api.rs:
//!   invalid_names_tags_digests_and_traversal. PUT should accept a
//!   manifest upload — api.rs: manifests_by_tag_and_digest_exact_bytes. Registry should
//!   accept a manifest upload with no layers — NEW (no `mediaType`, `layers: []`). GET
//!   request to manifest URL (digest) should yield 200 response — api.rs:
//!   manifests_by_tag_and_digest_exact_bytes.
//! - Teardown: Delete manifest created in tests (and the no-layer one), Delete config blob
//!   created in tests, Delete layer blob created in setup — api.rs: deletes.
//!
//! Content Discovery
//! - Setup: Populate registry with test blob / test layer / test tags — api.rs:
//!   tags_and_catalog_paginate. References setup — NEW: referrers pushed before their
//!   subject, a config-`mediaType` artifact, an index with a subject, a subject never pushed,
//!   each PUT answering `OCI-Subject` (api.rs: index_requires_children_and_referrers_are_listed
//!   checks one artifact whose subject exists).
//! - Listing tags: GET request to list tags should yield 200 response, GET number of tags
//!   should be limitable by `n` query parameter, GET start of tag is set by `last` query
//!   parameter — api.rs: tags_and_catalog_paginate (here also `n=0` and the last page).
//! - Listing references: GET request to nonexistent blob should result in empty 200
//!   response — NEW for status and Content-Type (api.rs checks only the empty list). GET
//!   request to existing blob should yield 200 — NEW (five referrers of three kinds, their
//!   annotations and `artifactType`). GET request to existing blob with filter should yield
//!   200 — NEW (two of five kept, `OCI-Filters-Applied`; api.rs filters to nothing). GET
//!   request to missing manifest should yield 200 — NEW. Beyond the suite: pages of `n`
//!   referrers in digest order with a `Link` rel="next" that keeps `artifactType` — NEW.
//! - Teardown: Delete created manifest & associated tags, Delete config blob created in
//!   tests, Delete layer blob created in setup, References teardown — NEW (deleting a
//!   subject, its referrers and an index, then 404s, then their blobs).
//!
//! Content Management
//! - Setup: Populate registry with test config blob / test layer / test tag, Check how many
//!   tags there are before anything gets deleted — api.rs: deletes.
//! - Manifest delete: DELETE request to manifest tag should return 202, unless tag deletion
//!   is disallowed (400/405) — api.rs: deletes. DELETE request to manifest (digest) should
//!   yield 202 response unless already deleted — NEW (the digest of a manifest whose only tag
//!   was deleted). GET request to deleted manifest URL should yield 404 response, unless
//!   delete is disallowed — api.rs: deletes. GET request to tags list should reflect manifest
//!   deletion — NEW.
//! - Blob delete: DELETE request to blob URL should yield 202 response — api.rs: deletes.
//!   GET request to deleted blob URL should yield 404 response — NEW (api.rs uses HEAD).

mod common;

use std::cell::RefCell;

use base64::Engine as _;
use common::*;

/// `OCI_NAMESPACE` as a user would set it.
const NAMESPACE: &str = "conformance/suite";
/// The suite's default `OCI_CROSSMOUNT_NAMESPACE`: `conformance-` and a UUID.
const CROSSMOUNT_NAMESPACE: &str = "conformance-6f1c2d3e-4b5a-4c6d-8e9f-0a1b2c3d4e5f";

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
const LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const ARTIFACT_TYPE_A: &str = "application/vnd.nhl.peanut.butter.bagel";
const ARTIFACT_TYPE_B: &str = "application/vnd.nba.strawberry.jam.croissant";
const ARTIFACT_TYPE_INDEX: &str = "application/vnd.food.stand";
const ANNOTATION_KEY: &str = "org.opencontainers.conformance.test";
/// The suite's nonexistent (and invalid) manifest reference.
const NONEXISTENT_MANIFEST: &str = ".INVALID_MANIFEST_NAME";
const TEST_TAG: &str = "tagtest0";
const EMPTY_LAYER_TAG: &str = "emptylayer";
/// The suite's test layer: a gzipped tarball of one small text file.
const LAYER_BASE64: &str = "H4sIAAAAAAAAA+3OQQrCMBCF4a49xXgBSUnaHMCTRBptQRNpp6i3t0UEV7oqIv7fYgbmzeJpHHSjVy0\
    WZCa1c/MufWVe94N3RWlrZ72x3k/30nhbFWKWLPU0Dhp6keJ8im//PuU/6pZH2WVtYx8b0Sz7LjWSR5VLG6YRBumSzOlGtjkd+qD\
    jMWiX07Befbs7AAAAAAAAAAAAAAAAAPyzO34MnqoAKAAA";

// ---------------------------------------------------------------------------------------
// Go-style JSON: the suite marshals with `json.MarshalIndent(v, "", "\t")`, in struct field
// order, `[]byte` as base64 and a nil `[]byte` as `null`. The registry must store and serve
// these bytes as they are.

enum J {
    Str(String),
    Num(u64),
    Null,
    Arr(Vec<J>),
    Obj(Vec<(&'static str, J)>),
    /// A Go map (keys sorted by the encoder; ours have one key).
    Map(Vec<(String, String)>),
}

fn s(v: &str) -> J {
    J::Str(v.to_string())
}

fn b64(v: &[u8]) -> J {
    J::Str(base64::engine::general_purpose::STANDARD.encode(v))
}

fn write_json(j: &J, depth: usize, out: &mut String) {
    let indent = |out: &mut String, d: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n('\t', d));
    };
    match j {
        J::Str(v) => out.push_str(&serde_json::to_string(v).unwrap()),
        J::Num(n) => out.push_str(&n.to_string()),
        J::Null => out.push_str("null"),
        J::Arr(items) if items.is_empty() => out.push_str("[]"),
        J::Arr(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, depth + 1);
                write_json(v, depth + 1, out);
            }
            indent(out, depth);
            out.push(']');
        }
        J::Obj(fields) => {
            let pairs: Vec<(String, &J)> = fields.iter().map(|(k, v)| (k.to_string(), v)).collect();
            write_pairs(&pairs, depth, out);
        }
        J::Map(entries) => {
            let values: Vec<J> = entries.iter().map(|(_, v)| s(v)).collect();
            let pairs: Vec<(String, &J)> = entries
                .iter()
                .zip(values.iter())
                .map(|((k, _), v)| (k.clone(), v))
                .collect();
            write_pairs(&pairs, depth, out);
        }
    }
}

fn write_pairs(pairs: &[(String, &J)], depth: usize, out: &mut String) {
    if pairs.is_empty() {
        out.push_str("{}");
        return;
    }
    out.push('{');
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('\n');
        out.extend(std::iter::repeat_n('\t', depth + 1));
        out.push_str(&serde_json::to_string(k).unwrap());
        out.push_str(": ");
        write_json(v, depth + 1, out);
    }
    out.push('\n');
    out.extend(std::iter::repeat_n('\t', depth));
    out.push('}');
}

fn marshal_indent(j: &J) -> Vec<u8> {
    let mut out = String::new();
    write_json(j, 0, &mut out);
    out.into_bytes()
}

// ---------------------------------------------------------------------------------------
// The suite's fixtures.

#[derive(Clone)]
struct Blob {
    bytes: Vec<u8>,
    digest: String,
}

impl Blob {
    fn new(bytes: Vec<u8>) -> Blob {
        let digest = sha256(&bytes);
        Blob { bytes, digest }
    }

    fn len(&self) -> usize {
        self.bytes.len()
    }

    fn len_str(&self) -> String {
        self.bytes.len().to_string()
    }
}

/// The suite's `descriptor`: mediaType, digest, size, [data], [artifactType],
/// newUnspecifiedField (always written, `null` when unset).
fn descriptor(media_type: &str, b: &Blob, data: Option<&[u8]>, unspecified: Option<&[u8]>) -> J {
    let mut f = vec![
        ("mediaType", s(media_type)),
        ("digest", s(&b.digest)),
        ("size", J::Num(b.len() as u64)),
    ];
    if let Some(d) = data {
        f.push(("data", b64(d)));
    }
    f.push((
        "newUnspecifiedField",
        unspecified.map(b64).unwrap_or(J::Null),
    ));
    J::Obj(f)
}

fn annotations(value: &str) -> J {
    J::Map(vec![(ANNOTATION_KEY.to_string(), value.to_string())])
}

struct Fixtures {
    /// One image config per workflow (and a fifth, the referrers' subject's).
    configs: Vec<Blob>,
    layer: Blob,
    /// `manifests[i]` uses `configs[i]` and the layer.
    manifests: Vec<Blob>,
    empty_layer_manifest: Blob,
    blob_a: Blob,
    /// The chunked blob's seed; the blob is rebuilt if the server asks for larger chunks.
    blob_b_seed: u64,
    empty_json: Blob,
    ref_blob_a: Blob,
    ref_blob_b: Blob,
    refs_a_config: Blob,
    refs_b_config: Blob,
    refs_a_layer: Blob,
    refs_b_layer: Blob,
    refs_c_layer: Blob,
    refs_index: Blob,
    /// Referrer digest -> its annotation value.
    annotation_values: Vec<(String, String)>,
    dummy_digest: String,
}

/// The suite's random config author: 16 characters from `[0-9A-Za-z-]`.
fn author(seed: u64) -> String {
    const LETTERS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-";
    bytes(16, seed)
        .iter()
        .map(|b| LETTERS[*b as usize % LETTERS.len()] as char)
        .collect()
}

impl Fixtures {
    fn new(seed: u64) -> Fixtures {
        let configs: Vec<Blob> = (0..5)
            .map(|i| {
                Blob::new(marshal_indent(&J::Obj(vec![
                    ("author", s(&author(seed * 10 + i))),
                    ("architecture", s("amd64")),
                    ("os", s("linux")),
                    (
                        "rootfs",
                        J::Obj(vec![("type", s("layers")), ("diff_ids", J::Arr(vec![]))]),
                    ),
                ])))
            })
            .collect();
        let layer = Blob::new(
            base64::engine::general_purpose::STANDARD
                .decode(LAYER_BASE64)
                .unwrap(),
        );
        let config_descriptor =
            |c: &Blob| descriptor(OCI_CONFIG, c, Some(&c.bytes), Some(b"hello world"));
        let manifests: Vec<Blob> = configs
            .iter()
            .map(|c| {
                Blob::new(marshal_indent(&J::Obj(vec![
                    ("schemaVersion", J::Num(2)),
                    ("mediaType", s(OCI_MANIFEST)),
                    ("config", config_descriptor(c)),
                    (
                        "layers",
                        J::Arr(vec![descriptor(LAYER_TAR_GZIP, &layer, None, None)]),
                    ),
                ])))
            })
            .collect();
        let empty_layer_manifest = Blob::new(marshal_indent(&J::Obj(vec![
            ("schemaVersion", J::Num(2)),
            ("config", config_descriptor(&configs[1])),
            ("layers", J::Arr(vec![])),
        ])));
        let empty_json = Blob::new(b"{}".to_vec());
        let ref_blob_a = Blob::new(b"NHL Peanut Butter on my NHL bagel".to_vec());
        let ref_blob_b = Blob::new(b"NBA Strawberry Jam on my NBA croissant".to_vec());
        let subject = |m: &Blob| descriptor(OCI_MANIFEST, m, None, None);
        let empty_desc = || descriptor(OCI_EMPTY, &empty_json, None, None);
        // An artifact whose type is its config's media type.
        let config_artifact = |t: &str, blob: &Blob, note: &str| {
            Blob::new(marshal_indent(&J::Obj(vec![
                ("schemaVersion", J::Num(2)),
                ("mediaType", s(OCI_MANIFEST)),
                ("config", descriptor(t, blob, None, None)),
                ("layers", J::Arr(vec![empty_desc()])),
                ("subject", subject(&manifests[4])),
                ("annotations", annotations(note)),
            ])))
        };
        // An artifact with `artifactType` and the empty config.
        let layer_artifact = |t: &str, blob: &Blob, subj: &Blob, note: Option<&str>| {
            let mut f = vec![
                ("schemaVersion", J::Num(2)),
                ("mediaType", s(OCI_MANIFEST)),
                ("artifactType", s(t)),
                ("config", empty_desc()),
                ("layers", J::Arr(vec![descriptor(t, blob, None, None)])),
                ("subject", subject(subj)),
            ];
            if let Some(n) = note {
                f.push(("annotations", annotations(n)));
            }
            Blob::new(marshal_indent(&J::Obj(f)))
        };
        let refs_a_config = config_artifact(ARTIFACT_TYPE_A, &ref_blob_a, "test config a");
        let refs_b_config = config_artifact(ARTIFACT_TYPE_B, &ref_blob_b, "test config b");
        let refs_a_layer = layer_artifact(
            ARTIFACT_TYPE_A,
            &ref_blob_a,
            &manifests[4],
            Some("test layer a"),
        );
        let refs_b_layer = layer_artifact(
            ARTIFACT_TYPE_B,
            &ref_blob_b,
            &manifests[4],
            Some("test layer b"),
        );
        // Same as B's, for a subject that is never pushed.
        let refs_c_layer = layer_artifact(ARTIFACT_TYPE_B, &ref_blob_b, &manifests[3], None);
        let refs_index = Blob::new(marshal_indent(&J::Obj(vec![
            ("schemaVersion", J::Num(2)),
            ("mediaType", s(OCI_INDEX)),
            ("artifactType", s(ARTIFACT_TYPE_INDEX)),
            (
                "manifests",
                J::Arr(vec![
                    descriptor(OCI_MANIFEST, &refs_a_config, None, None),
                    descriptor(OCI_MANIFEST, &refs_a_layer, None, None),
                ]),
            ),
            ("subject", subject(&manifests[4])),
            ("annotations", annotations("test index")),
        ])));
        let annotation_values = vec![
            (refs_a_config.digest.clone(), "test config a".to_string()),
            (refs_b_config.digest.clone(), "test config b".to_string()),
            (refs_a_layer.digest.clone(), "test layer a".to_string()),
            (refs_b_layer.digest.clone(), "test layer b".to_string()),
            (refs_index.digest.clone(), "test index".to_string()),
        ];
        Fixtures {
            configs,
            layer,
            manifests,
            empty_layer_manifest,
            blob_a: Blob::new(bytes(42, seed * 10 + 1)),
            blob_b_seed: seed * 10 + 2,
            empty_json,
            ref_blob_a,
            ref_blob_b,
            refs_a_config,
            refs_b_config,
            refs_a_layer,
            refs_b_layer,
            refs_c_layer,
            refs_index,
            annotation_values,
            dummy_digest: sha256(b"hello world"),
        }
    }

    fn annotation_of(&self, digest: &str) -> Option<&str> {
        self.annotation_values
            .iter()
            .find(|(d, _)| d == digest)
            .map(|(_, v)| v.as_str())
    }
}

/// The suite's chunked blob of `size` bytes: a first chunk of `size/2 + 1` bytes and the rest.
struct Chunked {
    blob: Blob,
    split: usize,
}

impl Chunked {
    fn new(size: usize, seed: u64) -> Chunked {
        Chunked {
            blob: Blob::new(bytes(size, seed)),
            split: size / 2 + 1,
        }
    }
    fn chunk1(&self) -> &[u8] {
        &self.blob.bytes[..self.split]
    }
    fn chunk2(&self) -> &[u8] {
        &self.blob.bytes[self.split..]
    }
    fn range1(&self) -> String {
        format!("0-{}", self.split - 1)
    }
    fn range2(&self) -> String {
        format!("{}-{}", self.split, self.blob.len() - 1)
    }
}

// ---------------------------------------------------------------------------------------
// A client like the suite's: one namespace, optional credentials, relative Locations; every
// failed check is recorded with its case and request, and reported when the workflow ends.

struct Answer {
    request: String,
    r: Resp,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.r.header(name)
    }
    fn status(&self) -> u16 {
        self.r.status
    }
}

struct Client<'a> {
    s: &'a Server,
    auth: Option<String>,
    ns: &'a str,
    cross: &'a str,
    fx: &'a Fixtures,
    label: String,
    failures: RefCell<Vec<String>>,
    /// The kept-alive connection.
    conn: RefCell<Option<std::net::TcpStream>>,
}

/// Reads one answer off a kept-alive connection, framed as HTTP/1.1 frames it (no body
/// after HEAD, 1xx, 204 or 304; else Content-Length, chunked, or up to the close); whether
/// the connection may carry the next request.
fn read_answer(s: &mut std::net::TcpStream, head_only: bool) -> (Resp, bool) {
    use std::io::{BufRead as _, Read as _};
    // One byte at a time, so nothing of a later answer is consumed.
    let mut r = std::io::BufReader::with_capacity(1, s);
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).expect("header line");
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_lowercase(), v.trim().to_string()));
        }
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut reusable = !find("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
    let mut body = Vec::new();
    let no_body = head_only || status < 200 || status == 204 || status == 304;
    if !no_body {
        if let Some(n) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
            body.resize(n, 0);
            r.read_exact(&mut body).expect("body");
        } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            loop {
                line.clear();
                r.read_line(&mut line).expect("chunk size");
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap(), 16)
                    .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
                let mut chunk = vec![0; size + 2];
                r.read_exact(&mut chunk).expect("chunk");
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        } else {
            r.read_to_end(&mut body).expect("body up to the close");
            reusable = false;
        }
    }
    (
        Resp {
            status,
            headers,
            body,
        },
        reusable,
    )
}

/// reggie's `GetRelativeLocation`: the path and query of a Location, absolute or not.
fn relative(location: &str) -> String {
    match location.split_once("://") {
        Some((_, rest)) => rest
            .find('/')
            .map(|i| rest[i..].to_string())
            .unwrap_or_else(|| "/".to_string()),
        None => location.to_string(),
    }
}

impl<'a> Client<'a> {
    fn new(s: &'a Server, fx: &'a Fixtures, label: &str) -> Client<'a> {
        Client {
            s,
            auth: None,
            ns: NAMESPACE,
            cross: CROSSMOUNT_NAMESPACE,
            fx,
            label: label.to_string(),
            failures: RefCell::new(Vec::new()),
            conn: RefCell::new(None),
        }
    }

    /// One request as the suite's Go client sends it: on a kept-alive connection (reused
    /// for the whole workflow, as Go's transport does), with Go's default headers and a
    /// Content-Length only when there is a body or the method is POST, PUT or PATCH.
    fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        let path = relative(path);
        let mut request = format!("{method} {path}");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: distribution-spec-conformance-tests\r\n",
            self.s.addr
        );
        if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
            request.push_str(&format!(" [{k}: {v}]"));
        }
        if !body.is_empty() {
            request.push_str(&format!(" [{} body bytes]", body.len()));
        }
        if let Some(a) = &self.auth {
            head.push_str(&format!("Authorization: {a}\r\n"));
        }
        head.push_str("Accept-Encoding: gzip\r\n\r\n");

        let mut conn = self.conn.borrow_mut();
        // Go drops an idle connection the server has closed; bytes waiting on an idle
        // connection are a framing bug (e.g. a body after a HEAD answer).
        if let Some(c) = conn.as_ref() {
            c.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 64];
            let peeked = c.peek(&mut buf);
            c.set_nonblocking(false).unwrap();
            match peeked {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Ok(n) if n > 0 => {
                    self.fail_plain(
                        &format!("keep-alive, before {request}"),
                        format!(
                            "the server sent unrequested bytes on the idle connection: {:?}",
                            String::from_utf8_lossy(&buf[..n])
                        ),
                    );
                    *conn = None;
                }
                _ => *conn = None,
            }
        }
        let stream = conn.get_or_insert_with(|| {
            let s = std::net::TcpStream::connect(&self.s.addr).expect("connect");
            s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
                .unwrap();
            s
        });
        use std::io::Write as _;
        // Head and body in one write, as Go's buffered writer sends them (two small writes
        // would wait out a delayed ACK). The server may answer before reading the body and
        // close; the answer still counts.
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        let _ = stream.write_all(&bytes);
        let (r, reusable) = read_answer(stream, method == "HEAD");
        if !reusable {
            *conn = None;
        }
        Answer { request, r }
    }

    fn get(&self, path: &str) -> Answer {
        self.call("GET", path, &[], &[])
    }

    fn fail(&self, case: &str, a: &Answer, what: String) {
        let body = String::from_utf8_lossy(&a.r.body);
        let body: String = body.chars().take(300).collect();
        self.failures.borrow_mut().push(format!(
            "[{}] {case}\n    request:  {}\n    problem:  {what}\n    answer:   {} {:?} {body}",
            self.label, a.request, a.r.status, a.r.headers
        ));
    }

    /// A failure not tied to one answer.
    fn fail_plain(&self, case: &str, what: String) {
        self.failures
            .borrow_mut()
            .push(format!("[{}] {case}\n    problem:  {what}", self.label));
    }

    fn check(&self, case: &str, a: &Answer, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.fail(case, a, what());
        }
    }

    fn expect_status(&self, case: &str, a: &Answer, status: u16) {
        self.check(case, a, a.status() == status, || {
            format!("expected status {status}, got {}", a.status())
        });
    }

    fn expect_header(&self, case: &str, a: &Answer, name: &str, value: Option<&str>) {
        let got = a.header(name);
        self.check(case, a, got == value, || {
            format!("expected {name}: {value:?}, got {got:?}")
        });
    }

    /// Status and, for a body-carrying answer, the spec error code.
    fn expect_error(&self, case: &str, a: &Answer, status: u16, code: &str) {
        self.expect_status(case, a, status);
        let got: Option<String> = serde_json::from_slice::<serde_json::Value>(&a.r.body)
            .ok()
            .and_then(|j| j["errors"][0]["code"].as_str().map(str::to_string));
        self.check(case, a, got.as_deref() == Some(code), || {
            format!("expected error code {code}, got {got:?}")
        });
    }

    fn expect_body(&self, case: &str, a: &Answer, body: &[u8]) {
        self.check(case, a, a.r.body == body, || {
            format!("body differs from the {} bytes expected", body.len())
        });
    }

    /// The Location of an answer, which later requests need: its absence ends the workflow.
    fn location(&self, case: &str, a: &Answer) -> String {
        match a.header("location") {
            Some(l) if !l.is_empty() => relative(l),
            _ => {
                self.fail(case, a, "no Location".to_string());
                self.finish();
                unreachable!()
            }
        }
    }

    fn json(&self, case: &str, a: &Answer) -> serde_json::Value {
        match serde_json::from_slice(&a.r.body) {
            Ok(j) => j,
            Err(e) => {
                self.fail(case, a, format!("body is not JSON: {e}"));
                serde_json::Value::Null
            }
        }
    }

    /// Panics with every failure recorded so far.
    fn finish(&self) {
        let failures = self.failures.borrow();
        if !failures.is_empty() {
            panic!(
                "{} conformance check(s) failed:\n{}",
                failures.len(),
                failures.join("\n")
            );
        }
    }

    // -- the suite's request shapes --

    /// POST a session, then PUT the bytes with the digest (the workflows' setup uploads).
    fn populate_blob(&self, case: &str, b: &Blob) {
        let r = self.call("POST", &format!("/v2/{}/blobs/uploads/", self.ns), &[], &[]);
        self.expect_status(case, &r, 202);
        let loc = self.location(case, &r);
        let r = self.call(
            "PUT",
            &closing(&loc, &b.digest),
            &[("Content-Type", "application/octet-stream")],
            &b.bytes,
        );
        self.expect_status(case, &r, 201);
        self.expect_header(
            case,
            &r,
            "location",
            Some(&format!("/v2/{}/blobs/{}", self.ns, b.digest)),
        );
        self.expect_header(case, &r, "docker-content-digest", Some(&b.digest));
    }

    fn put_manifest(&self, reference: &str, media_type: &str, m: &Blob) -> Answer {
        self.call(
            "PUT",
            &format!("/v2/{}/manifests/{reference}", self.ns),
            &[("Content-Type", media_type)],
            &m.bytes,
        )
    }

    /// PUT a manifest; 201 with its Location and digest, and `OCI-Subject` when expected.
    fn populate_manifest(
        &self,
        case: &str,
        reference: &str,
        media_type: &str,
        m: &Blob,
        subject: Option<&str>,
    ) {
        let r = self.put_manifest(reference, media_type, m);
        self.expect_status(case, &r, 201);
        self.expect_header(
            case,
            &r,
            "location",
            Some(&format!("/v2/{}/manifests/{}", self.ns, m.digest)),
        );
        self.expect_header(case, &r, "docker-content-digest", Some(&m.digest));
        self.expect_header(case, &r, "oci-subject", subject);
    }

    fn manifest_path(&self, reference: &str) -> String {
        format!("/v2/{}/manifests/{reference}", self.ns)
    }

    fn blob_path(&self, digest: &str) -> String {
        format!("/v2/{}/blobs/{digest}", self.ns)
    }

    fn delete(&self, case: &str, path: &str, status: u16) {
        let r = self.call("DELETE", path, &[], &[]);
        self.expect_status(case, &r, status);
    }

    /// GET/HEAD of a manifest that must be served exactly.
    fn expect_manifest(&self, case: &str, method: &str, reference: &str, m: &Blob) {
        let r = self.call(
            method,
            &self.manifest_path(reference),
            &[("Accept", OCI_MANIFEST)],
            &[],
        );
        self.expect_status(case, &r, 200);
        self.expect_header(case, &r, "docker-content-digest", Some(&m.digest));
        self.expect_header(case, &r, "content-type", Some(OCI_MANIFEST));
        self.expect_header(case, &r, "content-length", Some(&m.len_str()));
        if method == "GET" {
            self.expect_body(case, &r, &m.bytes);
        }
    }

    /// GET/HEAD of a blob that must be served exactly.
    fn expect_blob(&self, case: &str, method: &str, b: &Blob) {
        let r = self.call(method, &self.blob_path(&b.digest), &[], &[]);
        self.expect_status(case, &r, 200);
        self.expect_header(case, &r, "docker-content-digest", Some(&b.digest));
        self.expect_header(case, &r, "content-length", Some(&b.len_str()));
        if method == "GET" {
            self.expect_body(case, &r, &b.bytes);
        }
    }

    fn tags(&self, case: &str, query: &str) -> (Answer, Vec<String>) {
        let r = self.get(&format!("/v2/{}/tags/list{query}", self.ns));
        self.expect_status(case, &r, 200);
        self.expect_header(case, &r, "content-type", Some("application/json"));
        let j = self.json(case, &r);
        self.check(case, &r, j["name"] == self.ns, || {
            format!("expected name {:?}, got {}", self.ns, j["name"])
        });
        let tags = j["tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        (r, tags)
    }

    /// GET referrers: 200, an OCI index; its descriptors.
    fn referrers(
        &self,
        case: &str,
        subject: &str,
        query: &str,
    ) -> (Answer, Vec<serde_json::Value>) {
        let r = self.get(&format!("/v2/{}/referrers/{subject}{query}", self.ns));
        self.referrers_answer(case, r)
    }

    fn referrers_answer(&self, case: &str, r: Answer) -> (Answer, Vec<serde_json::Value>) {
        self.expect_status(case, &r, 200);
        self.expect_header(case, &r, "content-type", Some(OCI_INDEX));
        let j = self.json(case, &r);
        self.check(
            case,
            &r,
            j["schemaVersion"] == 2 && j["mediaType"] == OCI_INDEX,
            || format!("not an OCI index: {j}"),
        );
        let list = j["manifests"].as_array().cloned();
        self.check(case, &r, list.is_some(), || {
            "no manifests array".to_string()
        });
        (r, list.unwrap_or_default())
    }
}

fn digests(list: &[serde_json::Value]) -> Vec<String> {
    list.iter()
        .map(|d| d["digest"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The target and decoded query of a `Link: <target>; rel="next"` header.
fn next_link(link: &str) -> Option<(String, Vec<(String, String)>)> {
    let (target, rest) = link.strip_prefix('<')?.split_once('>')?;
    if rest.trim() != "; rel=\"next\"" {
        return None;
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let pairs = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    Some((path.to_string(), pairs))
}

// ---------------------------------------------------------------------------------------
// The four workflows.

/// Pull (01_pull_test.go).
fn pull(c: &Client) {
    let fx = c.fx;

    // Setup
    c.populate_blob(
        "Pull/Setup: Populate registry with test blob (config[0])",
        &fx.configs[0],
    );
    c.populate_blob(
        "Pull/Setup: Populate registry with test blob (config[1])",
        &fx.configs[1],
    );
    c.populate_blob("Pull/Setup: Populate registry with test layer", &fx.layer);
    c.populate_manifest(
        "Pull/Setup: Populate registry with test manifest (tag)",
        TEST_TAG,
        OCI_MANIFEST,
        &fx.manifests[0],
        None,
    );
    c.populate_manifest(
        "Pull/Setup: Populate registry with test manifest (digest)",
        &fx.manifests[1].digest,
        OCI_MANIFEST,
        &fx.manifests[1],
        None,
    );

    // Pull blobs
    let case = "Pull/Pull blobs: HEAD request to nonexistent blob should result in 404 response";
    let r = c.call("HEAD", &c.blob_path(&fx.dummy_digest), &[], &[]);
    c.expect_status(case, &r, 404);
    c.expect_blob(
        "Pull/Pull blobs: HEAD request to existing blob should yield 200",
        "HEAD",
        &fx.configs[0],
    );
    let case = "Pull/Pull blobs: GET nonexistent blob should result in 404 response";
    let r = c.get(&c.blob_path(&fx.dummy_digest));
    c.expect_error(case, &r, 404, "BLOB_UNKNOWN");
    c.expect_blob(
        "Pull/Pull blobs: GET request to existing blob URL should yield 200",
        "GET",
        &fx.configs[0],
    );

    // Pull manifests
    let case = "Pull/Pull manifests: HEAD request to nonexistent manifest should return 404";
    let r = c.call("HEAD", &c.manifest_path(NONEXISTENT_MANIFEST), &[], &[]);
    c.expect_status(case, &r, 404);
    c.expect_manifest(
        "Pull/Pull manifests: HEAD request to manifest[0] path (digest) should yield 200 response",
        "HEAD",
        &fx.manifests[0].digest,
        &fx.manifests[0],
    );
    c.expect_manifest(
        "Pull/Pull manifests: HEAD request to manifest[1] path (digest) should yield 200 response",
        "HEAD",
        &fx.manifests[1].digest,
        &fx.manifests[1],
    );
    c.expect_manifest(
        "Pull/Pull manifests: HEAD request to manifest path (tag) should yield 200 response",
        "HEAD",
        TEST_TAG,
        &fx.manifests[0],
    );
    let case = "Pull/Pull manifests: GET nonexistent manifest should return 404";
    let r = c.get(&c.manifest_path(NONEXISTENT_MANIFEST));
    c.expect_error(case, &r, 404, "MANIFEST_UNKNOWN");
    c.expect_manifest(
        "Pull/Pull manifests: GET request to manifest[0] path (digest) should yield 200 response",
        "GET",
        &fx.manifests[0].digest,
        &fx.manifests[0],
    );
    c.expect_manifest(
        "Pull/Pull manifests: GET request to manifest[1] path (digest) should yield 200 response",
        "GET",
        &fx.manifests[1].digest,
        &fx.manifests[1],
    );
    c.expect_manifest(
        "Pull/Pull manifests: GET request to manifest path (tag) should yield 200 response",
        "GET",
        TEST_TAG,
        &fx.manifests[0],
    );

    // Error codes: a GET (with a body, as the suite sends it) by a malformed digest. The
    // suite accepts 400 with a known code or 404; edgeyard finds no manifest by it.
    let case = "Pull/Error codes: 400 response body should contain OCI-conforming JSON message";
    let r = c.call(
        "GET",
        &c.manifest_path("sha256:totallywrong"),
        &[("Content-Type", OCI_MANIFEST)],
        b"blablabla",
    );
    c.expect_error(case, &r, 404, "MANIFEST_UNKNOWN");

    // Teardown (manifests before blobs)
    c.delete(
        "Pull/Teardown: Delete manifest[0] created in setup",
        &c.manifest_path(&fx.manifests[0].digest),
        202,
    );
    c.delete(
        "Pull/Teardown: Delete manifest[1] created in setup",
        &c.manifest_path(&fx.manifests[1].digest),
        202,
    );
    c.delete(
        "Pull/Teardown: Delete config[0] blob created in setup",
        &c.blob_path(&fx.configs[0].digest),
        202,
    );
    c.delete(
        "Pull/Teardown: Delete config[1] blob created in setup",
        &c.blob_path(&fx.configs[1].digest),
        202,
    );
    c.delete(
        "Pull/Teardown: Delete layer blob created in setup",
        &c.blob_path(&fx.layer.digest),
        202,
    );
    // What the teardown deleted is gone.
    let case = "Pull/Teardown: deleted content is not found";
    let r = c.get(&c.manifest_path(TEST_TAG));
    c.expect_error(case, &r, 404, "MANIFEST_UNKNOWN");
    let r = c.get(&c.blob_path(&fx.layer.digest));
    c.expect_error(case, &r, 404, "BLOB_UNKNOWN");
}

/// Push (02_push_test.go), with `OCI_AUTOMATIC_CROSSMOUNT=true`.
fn push(c: &Client) {
    let fx = c.fx;
    let ns = c.ns;
    let uploads = format!("/v2/{ns}/blobs/uploads/");

    // Blob Upload Streamed
    let case =
        "Push/Blob Upload Streamed: PATCH request with blob in body should yield 202 response";
    let r = c.call("POST", &uploads, &[], &[]);
    c.expect_status(case, &r, 202);
    let loc = c.location(case, &r);
    let r = c.call(
        "PATCH",
        &loc,
        &[("Content-Type", "application/octet-stream")],
        &fx.blob_a.bytes,
    );
    c.expect_status(case, &r, 202);
    c.expect_header(
        case,
        &r,
        "range",
        Some(&format!("0-{}", fx.blob_a.len() - 1)),
    );
    let loc = c.location(case, &r);
    let case = "Push/Blob Upload Streamed: PUT request to session URL with digest should yield 201 response";
    let r = c.call(
        "PUT",
        &closing(&loc, &fx.blob_a.digest),
        &[("Content-Type", "application/octet-stream")],
        &[],
    );
    c.expect_status(case, &r, 201);
    c.expect_header(case, &r, "location", Some(&c.blob_path(&fx.blob_a.digest)));
    c.expect_header(case, &r, "docker-content-digest", Some(&fx.blob_a.digest));
    c.expect_blob(case, "GET", &fx.blob_a);

    // Blob Upload Monolithic
    let case = "Push/Blob Upload Monolithic: GET nonexistent blob should result in 404 response";
    let r = c.get(&c.blob_path(&fx.dummy_digest));
    c.expect_error(case, &r, 404, "BLOB_UNKNOWN");
    let case =
        "Push/Blob Upload Monolithic: POST request with digest and blob should yield a 201 or 202";
    let config = &fx.configs[1];
    let r = c.call(
        "POST",
        &format!("{uploads}?digest={}", config.digest),
        &[("Content-Type", "application/octet-stream")],
        &config.bytes,
    );
    c.expect_status(case, &r, 201);
    c.expect_header(case, &r, "location", Some(&c.blob_path(&config.digest)));
    c.expect_blob(
        "Push/Blob Upload Monolithic: GET request to blob URL from prior request should yield 200 or 404 based on response code",
        "GET",
        config,
    );
    let case = "Push/Blob Upload Monolithic: POST request should yield a session ID";
    let r = c.call("POST", &uploads, &[], &[]);
    c.expect_status(case, &r, 202);
    let loc = c.location(case, &r);
    c.check(
        case,
        &r,
        loc.starts_with(&uploads) && loc.len() > uploads.len(),
        || format!("Location {loc:?} names no session under {uploads}"),
    );
    let case = "Push/Blob Upload Monolithic: PUT upload of a blob should yield a 201 Response";
    let r = c.call(
        "PUT",
        &closing(&loc, &config.digest),
        &[("Content-Type", "application/octet-stream")],
        &config.bytes,
    );
    c.expect_status(case, &r, 201);
    c.expect_header(case, &r, "location", Some(&c.blob_path(&config.digest)));
    c.expect_blob(
        "Push/Blob Upload Monolithic: GET request to existing blob should yield 200 response",
        "GET",
        config,
    );
    c.populate_blob(
        "Push/Blob Upload Monolithic: PUT upload of a layer blob should yield a 201 Response",
        &fx.layer,
    );
    c.expect_blob(
        "Push/Blob Upload Monolithic: GET request to existing layer should yield 200 response",
        "GET",
        &fx.layer,
    );

    // Blob Upload Chunked
    let case = "Push/Blob Upload Chunked: Out-of-order blob upload should return 416";
    let r = c.call("POST", &uploads, &[], &[]);
    c.expect_status(case, &r, 202);
    let loc = c.location(case, &r);
    let mut chunked = Chunked::new(42, fx.blob_b_seed);
    if let Some(min) = r.header("oci-chunk-min-length") {
        match min.parse::<usize>() {
            Ok(min) if min > chunked.split => {
                chunked = Chunked::new(min * 2 - 2, fx.blob_b_seed);
            }
            Ok(_) => {}
            Err(_) => c.fail(
                case,
                &r,
                format!("OCI-Chunk-Min-Length {min:?} is no number"),
            ),
        }
    }
    let r = c.call(
        "PATCH",
        &loc,
        &[
            ("Content-Type", "application/octet-stream"),
            ("Content-Range", &chunked.range2()),
        ],
        chunked.chunk2(),
    );
    c.expect_error(case, &r, 416, "BLOB_UPLOAD_INVALID");
    c.expect_header(case, &r, "range", Some("0-0"));
    c.expect_header(case, &r, "location", Some(loc.as_str()));

    let case = "Push/Blob Upload Chunked: PATCH request with first chunk should return 202";
    let r = c.call("POST", &uploads, &[], &[]);
    c.expect_status(case, &r, 202);
    let prev = c.location(case, &r);
    let r = c.call(
        "PATCH",
        &prev,
        &[
            ("Content-Type", "application/octet-stream"),
            ("Content-Range", &chunked.range1()),
        ],
        chunked.chunk1(),
    );
    c.expect_status(case, &r, 202);
    c.expect_header(case, &r, "range", Some(&chunked.range1()));

    let case = "Push/Blob Upload Chunked: Retry previous blob chunk should return 416";
    let r = c.call(
        "PATCH",
        &prev,
        &[
            ("Content-Type", "application/octet-stream"),
            ("Content-Range", &chunked.range1()),
        ],
        chunked.chunk1(),
    );
    c.expect_error(case, &r, 416, "BLOB_UPLOAD_INVALID");
    c.expect_header(case, &r, "range", Some(&chunked.range1()));

    let case = "Push/Blob Upload Chunked: Get on stale blob upload should return 204 with a range and location";
    let r = c.get(&prev);
    c.expect_status(case, &r, 204);
    c.expect_header(case, &r, "range", Some(&chunked.range1()));
    let loc = c.location(case, &r);

    let case = "Push/Blob Upload Chunked: PATCH request with second chunk should return 202";
    let r = c.call(
        "PATCH",
        &loc,
        &[
            ("Content-Range", &chunked.range2()),
            ("Content-Type", "application/octet-stream"),
        ],
        chunked.chunk2(),
    );
    c.expect_status(case, &r, 202);
    c.expect_header(
        case,
        &r,
        "range",
        Some(&format!("0-{}", chunked.blob.len() - 1)),
    );
    let loc = c.location(case, &r);

    let case = "Push/Blob Upload Chunked: PUT request with digest should return 201";
    let r = c.call(
        "PUT",
        &closing(&loc, &chunked.blob.digest),
        &[("Content-Type", "application/octet-stream")],
        &[],
    );
    c.expect_status(case, &r, 201);
    c.expect_header(
        case,
        &r,
        "location",
        Some(&c.blob_path(&chunked.blob.digest)),
    );
    c.expect_blob(case, "GET", &chunked.blob);

    // Cross-Repository Blob Mount
    let cross = c.cross;
    let cross_uploads = format!("/v2/{cross}/blobs/uploads/");
    let case = "Push/Cross-Repository Blob Mount: Cross-mounting of a blob without the from argument should yield session id";
    let r = c.call(
        "POST",
        &format!("{cross_uploads}?mount={}", fx.dummy_digest),
        &[],
        &[],
    );
    c.expect_status(case, &r, 202);
    let loc = c.location(case, &r);
    c.check(case, &r, loc.starts_with(&cross_uploads), || {
        format!("Location {loc:?} is no session of {cross}")
    });

    let case = "Push/Cross-Repository Blob Mount: POST request to mount another repository's blob should return 201 or 202";
    let r = c.call(
        "POST",
        &format!("{cross_uploads}?mount={}&from={ns}", fx.blob_a.digest),
        &[],
        &[],
    );
    c.expect_status(case, &r, 201);
    let case = "Push/Cross-Repository Blob Mount: GET request to test digest within cross-mount namespace should return 200";
    let mounted = format!("/v2/{cross}/blobs/{}", fx.blob_a.digest);
    c.expect_header(case, &r, "location", Some(&mounted));
    c.expect_header(case, &r, "docker-content-digest", Some(&fx.blob_a.digest));
    let r = c.get(&mounted);
    c.expect_status(case, &r, 200);
    c.expect_body(case, &r, &fx.blob_a.bytes);

    // The suite runs this only when the mount answered 202; its point (an unknown blob
    // falls back to a session of the target) holds either way.
    let case = "Push/Cross-Repository Blob Mount: Cross-mounting of nonexistent blob should yield session id";
    let r = c.call(
        "POST",
        &format!("{cross_uploads}?mount={}&from={ns}", fx.dummy_digest),
        &[],
        &[],
    );
    c.expect_status(case, &r, 202);
    let loc = c.location(case, &r);
    c.check(case, &r, loc.starts_with(&cross_uploads), || {
        format!("Location {loc:?} is no session of {cross}")
    });

    let case = "Push/Cross-Repository Blob Mount: Cross-mounting without from, and automatic content discovery enabled should return a 201";
    let r = c.call(
        "POST",
        &format!("{cross_uploads}?mount={}", fx.blob_a.digest),
        &[],
        &[],
    );
    c.expect_status(case, &r, 201);
    c.expect_header(case, &r, "location", Some(&mounted));

    // Manifest Upload
    let case = "Push/Manifest Upload: GET nonexistent manifest should return 404";
    let r = c.get(&c.manifest_path(NONEXISTENT_MANIFEST));
    c.expect_error(case, &r, 404, "MANIFEST_UNKNOWN");
    for i in 0..4 {
        c.populate_manifest(
            "Push/Manifest Upload: PUT should accept a manifest upload",
            &format!("test{i}"),
            OCI_MANIFEST,
            &fx.manifests[1],
            None,
        );
    }
    c.populate_manifest(
        "Push/Manifest Upload: Registry should accept a manifest upload with no layers",
        EMPTY_LAYER_TAG,
        OCI_MANIFEST,
        &fx.empty_layer_manifest,
        None,
    );
    c.expect_manifest(
        "Push/Manifest Upload: GET request to manifest URL (digest) should yield 200 response",
        "GET",
        &fx.manifests[1].digest,
        &fx.manifests[1],
    );
    c.expect_manifest(
        "Push/Manifest Upload: Registry should accept a manifest upload with no layers (GET)",
        "GET",
        EMPTY_LAYER_TAG,
        &fx.empty_layer_manifest,
    );

    // Teardown
    let case = "Push/Teardown: Delete manifest created in tests";
    c.delete(case, &c.manifest_path(&fx.manifests[1].digest), 202);
    c.delete(case, &c.manifest_path(&fx.empty_layer_manifest.digest), 202);
    c.delete(
        "Push/Teardown: Delete config blob created in tests",
        &c.blob_path(&fx.configs[1].digest),
        202,
    );
    c.delete(
        "Push/Teardown: Delete layer blob created in setup",
        &c.blob_path(&fx.layer.digest),
        202,
    );
    let case = "Push/Teardown: deleted manifests take their tags with them";
    for tag in ["test0", "test3", EMPTY_LAYER_TAG] {
        let r = c.get(&c.manifest_path(tag));
        c.expect_error(case, &r, 404, "MANIFEST_UNKNOWN");
    }
}

/// Content Discovery (03_discovery_test.go).
fn discovery(c: &Client) {
    let fx = c.fx;
    let ns = c.ns;
    let m4 = &fx.manifests[4];
    let m3 = &fx.manifests[3];

    // Setup
    c.populate_blob(
        "Content Discovery/Setup: Populate registry with test blob",
        &fx.configs[2],
    );
    c.populate_blob(
        "Content Discovery/Setup: Populate registry with test layer",
        &fx.layer,
    );
    for i in 0..4 {
        c.populate_manifest(
            "Content Discovery/Setup: Populate registry with test tags",
            &format!("test{i}"),
            OCI_MANIFEST,
            &fx.manifests[2],
            None,
        );
    }
    let case = "Content Discovery/Setup: References setup";
    if fx.empty_json.digest
        != "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    {
        c.fail_plain(
            case,
            "the empty JSON blob's digest is not the spec's".to_string(),
        );
    }
    c.populate_blob(case, &fx.empty_json);
    // Referrers pushed before their subject.
    c.populate_blob(case, &fx.ref_blob_a);
    c.populate_manifest(
        case,
        &fx.refs_a_config.digest,
        OCI_MANIFEST,
        &fx.refs_a_config,
        Some(&m4.digest),
    );
    c.populate_manifest(
        case,
        &fx.refs_a_layer.digest,
        OCI_MANIFEST,
        &fx.refs_a_layer,
        Some(&m4.digest),
    );
    c.populate_manifest(
        case,
        &fx.refs_index.digest,
        OCI_INDEX,
        &fx.refs_index,
        Some(&m4.digest),
    );
    // The subject.
    c.populate_blob(case, &fx.configs[4]);
    c.populate_blob(case, &fx.layer);
    c.populate_manifest(case, TEST_TAG, OCI_MANIFEST, m4, None);
    // Referrers pushed after it, and one to a subject never pushed.
    c.populate_blob(case, &fx.ref_blob_b);
    c.populate_manifest(
        case,
        &fx.refs_b_config.digest,
        OCI_MANIFEST,
        &fx.refs_b_config,
        Some(&m4.digest),
    );
    c.populate_manifest(
        case,
        &fx.refs_b_layer.digest,
        OCI_MANIFEST,
        &fx.refs_b_layer,
        Some(&m4.digest),
    );
    c.populate_manifest(
        case,
        &fx.refs_c_layer.digest,
        OCI_MANIFEST,
        &fx.refs_c_layer,
        Some(&m3.digest),
    );

    // Listing tags
    let case = "Content Discovery/Listing tags: GET request to list tags should yield 200 response";
    let all = vec![TEST_TAG, "test0", "test1", "test2", "test3"];
    let (r, tags) = c.tags(case, "");
    c.check(case, &r, tags == all, || {
        format!("expected tags {all:?}, got {tags:?}")
    });
    c.expect_header(case, &r, "link", None);
    let num_tags = tags.len();
    let n = num_tags / 2;

    let case = "Content Discovery/Listing tags: GET number of tags should be limitable by `n` query parameter";
    let (r, tags) = c.tags(case, &format!("?n={n}"));
    c.check(case, &r, tags == all[..n], || {
        format!("expected {:?}, got {tags:?}", &all[..n])
    });
    let link = format!(
        "</v2/{ns}/tags/list?last={}&n={n}>; rel=\"next\"",
        all[n - 1]
    );
    c.expect_header(case, &r, "link", Some(&link));

    let case = "Content Discovery/Listing tags: GET start of tag is set by `last` query parameter";
    let (r, tags) = c.tags(case, &format!("?n={n}&last={}", all[n - 1]));
    c.check(case, &r, tags == all[n..2 * n], || {
        format!("expected {:?}, got {tags:?}", &all[n..2 * n])
    });
    let link = format!(
        "</v2/{ns}/tags/list?last={}&n={n}>; rel=\"next\"",
        all[2 * n - 1]
    );
    c.expect_header(case, &r, "link", Some(&link));
    let (r, tags) = c.tags(case, &format!("?n={n}&last={}", all[2 * n - 1]));
    c.check(case, &r, tags == all[2 * n..], || {
        format!("expected {:?}, got {tags:?}", &all[2 * n..])
    });
    c.expect_header(case, &r, "link", None);
    let case = "Content Discovery/Listing tags (spec): n=0 answers an empty list and no Link";
    let (r, tags) = c.tags(case, "?n=0");
    c.check(case, &r, tags.is_empty(), || {
        format!("expected no tags, got {tags:?}")
    });
    c.expect_header(case, &r, "link", None);

    // Listing references
    let case = "Content Discovery/Listing references: GET request to nonexistent blob should result in empty 200 response";
    let (r, list) = c.referrers(case, &fx.dummy_digest, "");
    c.check(case, &r, list.is_empty(), || {
        format!("expected no referrers, got {list:?}")
    });
    c.expect_header(case, &r, "oci-filters-applied", None);

    let case =
        "Content Discovery/Listing references: GET request to existing blob should yield 200";
    let (r, list) = c.referrers(case, &m4.digest, "");
    // Each referrer, as the referrers API must describe it.
    let expected: Vec<(&Blob, &str, Option<&str>)> = {
        let mut v = vec![
            (&fx.refs_a_config, OCI_MANIFEST, Some(ARTIFACT_TYPE_A)),
            (&fx.refs_a_layer, OCI_MANIFEST, Some(ARTIFACT_TYPE_A)),
            (&fx.refs_index, OCI_INDEX, Some(ARTIFACT_TYPE_INDEX)),
            (&fx.refs_b_config, OCI_MANIFEST, Some(ARTIFACT_TYPE_B)),
            (&fx.refs_b_layer, OCI_MANIFEST, Some(ARTIFACT_TYPE_B)),
        ];
        v.sort_by(|a, b| a.0.digest.cmp(&b.0.digest));
        v
    };
    let want: Vec<String> = expected.iter().map(|e| e.0.digest.clone()).collect();
    c.check(case, &r, digests(&list) == want, || {
        format!(
            "expected the five referrers {want:?} (digest order), got {:?}",
            digests(&list)
        )
    });
    let check_descriptors = |case: &str, r: &Answer, list: &[serde_json::Value]| {
        for d in list {
            let digest = d["digest"].as_str().unwrap_or("");
            let Some((blob, media_type, artifact_type)) =
                expected.iter().find(|e| e.0.digest == digest)
            else {
                c.fail(case, r, format!("unexpected referrer {d}"));
                continue;
            };
            let annotations = d["annotations"].as_object();
            let note = fx.annotation_of(digest);
            c.check(
                case,
                r,
                annotations.map(|a| a.len()) == Some(1)
                    && d["annotations"][ANNOTATION_KEY].as_str() == note,
                || {
                    format!(
                        "{digest}: expected the one annotation {note:?}, got {}",
                        d["annotations"]
                    )
                },
            );
            c.check(
                case,
                r,
                d["mediaType"] == *media_type
                    && d["size"] == blob.len()
                    && d["artifactType"].as_str() == *artifact_type,
                || {
                    format!(
                        "{digest}: expected mediaType {media_type}, size {}, artifactType {artifact_type:?}; got {d}",
                        blob.len()
                    )
                },
            );
        }
    };
    check_descriptors(case, &r, &list);

    let case = "Content Discovery/Listing references: GET request to existing blob with filter should yield 200";
    let (r, list) = c.referrers(
        case,
        &m4.digest,
        &format!("?artifactType={ARTIFACT_TYPE_A}"),
    );
    c.expect_header(case, &r, "oci-filters-applied", Some("artifactType"));
    let mut want_a = [
        fx.refs_a_config.digest.clone(),
        fx.refs_a_layer.digest.clone(),
    ];
    want_a.sort();
    c.check(case, &r, digests(&list) == want_a, || {
        format!("expected {want_a:?}, got {:?}", digests(&list))
    });
    check_descriptors(case, &r, &list);

    let case =
        "Content Discovery/Listing references: GET request to missing manifest should yield 200";
    let (r, list) = c.referrers(case, &m3.digest, "");
    c.check(
        case,
        &r,
        digests(&list) == [fx.refs_c_layer.digest.clone()],
        || {
            format!(
                "expected only {}, got {:?}",
                fx.refs_c_layer.digest,
                digests(&list)
            )
        },
    );
    if let Some(d) = list.first() {
        c.check(
            case,
            &r,
            d["artifactType"] == ARTIFACT_TYPE_B && d.get("annotations").is_none(),
            || format!("expected artifactType {ARTIFACT_TYPE_B} and no annotations, got {d}"),
        );
    }

    // Beyond the suite: pages of `n` in digest order, following `Link` rel="next".
    let case = "Content Discovery/Listing references (edgeyard): n and last page in digest order with a Link";
    let mut seen = Vec::new();
    let mut next = Some(format!("/v2/{ns}/referrers/{}?n=2", m4.digest));
    let mut pages = 0;
    while let Some(url) = next.take() {
        pages += 1;
        let (r, list) = c.referrers_answer(case, c.get(&url));
        c.check(
            case,
            &r,
            list.len() == 2 || (list.len() == 1 && pages == 3),
            || format!("page {pages} holds {} referrers", list.len()),
        );
        seen.extend(digests(&list));
        c.expect_header(case, &r, "oci-filters-applied", None);
        if let Some(link) = r.header("link") {
            let want_pairs = vec![
                ("last".to_string(), seen.last().cloned().unwrap_or_default()),
                ("n".to_string(), "2".to_string()),
            ];
            match next_link(link) {
                Some((path, pairs))
                    if path == format!("/v2/{ns}/referrers/{}", m4.digest)
                        && pairs == want_pairs =>
                {
                    next = Some(link[1..link.find('>').unwrap()].to_string());
                }
                _ => c.fail(
                    case,
                    &r,
                    format!("Link {link:?} is not the next page after {:?}", seen.last()),
                ),
            }
        }
        if pages > 5 {
            break;
        }
    }
    if seen != want || pages != 3 {
        c.fail_plain(
            case,
            format!("3 pages of {want:?} expected; {pages} pages gave {seen:?}"),
        );
    }
    let case = "Content Discovery/Listing references (edgeyard): the next Link keeps the artifactType filter";
    let (r, list) = c.referrers(
        case,
        &m4.digest,
        &format!("?artifactType={ARTIFACT_TYPE_B}&n=1"),
    );
    let mut want_b = [
        fx.refs_b_config.digest.clone(),
        fx.refs_b_layer.digest.clone(),
    ];
    want_b.sort();
    c.expect_header(case, &r, "oci-filters-applied", Some("artifactType"));
    c.check(case, &r, digests(&list) == want_b[..1], || {
        format!("expected {:?}, got {:?}", &want_b[..1], digests(&list))
    });
    let link = r.header("link").map(str::to_string);
    let want_pairs = vec![
        ("artifactType".to_string(), ARTIFACT_TYPE_B.to_string()),
        ("last".to_string(), want_b[0].clone()),
        ("n".to_string(), "1".to_string()),
    ];
    match link.as_deref().and_then(next_link) {
        Some((path, pairs))
            if path == format!("/v2/{ns}/referrers/{}", m4.digest) && pairs == want_pairs =>
        {
            let link = link.unwrap();
            let (r, list) = c.referrers_answer(case, c.get(&link[1..link.find('>').unwrap()]));
            c.expect_header(case, &r, "oci-filters-applied", Some("artifactType"));
            c.check(case, &r, digests(&list) == want_b[1..], || {
                format!("expected {:?}, got {:?}", &want_b[1..], digests(&list))
            });
            c.expect_header(case, &r, "link", None);
        }
        _ => c.fail(
            case,
            &r,
            format!("expected a next Link with {want_pairs:?}, got {link:?}"),
        ),
    }
    let (r, list) = c.referrers(
        case,
        &m4.digest,
        &format!("?artifactType={ARTIFACT_TYPE_B}&n=1&last={}", want_b[1]),
    );
    c.check(case, &r, list.is_empty(), || {
        format!("expected an empty last page, got {list:?}")
    });
    c.expect_header(case, &r, "link", None);

    // Teardown (manifests before blobs)
    let case = "Content Discovery/Teardown: Delete created manifest & associated tags";
    for m in [
        &fx.refs_index,
        &fx.manifests[2],
        m4,
        &fx.refs_a_config,
        &fx.refs_a_layer,
        &fx.refs_b_config,
        &fx.refs_b_layer,
        &fx.refs_c_layer,
    ] {
        c.delete(case, &c.manifest_path(&m.digest), 202);
    }
    c.delete(
        "Content Discovery/Teardown: Delete config blob created in tests",
        &c.blob_path(&fx.configs[2].digest),
        202,
    );
    c.delete(
        "Content Discovery/Teardown: Delete layer blob created in setup",
        &c.blob_path(&fx.layer.digest),
        202,
    );
    let case = "Content Discovery/Teardown: References teardown";
    for m in [
        &fx.refs_index,
        &fx.refs_a_config,
        &fx.refs_a_layer,
        m4,
        &fx.refs_b_config,
        &fx.refs_b_layer,
    ] {
        let r = c.call("DELETE", &c.manifest_path(&m.digest), &[], &[]);
        c.expect_error(case, &r, 404, "MANIFEST_UNKNOWN");
    }
    for b in [
        &fx.configs[4],
        &fx.ref_blob_a,
        &fx.ref_blob_b,
        &fx.empty_json,
    ] {
        c.delete(case, &c.blob_path(&b.digest), 202);
    }
    // Nothing of it is left to find.
    let case = "Content Discovery/Teardown: deleted manifests, tags and referrers are gone";
    let (r, list) = c.referrers(case, &m4.digest, "");
    c.check(case, &r, list.is_empty(), || {
        format!("expected no referrers, got {list:?}")
    });
    let (r, list) = c.referrers(case, &m3.digest, "");
    c.check(case, &r, list.is_empty(), || {
        format!("expected no referrers, got {list:?}")
    });
    for tag in [TEST_TAG, "test0"] {
        let r = c.get(&c.manifest_path(tag));
        c.expect_error(case, &r, 404, "MANIFEST_UNKNOWN");
    }
    let r = c.get(&c.blob_path(&fx.ref_blob_a.digest));
    c.expect_error(case, &r, 404, "BLOB_UNKNOWN");
}

/// Content Management (04_management_test.go).
fn management(c: &Client) {
    let fx = c.fx;
    let m3 = &fx.manifests[3];

    // Setup
    c.populate_blob(
        "Content Management/Setup: Populate registry with test config blob",
        &fx.configs[3],
    );
    c.populate_blob(
        "Content Management/Setup: Populate registry with test layer",
        &fx.layer,
    );
    c.populate_manifest(
        "Content Management/Setup: Populate registry with test tag",
        TEST_TAG,
        OCI_MANIFEST,
        m3,
        None,
    );
    let case =
        "Content Management/Setup: Check how many tags there are before anything gets deleted";
    let (r, tags) = c.tags(case, "");
    c.check(case, &r, tags == [TEST_TAG], || {
        format!("expected [{TEST_TAG}], got {tags:?}")
    });
    let num_tags = tags.len();

    // Manifest delete
    let case = "Content Management/Manifest delete: DELETE request to manifest tag should return 202, unless tag deletion is disallowed (400/405)";
    c.delete(case, &c.manifest_path(TEST_TAG), 202);
    let r = c.get(&c.manifest_path(TEST_TAG));
    c.expect_error(case, &r, 404, "MANIFEST_UNKNOWN");
    // Only the tag went: the manifest is still there by digest.
    c.expect_manifest(case, "HEAD", &m3.digest, m3);
    let case = "Content Management/Manifest delete: DELETE request to manifest (digest) should yield 202 response unless already deleted";
    c.delete(case, &c.manifest_path(&m3.digest), 202);
    let case = "Content Management/Manifest delete: GET request to deleted manifest URL should yield 404 response, unless delete is disallowed";
    let r = c.get(&c.manifest_path(&m3.digest));
    c.expect_error(case, &r, 404, "MANIFEST_UNKNOWN");
    let r = c.call("HEAD", &c.manifest_path(&m3.digest), &[], &[]);
    c.expect_status(case, &r, 404);
    let case = "Content Management/Manifest delete: GET request to tags list should reflect manifest deletion";
    let (r, tags) = c.tags(case, "");
    c.check(case, &r, tags.len() == num_tags - 1, || {
        format!("expected {} tags, got {tags:?}", num_tags - 1)
    });

    // Blob delete
    let case =
        "Content Management/Blob delete: DELETE request to blob URL should yield 202 response";
    c.delete(case, &c.blob_path(&fx.configs[3].digest), 202);
    c.delete(case, &c.blob_path(&fx.layer.digest), 202);
    let case =
        "Content Management/Blob delete: GET request to deleted blob URL should yield 404 response";
    let r = c.get(&c.blob_path(&fx.configs[3].digest));
    c.expect_error(case, &r, 404, "BLOB_UNKNOWN");
    let r = c.get(&c.blob_path(&fx.layer.digest));
    c.expect_error(case, &r, 404, "BLOB_UNKNOWN");
    let r = c.call("HEAD", &c.blob_path(&fx.configs[3].digest), &[], &[]);
    c.expect_status(case, &r, 404);
    // A second delete finds nothing.
    let r = c.call("DELETE", &c.blob_path(&fx.configs[3].digest), &[], &[]);
    c.expect_error(case, &r, 404, "BLOB_UNKNOWN");
}

// ---------------------------------------------------------------------------------------
// The tests: each workflow alone (auth off), pull with an administrator's Basic
// credentials, and all four in order in one namespace, as the suite runs them.

fn run(workflow: fn(&Client), label: &str, seed: u64) {
    let s = Server::start();
    let fx = Fixtures::new(seed);
    let c = Client::new(&s, &fx, label);
    workflow(&c);
    c.finish();
}

#[test]
fn pull_workflow() {
    run(pull, "pull", 1);
}

#[test]
fn push_workflow() {
    run(push, "push", 2);
}

#[test]
fn content_discovery_workflow() {
    run(discovery, "content discovery", 3);
}

#[test]
fn content_management_workflow() {
    run(management, "content management", 4);
}

#[test]
fn pull_workflow_with_basic_credentials_of_an_admin() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let s = Server::start_auth(&dir, &[]);
    let pw = std::fs::read_to_string(dir.join("admin-password")).unwrap();
    let fx = Fixtures::new(5);
    let mut c = Client::new(&s, &fx, "pull, auth on");
    // Authentication is really on: without credentials the registry challenges.
    let r = c.get(&c.blob_path(&fx.dummy_digest));
    c.expect_error("auth on: no credentials", &r, 401, "UNAUTHORIZED");
    c.auth = Some(basic("admin", pw.trim()));
    pull(&c);
    c.finish();
}

#[test]
fn all_workflows_in_order_in_one_namespace() {
    let s = Server::start();
    let fx = Fixtures::new(6);
    let c = Client::new(&s, &fx, "all four in order");
    pull(&c);
    push(&c);
    discovery(&c);
    management(&c);
    c.finish();
}
