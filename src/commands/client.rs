//! The admin API as the account commands use it with `--server`.

use std::path::Path;

use crate::client::{request, Verify};
use crate::tls::info::pem_certs;

use super::Failure;

pub struct AdminClient {
    base: String,
    authorization: String,
    roots: Option<Vec<Vec<u8>>>,
}

impl AdminClient {
    /// Credentials come from `EDGEYARD_USER` (default `admin`) and `EDGEYARD_PASSWORD`, never
    /// from the command line, where other users could read them.
    pub fn new(server: &str, cacert: Option<&Path>) -> Result<AdminClient, Failure> {
        use base64::Engine;
        let user = std::env::var("EDGEYARD_USER").unwrap_or_else(|_| "admin".into());
        let password = std::env::var("EDGEYARD_PASSWORD").map_err(|_| {
            Failure::Usage("--server needs the admin's password in EDGEYARD_PASSWORD".into())
        })?;
        let roots = match cacert {
            Some(p) => {
                let pem = std::fs::read(p)
                    .map_err(|e| Failure::Usage(format!("{}: {e}", p.display())))?;
                let certs = pem_certs(&pem);
                if certs.is_empty() {
                    return Err(Failure::Usage(format!("{}: no certificate", p.display())));
                }
                Some(certs)
            }
            None => None,
        };
        if server.starts_with("https://") && roots.is_none() {
            return Err(Failure::Usage(
                "--server https://... needs --cacert (the registry's ca.crt) to verify it".into(),
            ));
        }
        Ok(AdminClient {
            base: server.trim_end_matches('/').to_string(),
            authorization: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ),
            roots,
        })
    }

    /// Calls the admin API; a refusal becomes a failure with the server's message.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, Failure> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::Runtime(e.to_string()))?;
        let mut headers = vec![("authorization", self.authorization.clone())];
        let bytes = match body {
            Some(b) => {
                headers.push(("content-type", "application/json".into()));
                serde_json::to_vec(&b).map_err(|e| Failure::Runtime(e.to_string()))?
            }
            None => Vec::new(),
        };
        let verify = match &self.roots {
            Some(r) => Verify::Roots(r.clone()),
            None => Verify::Roots(Vec::new()),
        };
        let url = format!("{}{path}", self.base);
        let (status, body) = runtime
            .block_on(request(method, &url, &headers, bytes, verify))
            .map_err(Failure::Runtime)?;
        let value: serde_json::Value = if body.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null)
        };
        if (200..300).contains(&status) {
            return Ok(value);
        }
        let message = value["errors"][0]["message"]
            .as_str()
            .unwrap_or("no details")
            .to_string();
        let msg = format!("{method} {path}: {status}: {message}");
        Err(if status == 400 {
            Failure::Usage(msg)
        } else {
            Failure::Runtime(msg)
        })
    }
}
