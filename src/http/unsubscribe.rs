//! Unsubscribe links of managed mode (RFC 8058): `POST /u/{token}` with the
//! body `List-Unsubscribe=One-Click` takes effect at once and answers 200;
//! `GET /u/{token}` only shows a page with a button, because link scanners
//! fetch every GET.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use crate::smtp::server::ServerContext;

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title>\
<style>body{{font-family:sans-serif;max-width:32em;margin:3em auto;padding:0 1em;line-height:1.5}}\
button{{font-size:1em;padding:.5em 1em;margin:.25em 0}}</style></head><body><main><h1>{title}</h1>{body}</main></body></html>"
    ))
}

fn lookup(ctx: &ServerContext, token: &str) -> Option<(crate::queue::entry::Tracking, String)> {
    let (qid, index) = crate::token::verify_recipient_token(&ctx.secret, "unsubscribe", token)?;
    crate::feedback::processor::tracked(&ctx.store, &qid, index)
        .ok()
        .flatten()
}

pub async fn show(State(ctx): State<Arc<ServerContext>>, Path(token): Path<String>) -> Response {
    let Some((tracking, address)) = lookup(&ctx, &token) else {
        return (
            StatusCode::NOT_FOUND,
            page(
                "Link not valid",
                "<p>This unsubscribe link is not valid.</p>",
            ),
        )
            .into_response();
    };
    let address = html_escape::encode_text(&address);
    let list = tracking
        .list
        .as_deref()
        .map(html_escape::encode_text)
        .unwrap_or_default();
    page(
        "Unsubscribe",
        &format!(
            "<p>Stop mail to <strong>{address}</strong>?</p>\
<form method=\"post\"><input type=\"hidden\" name=\"scope\" value=\"list\">\
<button type=\"submit\">Unsubscribe from {list}</button></form>\
<form method=\"post\"><input type=\"hidden\" name=\"scope\" value=\"all\">\
<button type=\"submit\">Unsubscribe from all mail of this sender</button></form>"
        ),
    )
    .into_response()
}

pub async fn apply(
    State(ctx): State<Arc<ServerContext>>,
    Path(token): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((tracking, address)) = lookup(&ctx, &token) else {
        return (
            StatusCode::NOT_FOUND,
            page(
                "Link not valid",
                "<p>This unsubscribe link is not valid.</p>",
            ),
        )
            .into_response();
    };
    let body = String::from_utf8_lossy(&body);
    let one_click = body.contains("List-Unsubscribe=One-Click");
    // RFC 8058 one-click and "all mail" both stop everything from this sender.
    let everything = one_click || body.contains("scope=all");
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let source = if one_click {
        "one_click"
    } else {
        "unsubscribe_link"
    };
    let store = ctx.store.clone();
    let result = tokio::task::spawn_blocking(move || {
        let ops = crate::consent::unsubscribe_ops(
            &store,
            &tracking.tenant,
            tracking.list.as_deref(),
            &address,
            everything,
            source,
            Some(peer.ip().to_string()),
            user_agent,
        )?;
        store.commit_blocking(ops)?;
        tracing::info!(
            "unsubscribe: <{address}> for {} ({source})",
            tracking.tenant
        );
        Ok::<_, crate::store::StoreError>(())
    })
    .await;
    match result {
        Ok(Ok(())) => page(
            "Unsubscribed",
            "<p>Done: you will get no more of this mail.</p>",
        )
        .into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            page(
                "Try again",
                "<p>Something went wrong; please try again.</p>",
            ),
        )
            .into_response(),
    }
}
