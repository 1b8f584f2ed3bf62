//! The admin API as the account commands use it with `--server`.

use std::path::Path;

use crate::edge::client::{send_any, Verify};
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

    fn verify(&self) -> Verify {
        Verify::Roots(self.roots.clone().unwrap_or_default())
    }

    /// Turns a refusal into a failure with the server's message.
    fn refusal(method: &str, path: &str, status: u16, body: &[u8]) -> Failure {
        let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let message = value["errors"][0]["message"]
            .as_str()
            .unwrap_or("no details")
            .to_string();
        let msg = format!("{method} {path}: {status}: {message}");
        if status == 400 {
            Failure::Usage(msg)
        } else {
            Failure::Runtime(msg)
        }
    }

    /// POSTs a file (a bundle) as the request body, telling `progress` the bytes sent so
    /// far; the answer is JSON.
    pub fn upload(
        &self,
        path: &str,
        file: &Path,
        mut progress: impl FnMut(u64) + Send + 'static,
    ) -> Result<serde_json::Value, Failure> {
        let f = std::fs::File::open(file)
            .map_err(|e| Failure::Runtime(format!("{}: {e}", file.display())))?;
        let len = f
            .metadata()
            .map_err(|e| Failure::Runtime(e.to_string()))?
            .len();
        let runtime = runtime()?;
        let url = format!("{}{path}", self.base);
        let headers = vec![
            ("authorization", self.authorization.clone()),
            ("content-type", "application/x-tar".to_string()),
            ("content-length", len.to_string()),
        ];
        let answer = runtime
            .block_on(async {
                use http_body_util::BodyExt;
                let mut sent = 0u64;
                let body = crate::storage::FileBody::spawn(f, 0, len).map_frame(move |frame| {
                    if let Some(d) = frame.data_ref() {
                        sent += d.len() as u64;
                        progress(sent);
                    }
                    frame
                });
                crate::edge::client::send_any(
                    "POST",
                    &url,
                    &headers,
                    body,
                    self.verify(),
                    std::time::Duration::from_secs(24 * 3600),
                )
                .await
            })
            .map_err(|e| Failure::Runtime(e.to_string()))?;
        if !(200..300).contains(&answer.status) {
            return Err(Self::refusal("POST", path, answer.status, &answer.body));
        }
        serde_json::from_slice(&answer.body).map_err(|e| Failure::Runtime(e.to_string()))
    }

    /// POSTs JSON and writes the (streamed) answer to `out`, telling `progress` the bytes
    /// received so far; returns the bytes written.
    pub fn download(
        &self,
        path: &str,
        body: serde_json::Value,
        out: &mut impl std::io::Write,
        mut progress: impl FnMut(u64),
    ) -> Result<u64, Failure> {
        use http_body_util::BodyExt;
        let runtime = runtime()?;
        let url = format!("{}{path}", self.base);
        let headers = vec![
            ("authorization", self.authorization.clone()),
            ("content-type", "application/json".to_string()),
        ];
        let bytes = serde_json::to_vec(&body).map_err(|e| Failure::Runtime(e.to_string()))?;
        runtime.block_on(async {
            let mut s = crate::edge::client::open(
                "POST",
                &url,
                &headers,
                http_body_util::Full::new(bytes::Bytes::from(bytes)),
                self.verify(),
            )
            .await
            .map_err(|e| Failure::Runtime(e.to_string()))?;
            if !(200..300).contains(&s.status) {
                let b = http_body_util::Limited::new(s.body, 1 << 20)
                    .collect()
                    .await
                    .map(|c| c.to_bytes().to_vec())
                    .unwrap_or_default();
                return Err(Self::refusal("POST", path, s.status, &b));
            }
            let mut n = 0u64;
            while let Some(frame) = s.body.frame().await {
                let frame = frame
                    .map_err(|e| Failure::Runtime(format!("the server stopped sending: {e}")))?;
                if let Ok(d) = frame.into_data() {
                    out.write_all(&d)
                        .map_err(|e| Failure::Runtime(e.to_string()))?;
                    n += d.len() as u64;
                    progress(n);
                }
            }
            Ok(n)
        })
    }

    /// Runs configured rules now (`/api/v1/sync`, `/api/v1/replicate`), all or those `key`
    /// names; the answer lists `{key: name, "report": ...}` per rule.
    pub fn run_rules<R: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        key: &str,
        only: Option<&str>,
    ) -> Result<Vec<(String, R)>, Failure> {
        let v = self.call("POST", path, Some(serde_json::json!({ key: only })))?;
        v.as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let report = serde_json::from_value(r["report"].clone())
                    .map_err(|e| Failure::Runtime(e.to_string()))?;
                Ok((r[key].as_str().unwrap_or("").to_string(), report))
            })
            .collect()
    }

    /// Calls the admin API; a refusal becomes a failure with the server's message.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, Failure> {
        self.call_within(method, path, body, std::time::Duration::from_secs(30))
    }

    /// [`AdminClient::call`] for an operation that may run long (a scrub hashes the whole
    /// store before it answers).
    pub fn call_within(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
        timeout: std::time::Duration,
    ) -> Result<serde_json::Value, Failure> {
        let runtime = runtime()?;
        let mut headers = vec![("authorization", self.authorization.clone())];
        let bytes = match body {
            Some(b) => {
                headers.push(("content-type", "application/json".into()));
                serde_json::to_vec(&b).map_err(|e| Failure::Runtime(e.to_string()))?
            }
            None => Vec::new(),
        };
        let url = format!("{}{path}", self.base);
        let answer = runtime
            .block_on(send_any(
                method,
                &url,
                &headers,
                http_body_util::Full::new(bytes::Bytes::from(bytes)),
                self.verify(),
                timeout,
            ))
            .map_err(|e| Failure::Runtime(e.to_string()))?;
        let (status, body) = (answer.status, answer.body);
        let value: serde_json::Value = if body.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null)
        };
        if (200..300).contains(&status) {
            return Ok(value);
        }
        Err(Self::refusal(method, path, status, &body))
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(e.to_string()))
}
