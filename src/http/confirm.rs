//! Double opt-in confirmation: `GET /confirm/{token}` only shows a page
//! with a button, because link scanners fetch every GET; `POST
//! /confirm/{token}` confirms, on the wording the sign-up agreed to.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::info;

use super::answer::{answer, Client};
use super::pages::{page, Text};
use super::AppState;
use crate::config::Config;
use crate::consent::confirm::{ConfirmToken, TokenProblem};
use crate::consent::{self, ConsentState, Contact, Evidence};
use crate::store::{Store, StoreError};

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

pub async fn show(
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
    // The confirmation stands on the sign-up whose wording the token names
    // (a later sign-up may have shown another one).
    let agreed = t.consent.as_ref().and_then(|hash| {
        contact
            .evidence
            .iter()
            .rev()
            .filter(|e| e.state == ConsentState::DoubleOptInPending)
            .find_map(|e| e.consent.clone().filter(|c| &c.text_sha256 == hash))
    });
    contact.state = ConsentState::DoubleOptInConfirmed;
    contact.evidence.push(Evidence {
        at: now,
        state: ConsentState::DoubleOptInConfirmed,
        source: "form".into(),
        ip: Some(ip.clone()),
        user_agent,
        detail: Some("confirmation link".into()),
        consent: agreed,
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
