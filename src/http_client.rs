//! The one outgoing HTTP client: a POST over HTTP/1.1, plain or TLS (the
//! public roots), with timeouts. Webhooks and the sign-up's human check use
//! it. hyper's own client (`hyper-util`'s legacy pool) would bring a
//! connection pool neither needs; one request per connection is what both
//! do, at the rate of events and sign-ups.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;

/// The largest answer body read; more is cut off.
const MAX_BODY: usize = 64 * 1024;

/// What the server answered.
#[derive(Debug)]
pub struct Reply {
    pub status: hyper::StatusCode,
    pub body: Vec<u8>,
}

/// POSTs `body` to `url` with the given headers (Host and Content-Length
/// are added); the connection may take 10 s, the whole request `timeout`.
pub async fn post(
    url: &str,
    headers: &[(hyper::header::HeaderName, String)],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Reply, String> {
    let parsed = url::Url::parse(url).map_err(|e| e.to_string())?;
    let host = parsed.host_str().ok_or("no host")?.to_string();
    let port = parsed.port_or_known_default().ok_or("no port")?;
    let path = match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_string(),
    };
    let mut request = hyper::Request::builder()
        .method("POST")
        .uri(path)
        .header(hyper::header::HOST, parsed.authority());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let request = request
        .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    // Bracketed IPv6 hosts connect without their brackets.
    let connect_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let connect = tokio::net::TcpStream::connect((connect_host.as_str(), port));
    let tcp = tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    let send = async {
        if parsed.scheme() == "https" {
            let name = rustls::pki_types::ServerName::try_from(connect_host.clone())
                .map_err(|e| e.to_string())?;
            let tls = tls_connector()
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            send(hyper_util::rt::TokioIo::new(tls), request).await
        } else {
            send(hyper_util::rt::TokioIo::new(tcp), request).await
        }
    };
    tokio::time::timeout(timeout, send)
        .await
        .map_err(|_| "timed out".to_string())?
}

async fn send<IO>(
    io: IO,
    request: hyper::Request<http_body_util::Full<hyper::body::Bytes>>,
) -> Result<Reply, String>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let mut body = Vec::new();
    let mut incoming = response.into_body();
    while let Some(frame) = incoming.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Some(data) = frame.data_ref() {
            let room = MAX_BODY.saturating_sub(body.len());
            body.extend_from_slice(&data[..data.len().min(room)]);
            if body.len() >= MAX_BODY {
                break;
            }
        }
    }
    Ok(Reply { status, body })
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map(|b| b.with_root_certificates(roots).with_no_client_auth())
    .unwrap_or_else(|_| {
        rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    });
    tokio_rustls::TlsConnector::from(Arc::new(config))
}
