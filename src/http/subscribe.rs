//! Double opt-in over HTTP.
//!
//! `POST /subscribe/{tenant}/{list}` (an HTML form post or JSON with
//! `email`) records `double_opt_in_pending` with its evidence and queues a
//! confirmation mail. `GET /confirm/{token}` only shows a page with a button,
//! because link scanners fetch every GET; `POST /confirm/{token}` confirms.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use tracing::{info, warn};

use super::pages::{page, Lang, Text};
use super::{form, human, AppState};
use crate::accept::confirmation::Request;
use crate::accept::{self, Outcome};
use crate::config::{Config, TenantConfig};
use crate::consent::confirm::{self, ConfirmToken, TokenProblem};
use crate::consent::form::{check_timing as form_check_timing, Fields, FormToken, Refusal};
use crate::consent::wording;
use crate::consent::{self, ConsentProof, ConsentState, Contact, Evidence};
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
    answer_with(
        client,
        config,
        tenant,
        status,
        (name, title, text),
        code,
        "",
    )
}

/// [`answer`], with more trusted HTML after the text on a page.
fn answer_with(
    client: &Client,
    config: &Config,
    tenant: &str,
    status: StatusCode,
    (name, title, text): (&str, Text, &str),
    code: &str,
    more: &str,
) -> Response {
    if client.json {
        return (
            status,
            Json(serde_json::json!({"status": code, "detail": text})),
        )
            .into_response();
    }
    let body = format!("<p>{}</p>{more}", html_escape::encode_text(text));
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

/// `POST /subscribe/{tenant}/{list}` (and the form page's own URL).
pub async fn subscribe(
    State(app): State<AppState>,
    Path((tenant, list)): Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let config = app.ctx.settings().config.clone();
    let origin = config
        .tenants
        .get(&tenant)
        .and_then(|t| form::allowed_origin(&headers, t));
    let client = Client::new(peer, &headers);
    let response = sign_up(&app, config, client, &tenant, &list, &headers, &body).await;
    form::with_cors(response, origin)
}

/// A sign-up through the form: each check, then the pending state and the
/// confirmation mail in one write. Whatever the address's state, a sign-up
/// that passed the checks gets the same answer, so that the form does not
/// tell who is subscribed.
async fn sign_up(
    app: &AppState,
    config: Arc<Config>,
    mut client: Client,
    tenant: &str,
    list: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let bad = |client: &Client, detail: &str| {
        answer(
            client,
            &config,
            tenant,
            StatusCode::BAD_REQUEST,
            ("subscribe", Text::BadRequestTitle, detail),
            "invalid",
        )
    };
    let Some(tc) = config.tenants.get(tenant) else {
        return answer(
            &client,
            &config,
            tenant,
            StatusCode::NOT_FOUND,
            ("subscribe", Text::BadRequestTitle, "no such tenant"),
            "not_found",
        );
    };
    if !consent::address::is_valid_list_name(list) {
        return bad(&client, "the list name is not valid");
    }
    let Some(fields) = Fields::parse(body, client.json, &tc.human_check_field) else {
        return bad(&client, "the body is not a JSON object");
    };
    // The language of the wording the form showed, which the answer uses too.
    if let Some(lang) = fields.lang.as_deref().and_then(form::parse_lang) {
        client.lang = lang;
    }
    let address = fields
        .email
        .as_deref()
        .and_then(|raw| consent::address::validate_address(raw).ok());
    let refuse = |r: Refusal| refuse(app, &config, &client, tenant, list, address.as_deref(), r);
    let served = match screen(&app.ctx.secret, tc, tenant, list, &fields) {
        Ok(served) => served,
        Err(r) => return refuse(r).await,
    };
    let Some(raw) = fields.email.as_deref() else {
        return bad(&client, "the field email is missing");
    };
    let address = match consent::address::validate_address(raw) {
        Ok(a) => a,
        Err(why) => return bad(&client, why),
    };
    let Some(version) = fields.consent_version.clone() else {
        return refuse(Refusal::VersionUnknown).await;
    };
    let store = app.ctx.store.clone();
    let (t, l, tcc, lang) = (
        tenant.to_string(),
        list.to_string(),
        tc.clone(),
        client.lang,
    );
    let found =
        tokio::task::spawn_blocking(move || wording::find(&store, &t, &tcc, &l, &version, lang))
            .await;
    let wording = match found {
        Ok(Ok(Some(w))) => w,
        Ok(Ok(None)) => return refuse(Refusal::VersionUnknown).await,
        Ok(Err(e)) => {
            warn!("subscribe: cannot read the consent wordings ({tenant}/{list}): {e}");
            return retry(&client, &config, tenant);
        }
        Err(e) => {
            warn!("subscribe: task failed: {e}");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    match human::check(tc, fields.human.as_deref(), &client.ip).await {
        Ok(true) => {}
        Ok(false) => return refuse(Refusal::HumanCheck).await,
        Err(e) => {
            warn!("subscribe: the human check did not answer ({tenant}/{list}): {e}");
            return retry(&client, &config, tenant);
        }
    }
    let site_limit = config.limits.confirm_limit_per_address_site;
    if !app
        .confirm_limits
        .allow(tenant, &address, Some(&client.ip), tc, site_limit)
    {
        warn!(
            "subscribe: too many confirmation requests for <{address}> or from {} ({tenant}/{list})",
            client.ip
        );
        return too_many(&client, &config, tenant);
    }
    let Some(from) = confirm::confirm_from(tc) else {
        return bad(&client, "this tenant has no sender for confirmation mails");
    };
    let page_url = fields
        .source
        .clone()
        .or_else(|| header_text(headers, header::REFERER));
    let proof = ConsentProof {
        version: wording.version.clone(),
        lang: wording.lang.clone(),
        text_sha256: wording.sha256.clone(),
        explicit: true,
        page: page_url.map(|p| truncate(&p, form::MAX_SOURCE)),
        origin: header_text(headers, header::ORIGIN).map(|o| truncate(&o, form::MAX_SOURCE)),
        form_served_at: served.map(|ms| ms / 1000),
        via: "form".into(),
    };
    let outcome = queue_confirmation(
        app,
        &config,
        Request {
            tenant: tenant.into(),
            list: list.into(),
            address,
            from,
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            lang: client.lang,
            wording,
            proof,
            source: "form",
        },
    )
    .await;
    match outcome {
        Some(Outcome::Queued { id }) => {
            info!(
                "{id}: subscribe: confirmation requested ({tenant}/{list}, client {})",
                client.ip
            );
        }
        // The tenant's storage is full: the person cannot fix it, but is
        // not told it worked either.
        Some(Outcome::Rejected(accept::Rejection::ContactQuota)) => {
            return retry(&client, &config, tenant)
        }
        Some(Outcome::Rejected(_)) => {}
        Some(Outcome::TempFailure(_)) | None => return retry(&client, &config, tenant),
    }
    answer(
        &client,
        &config,
        tenant,
        StatusCode::ACCEPTED,
        (
            "subscribe",
            Text::SubscribeTitle,
            client.lang.t(Text::SubscribeBody),
        ),
        "pending",
    )
}

/// Records the pending state and queues the confirmation mail; None when
/// the blocking task failed.
pub(super) async fn queue_confirmation(
    app: &AppState,
    config: &Arc<Config>,
    r: Request,
) -> Option<Outcome> {
    let store = app.ctx.store.clone();
    let config = config.clone();
    let secret = app.ctx.secret.clone();
    let result = tokio::task::spawn_blocking(move || {
        accept::confirmation::accept(&store, &config, &secret, &r)
    })
    .await;
    match result {
        Ok(outcome) => {
            if matches!(outcome, Outcome::Queued { .. }) {
                app.ctx.request_scan();
            }
            Some(outcome)
        }
        Err(e) => {
            warn!("subscribe: task failed: {e}");
            None
        }
    }
}

/// The form's own checks, before the address is looked at: the honeypot,
/// the form token and its timing, the consent field. The time the form was
/// served (unix ms) when a token came with the post.
fn screen(
    secret: &[u8],
    tc: &TenantConfig,
    tenant: &str,
    list: &str,
    fields: &Fields,
) -> Result<Option<u64>, Refusal> {
    if fields.honeypot.is_some() {
        return Err(Refusal::Honeypot);
    }
    let served = match &fields.form_token {
        Some(text) => {
            let t = FormToken::verify(secret, text)
                .filter(|t| t.tenant == tenant && t.list == list)
                .ok_or(Refusal::TokenInvalid)?;
            form_check_timing(&t, form::now_ms(), tc.form_min_seconds, tc.form_max_age)?;
            Some(t.served_ms)
        }
        None if tc.require_form_token => return Err(Refusal::TokenMissing),
        None => None,
    };
    if !fields.consent {
        return Err(Refusal::ConsentMissing);
    }
    Ok(served)
}

/// A refused sign-up: counted against the client's IP, in the metrics and
/// as a `subscribe_refused` event; no mail. Over the IP's daily limit the
/// answer is 429 and nothing is recorded.
async fn refuse(
    app: &AppState,
    config: &Config,
    client: &Client,
    tenant: &str,
    list: &str,
    address: Option<&str>,
    r: Refusal,
) -> Response {
    let Some(tc) = config.tenants.get(tenant) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !app.confirm_limits.refused(&client.ip, tc) {
        return too_many(client, config, tenant);
    }
    crate::metrics::subscribe_refused(tenant, r.code());
    info!(
        "subscribe: refused ({}) for {tenant}/{list}, client {}",
        r.code(),
        client.ip
    );
    let event = Store::event_op(&serde_json::json!({
        "type": "subscribe_refused", "at": crate::values::now(), "tenant": tenant,
        "list": list, "reason": r.code(), "address": address, "ip": client.ip,
    }));
    if let Err(e) = app.ctx.store.commit(vec![event]).await {
        warn!("subscribe: cannot record a refusal: {e}");
    }
    let text = client.lang.t(match r {
        Refusal::ConsentMissing | Refusal::VersionUnknown => Text::RefusedConsent,
        Refusal::TooFast => Text::RefusedTooFast,
        Refusal::Stale => Text::RefusedStale,
        Refusal::HumanCheck => Text::RefusedHuman,
        Refusal::Honeypot | Refusal::TokenMissing | Refusal::TokenInvalid => Text::RefusedForm,
    });
    let back = format!(
        "<p><a href=\"{}?lang={}\">{}</a></p>",
        html_escape::encode_double_quoted_attribute(&form::form_url(config, tenant, list)),
        client.lang.code(),
        html_escape::encode_text(client.lang.t(Text::BackToForm))
    );
    answer_with(
        client,
        config,
        tenant,
        StatusCode::BAD_REQUEST,
        ("subscribe", Text::BadRequestTitle, text),
        r.code(),
        &back,
    )
}

fn too_many(client: &Client, config: &Config, tenant: &str) -> Response {
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

fn retry(client: &Client, config: &Config, tenant: &str) -> Response {
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

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && *v != "null")
        .map(str::to_string)
}

/// `text` as the evidence keeps a page or origin the client named: no
/// control characters (it is printed on terminals), at most `max` bytes.
fn truncate(text: &str, max: usize) -> String {
    let text: String = text.chars().filter(|c| !c.is_control()).collect();
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
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

/// The consent fields of a CRM's own sign-up form, given to the API's
/// `POST /api/v1/{tenant}/contacts` with `send_confirmation`: then
/// postwarden sends its confirmation mail as for its own form.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct ApiSignup {
    #[serde(default)]
    pub consent: Option<bool>,
    #[serde(default)]
    pub consent_version: Option<String>,
    /// en or de: the wording's language and the confirmation mail's.
    #[serde(default)]
    pub lang: Option<String>,
    /// The page of the CRM's form.
    #[serde(default)]
    pub page: Option<String>,
}

/// A sign-up through the API: the same consent, suppression and rate checks
/// as the form (but no form token: the API token stands for the CRM). The
/// answer is explicit, as the caller is the tenant: 202 pending (with the
/// confirmation mail's queue id), 409 when already confirmed or suppressed,
/// 422 without consent or with an unknown wording, 429 over the limits.
pub(super) async fn api_sign_up(
    app: &AppState,
    tenant: &str,
    tc: &TenantConfig,
    email: &str,
    change: &consent::ops::Change,
    signup: ApiSignup,
) -> Response {
    let error = |status: StatusCode, code: &str, detail: String| {
        (
            status,
            Json(serde_json::json!({"error": code, "detail": detail})),
        )
            .into_response()
    };
    let unprocessable = |code: &str, detail: &str| {
        error(StatusCode::UNPROCESSABLE_ENTITY, code, detail.to_string())
    };
    if change.state != ConsentState::DoubleOptInPending.as_str() {
        return unprocessable(
            "invalid_state",
            "send_confirmation goes with state double_opt_in_pending",
        );
    }
    if !consent::address::is_valid_list_name(&change.list) {
        return unprocessable("invalid_list", "the list name is not valid");
    }
    let address = match consent::address::validate_address(email) {
        Ok(a) => a,
        Err(why) => return unprocessable("invalid_address", why),
    };
    if signup.consent != Some(true) {
        crate::metrics::subscribe_refused(tenant, Refusal::ConsentMissing.code());
        return unprocessable(
            Refusal::ConsentMissing.code(),
            "consent must be true: the person ticked the consent box on the form",
        );
    }
    let lang = signup
        .lang
        .as_deref()
        .and_then(form::parse_lang)
        .unwrap_or(Lang::En);
    let Some(version) = signup.consent_version.clone() else {
        return unprocessable(
            Refusal::VersionUnknown.code(),
            "consent_version is needed: the version of the wording the form showed",
        );
    };
    let store = app.ctx.store.clone();
    let (t, l, tcc) = (tenant.to_string(), change.list.clone(), tc.clone());
    let v = version.clone();
    let found =
        tokio::task::spawn_blocking(move || wording::find(&store, &t, &tcc, &l, &v, lang)).await;
    let wording = match found {
        Ok(Ok(Some(w))) => w,
        Ok(Ok(None)) => {
            crate::metrics::subscribe_refused(tenant, Refusal::VersionUnknown.code());
            return unprocessable(
                Refusal::VersionUnknown.code(),
                &format!("no consent wording {version:?} for this list"),
            );
        }
        Ok(Err(e)) => return error(StatusCode::SERVICE_UNAVAILABLE, "store", e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    };
    let config = app.ctx.settings().config.clone();
    let site_limit = config.limits.confirm_limit_per_address_site;
    if !app
        .confirm_limits
        .allow(tenant, &address, change.ip.as_deref(), tc, site_limit)
    {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many confirmation mails for this address or IP today".into(),
        );
    }
    let Some(from) = confirm::confirm_from(tc) else {
        return unprocessable(
            "no_sender",
            "this tenant has no sender for confirmation mails",
        );
    };
    let proof = ConsentProof {
        version: wording.version.clone(),
        lang: wording.lang.clone(),
        text_sha256: wording.sha256.clone(),
        explicit: true,
        page: signup.page.map(|p| truncate(&p, form::MAX_SOURCE)),
        origin: None,
        form_served_at: None,
        via: "api".into(),
    };
    let request = Request {
        tenant: tenant.into(),
        list: change.list.clone(),
        address,
        from,
        ip: change.ip.clone().unwrap_or_default(),
        user_agent: change.user_agent.clone(),
        lang,
        wording,
        proof,
        source: "api",
    };
    match queue_confirmation(app, &config, request).await {
        Some(Outcome::Queued { id }) => {
            info!(
                "{id}: api: confirmation requested ({tenant}/{})",
                change.list
            );
            (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({"status": "pending", "queue_id": id})),
            )
                .into_response()
        }
        Some(Outcome::Rejected(accept::Rejection::AlreadyConfirmed)) => error(
            StatusCode::CONFLICT,
            "already_confirmed",
            "the address is confirmed on this list already: no mail".into(),
        ),
        Some(Outcome::Rejected(accept::Rejection::Suppressed)) => error(
            StatusCode::CONFLICT,
            "suppressed",
            "the address is suppressed after a bounce or complaint: no mail".into(),
        ),
        Some(Outcome::Rejected(accept::Rejection::ContactQuota)) => error(
            StatusCode::FORBIDDEN,
            "quota_exceeded",
            "the tenant is at its max_contacts".into(),
        ),
        Some(Outcome::Rejected(_)) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no tenant {tenant}"),
        ),
        Some(Outcome::TempFailure(_)) | None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "store",
            "the spool did not take the write; try again".into(),
        ),
    }
}
