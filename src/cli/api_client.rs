//! The CLI's way into a running daemon: RocksDB allows one writer, so while
//! the daemon holds the spool, admin writes go to its admin API on the
//! `http` listener, authenticated with the admin token the daemon wrote to
//! the spool (readable by the spool's owner only).

use std::path::Path;

use anyhow::{bail, Context};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use postwarden::config::Config;

pub struct ApiClient {
    addr: String,
    token: String,
}

/// A decoded answer: the HTTP status and the JSON body.
pub struct ApiAnswer {
    pub status: u16,
    pub body: serde_json::Value,
}

impl ApiAnswer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The API's error text, for the user.
    pub fn detail(&self) -> String {
        self.body
            .get("detail")
            .and_then(|d| d.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| format!("HTTP {}: {}", self.status, self.body))
    }
}

impl ApiClient {
    /// The daemon of `config`, which holds `spool`.
    pub fn for_daemon(config: &Config, spool: &Path) -> anyhow::Result<ApiClient> {
        let Some(addr) = config.listen.http.clone() else {
            bail!(
                "the spool {} is in use by the running daemon, and it has no [listen] http for admin changes",
                spool.display()
            );
        };
        let file = spool.join(postwarden::http::ADMIN_TOKEN_FILE);
        let token = std::fs::read_to_string(&file).with_context(|| {
            format!(
                "the daemon runs, but its admin token {} cannot be read",
                file.display()
            )
        })?;
        Ok(ApiClient {
            addr,
            token: token.trim().to_string(),
        })
    }

    /// One request; `body` is sent as JSON, or as text/csv when `csv`.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> anyhow::Result<ApiAnswer> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(self.send(method, path, body, content_type))
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> anyhow::Result<ApiAnswer> {
        let stream = tokio::net::TcpStream::connect(&self.addr)
            .await
            .with_context(|| format!("cannot reach the daemon's http listener {}", self.addr))?;
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.addr)
            .header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            )
            .header(hyper::header::CONTENT_TYPE, content_type)
            .header(hyper::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
        Ok(ApiAnswer { status, body })
    }
}

/// A path segment, percent-encoded (addresses may hold `+`, `/`, `%`).
pub fn segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
