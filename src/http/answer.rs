//! The answers of the sign-up and confirmation endpoints: a page in the
//! client's language (or the tenant's page template), or JSON to JSON
//! clients, with the same status either way.

use std::net::SocketAddr;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::pages::{page, Lang, Text};
use crate::config::Config;

/// Who asked, for the evidence trail.
pub(super) struct Client {
    pub(super) ip: String,
    pub(super) user_agent: Option<String>,
    pub(super) lang: Lang,
    pub(super) json: bool,
}

impl Client {
    pub(super) fn new(peer: SocketAddr, headers: &HeaderMap) -> Client {
        Client {
            ip: peer.ip().to_string(),
            user_agent: headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            lang: Lang::from_headers(headers),
            json: is_json(headers),
        }
    }
}

pub(super) fn is_json(headers: &HeaderMap) -> bool {
    let wants = |name| {
        headers
            .get(name)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
            .is_some_and(|v| v.contains("application/json"))
    };
    wants(header::CONTENT_TYPE) || wants(header::ACCEPT)
}

/// An answer as a page, or as `{"status": ..., "detail": ...}` to JSON clients.
pub(super) fn answer(
    client: &Client,
    config: &Config,
    tenant: &str,
    status: StatusCode,
    (name, title, text): (&str, Text, &str),
    code: &str,
) -> Response {
    let page_body = format!("<p>{}</p>", html_escape::encode_text(text));
    let frame = Frame {
        tenant: config.tenants.get(tenant),
        name,
        title,
    };
    page_or_json(client, status, frame, &page_body, (code, text))
}

/// Where a page goes: the tenant (for its templates), the page's name and title.
pub(super) struct Frame<'a> {
    pub(super) tenant: Option<&'a crate::config::TenantConfig>,
    pub(super) name: &'a str,
    pub(super) title: Text,
}

/// `page_body` (trusted HTML) in the page frame, or to JSON clients
/// `{"status": code, "detail": text}`.
pub(super) fn page_or_json(
    client: &Client,
    status: StatusCode,
    frame: Frame<'_>,
    page_body: &str,
    (code, text): (&str, &str),
) -> Response {
    if client.json {
        let json = serde_json::json!({"status": code, "detail": text});
        return (status, Json(json)).into_response();
    }
    let title = client.lang.t(frame.title);
    let html = page(client.lang, frame.tenant, frame.name, title, page_body);
    (status, html).into_response()
}

pub(super) fn too_many(client: &Client, config: &Config, tenant: &str) -> Response {
    answer(
        client,
        config,
        tenant,
        StatusCode::TOO_MANY_REQUESTS,
        (
            "subscribe",
            Text::TooManyTitle,
            client.lang.t(Text::TooManyBody),
        ),
        "rate_limited",
    )
}

pub(super) fn retry(client: &Client, config: &Config, tenant: &str) -> Response {
    answer(
        client,
        config,
        tenant,
        StatusCode::SERVICE_UNAVAILABLE,
        (
            "subscribe",
            Text::RetryTitle,
            client.lang.t(Text::RetryBody),
        ),
        "error",
    )
}
