//! Sign-ups by form: `POST /subscribe/{tenant}/{list}` (and the form page's
//! own URL), an HTML form post or JSON. Each of the form's checks, then the
//! pending consent with its evidence and the confirmation mail in one write.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::{info, warn};

use super::answer::{answer, page_or_json, retry, too_many, Client, Frame};
use super::pages::Text;
use super::{form, human, AppState};
use crate::accept::confirmation::Request;
use crate::accept::{self, Outcome};
use crate::config::{Config, TenantConfig};
use crate::consent::confirm;
use crate::consent::form::{check_timing as form_check_timing, Fields, FormToken, Refusal};
use crate::consent::wording;
use crate::consent::{self, ConsentProof};
use crate::store::Store;

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
    // Checked once: a refusal's event names a valid address, and a bad one
    // is answered after the form's own checks.
    let checked = fields
        .email
        .as_deref()
        .map(consent::address::validate_address);
    let valid = checked.as_ref().and_then(|c| c.as_ref().ok()).cloned();
    let refuse = |r: Refusal| refuse(app, &config, &client, tenant, list, valid.as_deref(), r);
    let served = match screen(&app.ctx.secret, tc, tenant, list, &fields) {
        Ok(served) => served,
        Err(r) => return refuse(r).await,
    };
    let address = match checked {
        None => return bad(&client, "the field email is missing"),
        Some(Err(why)) => return bad(&client, why),
        Some(Ok(a)) => a,
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
            form_check_timing(
                &t,
                crate::values::clock::now_millis(),
                tc.form_min_seconds,
                tc.form_max_age,
            )?;
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
    // The page says why and leads back to the form.
    let page_body = format!(
        "<p>{}</p><p><a href=\"{}?lang={}\">{}</a></p>",
        html_escape::encode_text(text),
        html_escape::encode_double_quoted_attribute(&form::form_url(config, tenant, list)),
        client.lang.code(),
        html_escape::encode_text(client.lang.t(Text::BackToForm))
    );
    let frame = Frame {
        tenant: Some(tc),
        name: "subscribe",
        title: Text::BadRequestTitle,
    };
    page_or_json(
        client,
        StatusCode::BAD_REQUEST,
        frame,
        &page_body,
        (r.code(), text),
    )
}

pub(super) fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && *v != "null")
        .map(str::to_string)
}

/// `text` as the evidence keeps a page or origin the client named: no
/// control characters (it is printed on terminals), at most `max` bytes.
pub(super) fn truncate(text: &str, max: usize) -> String {
    let text: String = text.chars().filter(|c| !c.is_control()).collect();
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}
