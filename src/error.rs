//! The one error type of the request path. Every failure a client can cause maps to one of the
//! distribution spec's error codes (status, code string and default message in one `match`);
//! everything else is `Internal`: logged with its source chain, answered as a bare 500 UNKNOWN
//! without details, because internals (paths, database messages) are not the client's business.

use std::fmt;

use http::{HeaderName, HeaderValue, StatusCode};

/// The distribution spec's error codes (plus TAG_INVALID, which CNCF Distribution uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    TagInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    RangeInvalid,
    /// Admin API: a request that is not valid (bad name, short password, ...).
    Invalid,
    /// Admin API: no such user, robot or rule.
    NotFound,
    /// Admin API: it exists already.
    Conflict,
    /// Admin API: another registry (a push-to or replication target) could not be reached
    /// or would not talk: its failure, not ours, so 502 rather than 500.
    UpstreamFailed,
    Unknown,
}

impl ErrorCode {
    /// (code string, HTTP status, default message) — the single table of the codes.
    #[rustfmt::skip]
    pub fn describe(self) -> (&'static str, StatusCode, &'static str) {
        use ErrorCode::*;
        use StatusCode as S;
        match self {
            BlobUnknown         => ("BLOB_UNKNOWN", S::NOT_FOUND, "blob unknown to registry"),
            BlobUploadInvalid   => ("BLOB_UPLOAD_INVALID", S::BAD_REQUEST, "blob upload invalid"),
            BlobUploadUnknown   => ("BLOB_UPLOAD_UNKNOWN", S::NOT_FOUND, "blob upload unknown to registry"),
            DigestInvalid       => ("DIGEST_INVALID", S::BAD_REQUEST, "provided digest did not match uploaded content"),
            ManifestBlobUnknown => ("MANIFEST_BLOB_UNKNOWN", S::BAD_REQUEST, "blob unknown to registry"),
            ManifestInvalid     => ("MANIFEST_INVALID", S::BAD_REQUEST, "manifest invalid"),
            ManifestUnknown     => ("MANIFEST_UNKNOWN", S::NOT_FOUND, "manifest unknown"),
            NameInvalid         => ("NAME_INVALID", S::BAD_REQUEST, "invalid repository name"),
            NameUnknown         => ("NAME_UNKNOWN", S::NOT_FOUND, "repository name not known to registry"),
            SizeInvalid         => ("SIZE_INVALID", S::BAD_REQUEST, "provided length did not match content length"),
            TagInvalid          => ("TAG_INVALID", S::BAD_REQUEST, "manifest tag did not match URI"),
            Unauthorized        => ("UNAUTHORIZED", S::UNAUTHORIZED, "authentication required"),
            Denied              => ("DENIED", S::FORBIDDEN, "requested access to the resource is denied"),
            Unsupported         => ("UNSUPPORTED", S::METHOD_NOT_ALLOWED, "The operation is unsupported."),
            TooManyRequests     => ("TOOMANYREQUESTS", S::TOO_MANY_REQUESTS, "too many requests"),
            RangeInvalid        => ("RANGE_INVALID", S::RANGE_NOT_SATISFIABLE, "invalid content range"),
            Invalid             => ("INVALID", S::BAD_REQUEST, "invalid request"),
            NotFound            => ("NOT_FOUND", S::NOT_FOUND, "not found"),
            Conflict            => ("CONFLICT", S::CONFLICT, "exists already"),
            UpstreamFailed      => ("UPSTREAM_FAILED", S::BAD_GATEWAY, "another registry could not be reached"),
            Unknown             => ("UNKNOWN", S::INTERNAL_SERVER_ERROR, "unknown error"),
        }
    }
}

/// A failure on the request path.
pub enum Error {
    /// The client's doing: answered with the code's status (or `status` when set), the
    /// message, optional detail and extra headers (e.g. `Range` on a 416 for an upload).
    Api {
        code: ErrorCode,
        message: String,
        detail: Option<serde_json::Value>,
        status: Option<StatusCode>,
        headers: Vec<(HeaderName, HeaderValue)>,
    },
    /// Ours: I/O, the metadata store, a bug. `context` says what we were doing.
    Internal {
        context: &'static str,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn api(code: ErrorCode, message: impl Into<String>) -> Error {
        Error::Api {
            code,
            message: message.into(),
            detail: None,
            status: None,
            headers: Vec::new(),
        }
    }

    /// The code with its default message.
    pub fn code(code: ErrorCode) -> Error {
        Error::api(code, code.describe().2)
    }

    /// A method the endpoint does not take (UNSUPPORTED, as distribution answers).
    pub fn method_not_allowed(method: &http::Method) -> Error {
        Error::api(
            ErrorCode::Unsupported,
            format!("method {method} is not allowed here"),
        )
    }

    /// Whether this is an internal error caused by a `T` (a typed cause, such as the
    /// metadata store being held by another process, that a caller acts on).
    pub fn caused_by<T: std::error::Error + 'static>(&self) -> bool {
        match self {
            Error::Internal { source, .. } => source.downcast_ref::<T>().is_some(),
            Error::Api { .. } => false,
        }
    }

    pub fn internal(
        context: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Error {
        Error::Internal {
            context,
            source: source.into(),
        }
    }

    pub fn with_detail(mut self, value: serde_json::Value) -> Error {
        if let Error::Api { detail, .. } = &mut self {
            *detail = Some(value);
        }
        self
    }

    pub fn with_status(mut self, s: StatusCode) -> Error {
        if let Error::Api { status, .. } = &mut self {
            *status = Some(s);
        }
        self
    }

    /// Adds a response header; values that are not valid header text are dropped, since
    /// they can only come from our own formatting of validated values.
    pub fn with_header(mut self, name: HeaderName, value: impl AsRef<str>) -> Error {
        if let (Error::Api { headers, .. }, Ok(v)) =
            (&mut self, HeaderValue::from_str(value.as_ref()))
        {
            headers.push((name, v));
        }
        self
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Api { code, status, .. } => status.unwrap_or(code.describe().1),
            Error::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The spec code, for tests and logging (`Unknown` for internal errors).
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Error::Api { code, .. } => *code,
            Error::Internal { .. } => ErrorCode::Unknown,
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Api { code, message, .. } => write!(f, "{}: {message}", code.describe().0),
            Error::Internal { context, source } => {
                write!(f, "{context}: {source}")?;
                let mut cause = source.source();
                while let Some(c) = cause {
                    write!(f, ": {c}")?;
                    cause = c.source();
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Error {}

impl From<crate::oci::NameError> for Error {
    fn from(e: crate::oci::NameError) -> Error {
        use crate::oci::{DigestError, NameError};
        match &e {
            NameError::Name(_) => Error::api(ErrorCode::NameInvalid, e.to_string()),
            NameError::Tag(_) => Error::api(ErrorCode::TagInvalid, e.to_string()),
            // CNCF Distribution answers DIGEST_INVALID for unknown algorithms as well; the
            // message says which case it is.
            NameError::Digest(DigestError::UnsupportedAlgorithm(_) | DigestError::Malformed) => {
                Error::api(ErrorCode::DigestInvalid, e.to_string())
            }
        }
    }
}

impl From<crate::oci::DigestError> for Error {
    fn from(e: crate::oci::DigestError) -> Error {
        crate::oci::NameError::Digest(e).into()
    }
}
