//! Sign-ups from a CRM's own form through the admin API: `POST
//! /api/v1/{tenant}/contacts` with `send_confirmation` sends postwarden's
//! confirmation mail after the same consent, suppression and rate checks as
//! the form (but no form token: the API token stands for the CRM).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use tracing::info;

use super::pages::Lang;
use super::subscribe::{queue_confirmation, truncate};
use super::{form, AppState};
use crate::accept::confirmation::Request;
use crate::accept::{self, Outcome};
use crate::config::TenantConfig;
use crate::consent::confirm;
use crate::consent::form::Refusal;
use crate::consent::wording;
use crate::consent::{self, ConsentProof, ConsentState};

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
