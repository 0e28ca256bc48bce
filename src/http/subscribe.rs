//! Double opt-in over HTTP.
//!
//! `POST /subscribe/{tenant}/{list}` (an HTML form post or JSON with
//! `email`) records `double_opt_in_pending` with its evidence and queues a
//! confirmation mail. `GET /confirm/{token}` only shows a page with a button,
//! because link scanners fetch every GET; `POST /confirm/{token}` confirms.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use tracing::{info, warn};

use super::pages::{page, Lang, Text};
use super::AppState;
use crate::accept::{self, Outcome};
use crate::config::Config;
use crate::consent::confirm::{self, ConfirmToken, TokenProblem};
use crate::consent::{self, ConsentState, Contact, Evidence};
use crate::store::{Store, StoreError};

/// Who asked, for the evidence trail.
struct Client {
    ip: String,
    user_agent: Option<String>,
    lang: Lang,
    json: bool,
}

impl Client {
    fn new(peer: SocketAddr, headers: &HeaderMap) -> Client {
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

fn is_json(headers: &HeaderMap) -> bool {
    let wants = |name| {
        headers
            .get(name)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
            .is_some_and(|v| v.contains("application/json"))
    };
    wants(header::CONTENT_TYPE) || wants(header::ACCEPT)
}

/// An answer as a page, or as `{"status": ..., "detail": ...}` to JSON clients.
fn answer(
    client: &Client,
    config: &Config,
    tenant: &str,
    status: StatusCode,
    (name, title, text): (&str, Text, &str),
    code: &str,
) -> Response {
    if client.json {
        return (
            status,
            Json(serde_json::json!({"status": code, "detail": text})),
        )
            .into_response();
    }
    let body = format!("<p>{}</p>", html_escape::encode_text(text));
    (
        status,
        page(
            client.lang,
            config.tenants.get(tenant),
            name,
            client.lang.t(title),
            &body,
        ),
    )
        .into_response()
}

/// The `email` field of a form or JSON body.
fn email_field(body: &[u8], json: bool) -> Option<String> {
    if json {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        return v.get("email")?.as_str().map(str::to_string);
    }
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "email")
        .map(|(_, v)| v.into_owned())
}

pub async fn subscribe(
    State(app): State<AppState>,
    Path((tenant, list)): Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctx = app.ctx.clone();
    let config = ctx.settings().config.clone();
    let client = Client::new(peer, &headers);
    let (address, from) = match sign_up(&app, &config, &client, &tenant, &list, &body) {
        Ok(fields) => fields,
        Err(refusal) => return *refusal,
    };
    let store = ctx.store.clone();
    let secret = ctx.secret.clone();
    let (tenant_c, list_c) = (tenant.clone(), list.clone());
    let (ip, ua, lang) = (client.ip.clone(), client.user_agent.clone(), client.lang);
    let result = tokio::task::spawn_blocking(move || {
        accept::confirmation::accept(
            &store,
            &config,
            &secret,
            &accept::confirmation::Request {
                tenant: &tenant_c,
                list: &list_c,
                address: &address,
                from: &from,
                ip: &ip,
                user_agent: ua,
                lang,
            },
        )
    })
    .await;
    let config = ctx.settings().config.clone();
    match result {
        Ok(Outcome::Queued { id }) => {
            ctx.request_scan();
            info!("{id}: subscribe: confirmation requested ({tenant}/{list}, client {peer})");
        }
        Ok(Outcome::Rejected(_)) => {}
        Ok(Outcome::TempFailure(_)) => {
            return answer(
                &client,
                &config,
                &tenant,
                StatusCode::SERVICE_UNAVAILABLE,
                (
                    "subscribe",
                    Text::RetryTitle,
                    client.lang.t(Text::RetryBody),
                ),
                "error",
            );
        }
        Err(e) => {
            warn!("subscribe: task failed: {e}");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    }
    // The same answer whatever the address's state, so that the form does
    // not tell who is subscribed.
    answer(
        &client,
        &config,
        &tenant,
        StatusCode::ACCEPTED,
        (
            "subscribe",
            Text::SubscribeTitle,
            client.lang.t(Text::SubscribeBody),
        ),
        "pending",
    )
}

/// The sign-up's address and the confirmation mail's sender, or the answer
/// that refuses it: unknown tenant, bad list or address, too many requests.
fn sign_up(
    app: &AppState,
    config: &Config,
    client: &Client,
    tenant: &str,
    list: &str,
    body: &[u8],
) -> Result<(String, String), Box<Response>> {
    let bad = |detail: &str| {
        answer(
            client,
            config,
            tenant,
            StatusCode::BAD_REQUEST,
            ("subscribe", Text::BadRequestTitle, detail),
            "invalid",
        )
    };
    let Some(tenant_config) = config.tenants.get(tenant) else {
        return Err(Box::new(answer(
            client,
            config,
            tenant,
            StatusCode::NOT_FOUND,
            ("subscribe", Text::BadRequestTitle, "no such tenant"),
            "not_found",
        )));
    };
    if !consent::address::is_valid_list_name(list) {
        return Err(Box::new(bad("the list name is not valid")));
    }
    let Some(raw) = email_field(body, client.json) else {
        return Err(Box::new(bad("the field email is missing")));
    };
    let address = consent::address::validate_address(&raw).map_err(|why| Box::new(bad(why)))?;
    if !app
        .confirm_limits
        .allow(tenant, &address, &client.ip, tenant_config)
    {
        warn!(
            "subscribe: too many confirmation requests for <{address}> or from {} ({tenant}/{list})",
            client.ip
        );
        return Err(Box::new(answer(
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
        )));
    }
    let from = confirm::confirm_from(tenant_config)
        .ok_or_else(|| Box::new(bad("this tenant has no sender for confirmation mails")))?;
    Ok((address, from))
}

fn token_answer(client: &Client, config: &Config, problem: TokenProblem) -> Response {
    match problem {
        TokenProblem::Invalid => answer(
            client,
            config,
            "",
            StatusCode::NOT_FOUND,
            (
                "confirm",
                Text::InvalidTitle,
                client.lang.t(Text::InvalidConfirm),
            ),
            "invalid",
        ),
        TokenProblem::Expired => answer(
            client,
            config,
            "",
            StatusCode::GONE,
            (
                "confirm",
                Text::ExpiredTitle,
                client.lang.t(Text::ExpiredBody),
            ),
            "expired",
        ),
    }
}

/// The settings, the client and the token of a confirmation request, or the
/// answer for a forged or expired token.
fn verified(
    app: &AppState,
    token: &str,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<(std::sync::Arc<Config>, Client, ConfirmToken), Box<Response>> {
    let config = app.ctx.settings().config.clone();
    let client = Client::new(peer, headers);
    match ConfirmToken::verify(&app.ctx.secret, token, crate::values::now()) {
        Ok(t) => Ok((config, client, t)),
        Err(p) => Err(Box::new(token_answer(&client, &config, p))),
    }
}

pub async fn show_confirm(
    State(app): State<AppState>,
    Path(token): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let (config, client, t) = match verified(&app, &token, peer, &headers) {
        Ok(v) => v,
        Err(answer) => return *answer,
    };
    let lang = client.lang;
    let body = format!(
        "<p>{} <strong>{}</strong> ({})?</p><form method=\"post\"><button type=\"submit\">{}</button></form>",
        lang.t(Text::ConfirmQuestion),
        html_escape::encode_text(&t.address),
        html_escape::encode_text(&t.list),
        lang.t(Text::ConfirmButton)
    );
    page(
        lang,
        config.tenants.get(&t.tenant),
        "confirm",
        lang.t(Text::ConfirmTitle),
        &body,
    )
    .into_response()
}

/// What a confirmation POST found.
enum Confirmed {
    Now,
    Already,
    /// The contact is no longer pending (unsubscribed, suppressed, erased).
    Superseded,
}

pub async fn confirm(
    State(app): State<AppState>,
    Path(token): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let (config, client, t) = match verified(&app, &token, peer, &headers) {
        Ok(v) => v,
        Err(answer) => return *answer,
    };
    let store = app.ctx.store.clone();
    let (ip, ua) = (client.ip.clone(), client.user_agent.clone());
    let t2 = t.clone();
    let result = tokio::task::spawn_blocking(move || apply_confirmation(&store, &t2, ip, ua)).await;
    match result {
        Ok(Ok(Confirmed::Now)) | Ok(Ok(Confirmed::Already)) => {
            info!(
                "confirm: <{}> confirmed on {}/{} (client {peer})",
                t.address, t.tenant, t.list
            );
            answer(
                &client,
                &config,
                &t.tenant,
                StatusCode::OK,
                (
                    "confirm",
                    Text::ConfirmedTitle,
                    client.lang.t(Text::ConfirmedBody),
                ),
                "confirmed",
            )
        }
        Ok(Ok(Confirmed::Superseded)) => token_answer(&client, &config, TokenProblem::Expired),
        _ => answer(
            &client,
            &config,
            &t.tenant,
            StatusCode::SERVICE_UNAVAILABLE,
            ("confirm", Text::RetryTitle, client.lang.t(Text::RetryBody)),
            "error",
        ),
    }
}

fn apply_confirmation(
    store: &Store,
    t: &ConfirmToken,
    ip: String,
    user_agent: Option<String>,
) -> Result<Confirmed, StoreError> {
    let _guard = consent::lock(store)?;
    let Some(mut contact) = store.contact::<Contact>(&t.tenant, &t.list, &t.address)? else {
        return Ok(Confirmed::Superseded);
    };
    let suppression = consent::ConsentLookup::suppression(store, &t.tenant, &t.address)?;
    match contact.state {
        // Confirmed, but since suppressed: the link must not say "confirmed".
        ConsentState::DoubleOptInConfirmed if suppression.is_some() => {
            return Ok(Confirmed::Superseded)
        }
        ConsentState::DoubleOptInConfirmed => return Ok(Confirmed::Already),
        ConsentState::DoubleOptInPending => {}
        _ => return Ok(Confirmed::Superseded),
    }
    let now = crate::values::now();
    contact.state = ConsentState::DoubleOptInConfirmed;
    contact.evidence.push(Evidence {
        at: now,
        state: ConsentState::DoubleOptInConfirmed,
        source: "form".into(),
        ip: Some(ip.clone()),
        user_agent,
        detail: Some("confirmation link".into()),
    });
    let mut ops = vec![Store::put_contact_op(
        &t.tenant, &t.list, &t.address, &contact,
    )];
    // A person who unsubscribed from everything and now confirms a new
    // subscription has given consent again; bounces and complaints stay.
    match suppression {
        Some(s) if s.reason == "unsubscribed" => {
            ops.push(Store::delete_suppression_op(&t.tenant, &t.address));
        }
        // Bounces, complaints and erasure stay: no confirmation lifts them.
        Some(_) => return Ok(Confirmed::Superseded),
        None => {}
    }
    ops.push(Store::event_op(&serde_json::json!({
        "type": "consent_changed", "at": now, "tenant": t.tenant, "list": t.list,
        "address": t.address, "state": "double_opt_in_confirmed", "source": "form", "ip": ip,
    })));
    store.commit_blocking(ops)?;
    Ok(Confirmed::Now)
}
