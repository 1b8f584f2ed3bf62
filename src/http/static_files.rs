//! The web console's static files, compiled into the binary (`console/` in the source tree):
//! one HTML page, its script and its style sheet. No CDN, nothing fetched at run time, so it
//! works on an offline factory network. The page talks to `/api/v1` like any other client.
//!
//! Every file goes out with a strict Content-Security-Policy (scripts and styles from this
//! origin only, nothing inline, no framing), `nosniff`, and an ETag so browsers revalidate
//! cheaply (`no-cache`): an upgraded binary is never hidden behind a stale cache.

use std::sync::OnceLock;

use http::{Method, Request, StatusCode};
use sha2::Digest as _;

use crate::error::{Error, ErrorCode, Result};
use crate::http::{empty, set_header, Resp, ResponseBody};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: [Asset; 4] = [
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        bytes: include_bytes!("../../console/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../console/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../console/app.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../../console/icon.svg"),
    },
];

/// What the page may load and do: only this origin's script, style, images and API.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// ETags of the assets, in `ASSETS` order: a hash of their bytes, computed once.
fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{}\"", &hex::encode(sha2::Sha256::digest(a.bytes))[..32]))
            .collect()
    })
}

/// `GET`/`HEAD` of a console file.
pub fn asset<B>(file: &str, req: &Request<B>) -> Result<Resp> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return Err(Error::method_not_allowed(req.method()));
    }
    let Some(i) = ASSETS.iter().position(|a| a.name == file) else {
        return Err(
            Error::api(ErrorCode::NameUnknown, "no such file").with_status(StatusCode::NOT_FOUND)
        );
    };
    let (a, etag) = (&ASSETS[i], &etags()[i]);
    let fresh = req
        .headers()
        .get(http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut r = empty(if fresh {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    });
    set_header(&mut r, "content-type", a.content_type);
    set_header(&mut r, "etag", etag);
    set_header(&mut r, "cache-control", "no-cache");
    set_header(&mut r, "content-security-policy", CONTENT_SECURITY_POLICY);
    set_header(&mut r, "x-frame-options", "DENY");
    set_header(&mut r, "x-content-type-options", "nosniff");
    set_header(&mut r, "referrer-policy", "no-referrer");
    set_header(&mut r, "cross-origin-opener-policy", "same-origin");
    if !fresh {
        set_header(&mut r, "content-length", a.bytes.len().to_string());
        if req.method() == Method::GET {
            *r.body_mut() = ResponseBody::full(bytes::Bytes::from_static(a.bytes));
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, headers: &[(&str, &str)]) -> Result<Resp> {
        let mut b = Request::builder().uri("/");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        asset(path, &b.body(()).unwrap())
    }

    #[test]
    fn assets_carry_their_type_and_a_strict_policy() {
        for (file, ty) in [
            ("index.html", "text/html; charset=utf-8"),
            ("app.js", "text/javascript; charset=utf-8"),
            ("app.css", "text/css; charset=utf-8"),
        ] {
            let r = get(file, &[]).unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["content-type"], ty);
            let csp = r.headers()["content-security-policy"].to_str().unwrap();
            assert!(csp.contains("script-src 'self';") && !csp.contains("unsafe"));
            assert!(csp.contains("frame-ancestors 'none'"));
            assert_eq!(r.headers()["x-frame-options"], "DENY");
        }
        assert!(get("../Cargo.toml", &[]).is_err());
        assert!(get("nope.js", &[]).is_err());
    }

    #[test]
    fn a_matching_etag_gets_304() {
        let r = get("app.js", &[]).unwrap();
        let etag = r.headers()["etag"].to_str().unwrap().to_string();
        let again = get("app.js", &[("if-none-match", &etag)]).unwrap();
        assert_eq!(again.status(), 304);
        let other = get("app.js", &[("if-none-match", "\"x\"")]).unwrap();
        assert_eq!(other.status(), 200);
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let html = std::str::from_utf8(ASSETS[0].bytes).unwrap();
        assert!(!html.contains("<script>") && !html.contains("style="));
        assert!(!html.contains("<style"));
        // Nothing is loaded from elsewhere (the script only prints addresses for commands).
        for a in [&ASSETS[0], &ASSETS[2]] {
            let text = String::from_utf8_lossy(a.bytes);
            assert!(!text.contains("//"), "{} names another host", a.name);
        }
    }
}
