//! Unsubscribe links of managed mode (RFC 8058): `POST /u/{token}` with the
//! body `List-Unsubscribe=One-Click` takes effect at once and answers 200;
//! `GET /u/{token}` only shows a page with a button, because link scanners
//! fetch every GET.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::pages::{page, Lang, Text};
use crate::runtime::Context;

fn lookup(ctx: &Context, token: &str) -> Option<(crate::store::queue::Tracking, String)> {
    let (qid, index) = crate::token::verify_recipient_token(&ctx.secret, "unsubscribe", token)?;
    crate::feedback::processor::tracked(&ctx.store, &qid, index)
        .ok()
        .flatten()
}

fn invalid(lang: Lang) -> Response {
    (
        StatusCode::NOT_FOUND,
        page(
            lang,
            None,
            "unsubscribe",
            lang.t(Text::InvalidTitle),
            &format!("<p>{}</p>", lang.t(Text::InvalidUnsubscribe)),
        ),
    )
        .into_response()
}

pub async fn show(
    State(ctx): State<Arc<Context>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let lang = Lang::from_headers(&headers);
    let Some((tracking, address)) = lookup(&ctx, &token) else {
        return invalid(lang);
    };
    let address = html_escape::encode_text(&address);
    let list = tracking
        .list
        .as_deref()
        .map(html_escape::encode_text)
        .unwrap_or_default();
    let config = ctx.settings().config.clone();
    page(
        lang,
        config.tenants.get(&tracking.tenant),
        "unsubscribe",
        lang.t(Text::UnsubscribeTitle),
        &format!(
            "<p>{} <strong>{address}</strong>?</p>\
<form method=\"post\"><input type=\"hidden\" name=\"scope\" value=\"list\">\
<button type=\"submit\">{} ({list})</button></form>\
<form method=\"post\"><input type=\"hidden\" name=\"scope\" value=\"all\">\
<button type=\"submit\">{}</button></form>",
            lang.t(Text::UnsubscribeQuestion),
            lang.t(Text::UnsubscribeList),
            lang.t(Text::UnsubscribeAll),
        ),
    )
    .into_response()
}

pub async fn apply(
    State(ctx): State<Arc<Context>>,
    Path(token): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let lang = Lang::from_headers(&headers);
    let Some((tracking, address)) = lookup(&ctx, &token) else {
        return invalid(lang);
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
        let _guard = crate::consent::lock(&store)?;
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
        crate::tenant::count_unsubscribe(&store, &tracking.tenant);
        tracing::info!(
            "unsubscribe: <{address}> for {} ({source})",
            tracking.tenant
        );
        Ok::<_, crate::store::StoreError>(())
    })
    .await;
    match result {
        Ok(Ok(())) => page(
            lang,
            None,
            "unsubscribed",
            lang.t(Text::UnsubscribedTitle),
            &format!("<p>{}</p>", lang.t(Text::UnsubscribedBody)),
        )
        .into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            page(
                lang,
                None,
                "error",
                lang.t(Text::RetryTitle),
                &format!("<p>{}</p>", lang.t(Text::RetryBody)),
            ),
        )
            .into_response(),
    }
}
