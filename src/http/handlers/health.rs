//! `/healthz` (the process answers), `/readyz` (it can do its job: storage writable, metadata
//! readable) and `/metrics` (Prometheus text). No login: monitoring must reach them.

use http::StatusCode;

use crate::error::{Error, Result};
use crate::http::{json, set_header, App, Resp, ResponseBody};
use crate::metrics::{global, Gauges};
use crate::registry::Check;

pub async fn ready(app: &App) -> Result<Resp> {
    let checks = app.registry.readiness().await;
    let ok = checks.iter().all(|(_, c)| *c == Check::Ready);
    let body = serde_json::json!({
        "status": if ok { "ready" } else { "not ready" },
        "checks": checks
            .iter()
            .map(|(name, c)| {
                let said = match c {
                    Check::Ready => "ok".to_string(),
                    Check::NotReady(why) => why.clone(),
                };
                (name.to_string(), serde_json::json!(said))
            })
            .collect::<serde_json::Map<_, _>>(),
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(json(status, body.to_string().into_bytes()))
}

pub async fn metrics(app: &App) -> Result<Resp> {
    let usage = app.registry.usage().await;
    let gauges = Gauges {
        storage_bytes: usage.map(|u| u.bytes),
        blob_count: usage.map(|u| u.blobs),
        corrupt_blobs: Some(app.registry.corrupt_blob_count()),
        certificate_expiry: app.tls.as_ref().and_then(|t| t.served_expiry()),
    };
    let text = global().render(&gauges);
    let mut r = http::Response::new(ResponseBody::full(text));
    set_header(&mut r, "content-type", "text/plain; version=0.0.4");
    Ok(r).map_err(|e: Error| e)
}
