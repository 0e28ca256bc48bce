//! The admin JSON API under `/api/v1/{tenant}/...`.
//!
//! Each tenant has its own bearer tokens, stored in the config as SHA-256
//! hashes (`api_token_sha256`; the tokens are long random strings, so a fast
//! hash is enough and a request costs no argon2 run). A tenant's token opens
//! only that tenant's paths. The daemon's own admin token (written to
//! `admin.token` in the spool at start, readable by the spool's owner only)
//! opens every tenant: the CLI uses it while the daemon runs.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;

use super::AppState;
use crate::config::TenantConfig;
use crate::consent::ops::{self, Change, ConsentError};
use crate::consent::{Contact, Suppression};
use crate::queue::admin::{Action, QueueAdminError};

/// Every route of the API: (method, path). The router is built from the
/// handlers below; a test checks this list against both the router and the
/// OpenAPI document, so the document stays true.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/{tenant}/contacts"),
    ("post", "/api/v1/{tenant}/contacts"),
    ("get", "/api/v1/{tenant}/contacts/{address}"),
    ("delete", "/api/v1/{tenant}/contacts/{address}"),
    ("put", "/api/v1/{tenant}/contacts/{address}/consent"),
    ("get", "/api/v1/{tenant}/contacts/{address}/evidence"),
    ("post", "/api/v1/{tenant}/contacts/{address}/erase"),
    ("post", "/api/v1/{tenant}/imports"),
    ("post", "/api/v1/{tenant}/unsubscribes"),
    ("get", "/api/v1/{tenant}/stats"),
    ("get", "/api/v1/{tenant}/suppression"),
    ("post", "/api/v1/{tenant}/suppression"),
    ("delete", "/api/v1/{tenant}/suppression/{address}"),
];

/// Routes only the daemon's admin token opens (a tenant does not lift its
/// own suspension).
pub const ADMIN_ROUTES: &[(&str, &str)] = &[
    ("put", "/api/v1/{tenant}/suspension"),
    ("delete", "/api/v1/{tenant}/suspension"),
    ("post", "/admin/v1/queue/{action}"),
    ("post", "/admin/v1/webhooks/{tenant}/retry"),
    ("get", "/admin/v1/shaping"),
    ("post", "/admin/v1/shaping/{action}"),
];

pub const OPENAPI: &str = include_str!("openapi.json");

pub fn routes(app: AppState) -> axum::Router<AppState> {
    use axum::routing::{get, post, put};
    let tenant_routes = axum::Router::new()
        .route(
            "/api/v1/{tenant}/contacts",
            get(list_contacts).post(create_contact),
        )
        .route(
            "/api/v1/{tenant}/contacts/{address}",
            get(show_contact).delete(delete_contact),
        )
        .route(
            "/api/v1/{tenant}/contacts/{address}/consent",
            put(change_consent),
        )
        .route(
            "/api/v1/{tenant}/contacts/{address}/evidence",
            get(evidence),
        )
        .route("/api/v1/{tenant}/contacts/{address}/erase", post(erase))
        .route("/api/v1/{tenant}/imports", post(import))
        .route("/api/v1/{tenant}/unsubscribes", post(unsubscribe))
        .route(
            "/api/v1/{tenant}/suppression",
            get(list_suppression).post(add_suppression),
        )
        .route("/api/v1/{tenant}/stats", get(stats))
        .route("/api/v1/{tenant}/suspension", put(suspend).delete(resume))
        .route(
            "/api/v1/{tenant}/suppression/{address}",
            axum::routing::delete(remove_suppression),
        )
        // Authorisation runs after routing and before the handlers read the
        // request, so a request without the right token learns nothing from
        // how its body or query would have been judged.
        .route_layer(axum::middleware::from_fn_with_state(app, require_token));
    axum::Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/admin/v1/queue/{action}", post(queue_change))
        .route("/admin/v1/webhooks/{tenant}/retry", post(webhook_retry))
        .route("/admin/v1/shaping", get(shaping_status))
        .route("/admin/v1/shaping/{action}", post(shaping_change))
        .merge(tenant_routes)
}

/// The tenant settings of an authorised request, for its handler.
#[derive(Clone)]
struct Authorized(TenantConfig);

/// Set on requests made with the daemon's admin token.
#[derive(Clone, Copy)]
struct Admin(bool);

async fn require_token(
    State(app): State<AppState>,
    Path(params): Path<std::collections::HashMap<String, String>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let tenant = params.get("tenant").map(String::as_str).unwrap_or("");
    match authorize(&app, request.headers(), tenant) {
        Ok((config, admin)) => {
            request.extensions_mut().insert(Authorized(config));
            request.extensions_mut().insert(Admin(admin));
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// An API error: a status and `{"error": code, "detail": text}`.
pub struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(serde_json::json!({"error": self.1, "detail": self.2})),
        )
            .into_response()
    }
}

impl From<ConsentError> for ApiError {
    fn from(e: ConsentError) -> ApiError {
        let (status, code) = match &e {
            ConsentError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store"),
            ConsentError::InvalidAddress(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_address")
            }
            ConsentError::InvalidList(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_list"),
            ConsentError::InvalidState(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_state"),
            ConsentError::MissingEvidence(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "missing_evidence")
            }
            ConsentError::QuotaExceeded { .. } => (StatusCode::FORBIDDEN, "quota_exceeded"),
            ConsentError::ComplaintNeedsForce(_) => (StatusCode::CONFLICT, "complaint_needs_force"),
            ConsentError::ReasonMissing => (StatusCode::UNPROCESSABLE_ENTITY, "reason_missing"),
            ConsentError::Erased(_) => (StatusCode::CONFLICT, "erased"),
            ConsentError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        };
        ApiError(status, code, e.to_string())
    }
}

pub use crate::token::sha256_hex;

/// Lets the request through if its bearer token belongs to `tenant` (or is
/// the daemon's admin token); returns the tenant's settings.
/// The tenant's settings and whether the token is the daemon's admin token.
fn authorize(
    app: &AppState,
    headers: &HeaderMap,
    tenant: &str,
) -> Result<(TenantConfig, bool), ApiError> {
    let unauthorized = || {
        ApiError(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a bearer token is needed (Authorization: Bearer TOKEN)".into(),
        )
    };
    let token = bearer(headers).ok_or_else(unauthorized)?;
    let hash = sha256_hex(&token);
    let config = app.ctx.settings().config.clone();
    let admin = app.is_admin(&hash);
    let opens = |t: &TenantConfig| {
        t.api_token_sha256
            .iter()
            .any(|h| crate::token::hash_matches(h, &hash))
    };
    let tenant_config = config.tenants.get(tenant);
    let owns = tenant_config.is_some_and(opens);
    if !admin && !owns {
        // The same answer for another tenant's path and for a tenant that
        // does not exist: a token does not learn which tenants there are.
        let known = config.tenants.values().any(opens);
        return Err(if known {
            ApiError(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this token does not open this tenant".into(),
            )
        } else {
            unauthorized()
        });
    }
    tenant_config.cloned().map(|c| (c, admin)).ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no tenant {tenant}"),
        )
    })
}

/// Runs a store call off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ConsentError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(ApiError::from)
}

#[derive(Debug, Deserialize)]
pub struct Paging {
    pub list: Option<String>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
    pub limit: Option<usize>,
}

async fn list_contacts(
    State(app): State<AppState>,
    Path(tenant): Path<String>,
    Query(paging): Query<Paging>,
    Extension(Authorized(tenant_config)): Extension<Authorized>,
) -> Result<Json<serde_json::Value>, ApiError> {
    // Soft bounces within the tenant's window now (the bounce level).
    let (now, window) = (crate::values::now(), tenant_config.soft_bounce_window);
    let store = app.ctx.store.clone();
    let limit = paging.limit.unwrap_or(100).clamp(1, 1000);
    let (page, next) = blocking(move || {
        Ok(store.contacts_page::<Contact>(
            &tenant,
            paging.list.as_deref(),
            paging.after.as_deref(),
            limit,
        )?)
    })
    .await?;
    let contacts: Vec<_> = page
        .into_iter()
        .map(|(list, address, c)| {
            serde_json::json!({
                "list": list, "address": address, "state": c.state.as_str(),
                "hard_bounces": c.hard_bounces,
                "soft_bounces": c.soft_bounce_level(now, window),
                "updated_at": c.evidence.last().map(|e| e.at),
            })
        })
        .collect();
    Ok(Json(
        serde_json::json!({"contacts": contacts, "next": next}),
    ))
}

#[derive(Debug, Deserialize)]
struct NewContact {
    email: String,
    #[serde(flatten)]
    change: Change,
    /// Send postwarden's confirmation mail (state double_opt_in_pending,
    /// with the consent fields of the CRM's form).
    #[serde(default)]
    send_confirmation: bool,
    #[serde(flatten)]
    signup: super::api_signup::ApiSignup,
}

async fn create_contact(
    State(app): State<AppState>,
    Path(tenant): Path<String>,
    Extension(Authorized(tenant_config)): Extension<Authorized>,
    Json(body): Json<NewContact>,
) -> Result<Response, ApiError> {
    if body.send_confirmation {
        return Ok(super::api_signup::api_sign_up(
            &app,
            &tenant,
            &tenant_config,
            &body.email,
            &body.change,
            body.signup,
        )
        .await);
    }
    let store = app.ctx.store.clone();
    let t = tenant.clone();
    let contact = blocking(move || {
        ops::set_state(&store, &t, &tenant_config, &body.email, &body.change, "api")
    })
    .await?;
    tracing::info!("api: contact set for {tenant}: {}", contact.state.as_str());
    Ok((
        StatusCode::CREATED,
        Json(serde_json::to_value(&contact).unwrap_or_default()),
    )
        .into_response())
}

async fn show_contact(
    State(app): State<AppState>,
    Path((tenant, address)): Path<(String, String)>,
) -> Result<Json<ops::AddressReport>, ApiError> {
    let store = app.ctx.store.clone();
    let report = blocking(move || ops::show(&store, &tenant, &address)).await?;
    if report.lists.is_empty() && report.suppression.is_none() {
        return Err(ConsentError::NotFound.into());
    }
    Ok(Json(report))
}

#[derive(Debug, Deserialize)]
struct ListParam {
    list: Option<String>,
}

async fn delete_contact(
    State(app): State<AppState>,
    Path((tenant, address)): Path<(String, String)>,
    Query(q): Query<ListParam>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let store = app.ctx.store.clone();
    let n = blocking(move || ops::delete(&store, &tenant, &address, q.list.as_deref())).await?;
    Ok(Json(serde_json::json!({"deleted": n})))
}

async fn change_consent(
    State(app): State<AppState>,
    Path((tenant, address)): Path<(String, String)>,
    Extension(Authorized(tenant_config)): Extension<Authorized>,
    Json(change): Json<Change>,
) -> Result<Json<Contact>, ApiError> {
    let store = app.ctx.store.clone();
    let contact =
        blocking(move || ops::set_state(&store, &tenant, &tenant_config, &address, &change, "api"))
            .await?;
    Ok(Json(contact))
}

/// The evidence export: the same report as a download.
async fn evidence(
    State(app): State<AppState>,
    Path((tenant, address)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let store = app.ctx.store.clone();
    let report = blocking(move || ops::show(&store, &tenant, &address)).await?;
    if report.lists.is_empty() && report.suppression.is_none() {
        return Err(ConsentError::NotFound.into());
    }
    let name = format!(
        "attachment; filename=\"evidence-{}.json\"",
        report.address.replace(['"', '\\'], "_")
    );
    Ok((
        [(header::CONTENT_DISPOSITION, name)],
        Json(ops::export(&report, crate::values::now())),
    )
        .into_response())
}

async fn erase(
    State(app): State<AppState>,
    Path((tenant, address)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let store = app.ctx.store.clone();
    let t = tenant.clone();
    let n = blocking(move || ops::erase(&store, &t, &address)).await?;
    tracing::info!("api: an address of {tenant} was erased ({n} records)");
    Ok(Json(serde_json::json!({"erased": n})))
}

/// A CSV import; the options in the query (`list`, `source`, `attest`,
/// `state`, `skip_refused`). 200 with the report when it was written, 422
/// with the report when refused rows stopped it.
async fn import(
    State(app): State<AppState>,
    Path(tenant): Path<String>,
    Extension(Authorized(tenant_config)): Extension<Authorized>,
    Query(opts): Query<crate::consent::import::ImportOptions>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<crate::consent::import::ImportReport>), ApiError> {
    let store = app.ctx.store.clone();
    let t = tenant.clone();
    let report =
        blocking(move || crate::consent::import::import(&store, &t, &tenant_config, &opts, &body))
            .await?;
    tracing::info!(
        "api: import for {tenant}: {} rows, {} imported, {} refused",
        report.rows,
        report.imported,
        report.refused.len()
    );
    let status = if report.committed || report.refused.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, Json(report)))
}

#[derive(Debug, Deserialize)]
struct ExternalUnsubscribe {
    email: String,
    /// Absent: all mail of the tenant.
    list: Option<String>,
    ip: Option<String>,
}

async fn unsubscribe(
    State(app): State<AppState>,
    Path(tenant): Path<String>,
    Json(body): Json<ExternalUnsubscribe>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let store = app.ctx.store.clone();
    let t = tenant.clone();
    let list = body.list.clone();
    blocking(move || {
        ops::external_unsubscribe(&store, &t, &body.email, body.list.as_deref(), body.ip)
    })
    .await?;
    tracing::info!("api: unsubscribe recorded for {tenant}");
    Ok(Json(
        serde_json::json!({"unsubscribed": true, "everything": list.is_none()}),
    ))
}

async fn list_suppression(
    State(app): State<AppState>,
    Path(tenant): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let store = app.ctx.store.clone();
    let list = blocking(move || Ok(store.suppressions::<Suppression>(&tenant)?)).await?;
    let entries: Vec<_> = list
        .into_iter()
        .map(|(address, s)| serde_json::json!({"address": address, "suppression": s}))
        .collect();
    Ok(Json(serde_json::json!({"suppression": entries})))
}

#[derive(Debug, Deserialize)]
struct NewSuppression {
    email: String,
    #[serde(default = "admin_reason")]
    reason: String,
    detail: Option<String>,
}

fn admin_reason() -> String {
    "admin".into()
}

async fn add_suppression(
    State(app): State<AppState>,
    Path(tenant): Path<String>,
    Json(body): Json<NewSuppression>,
) -> Result<(StatusCode, Json<Suppression>), ApiError> {
    let store = app.ctx.store.clone();
    let s = blocking(move || {
        ops::add_suppression(
            &store,
            &tenant,
            &body.email,
            &body.reason,
            "api",
            body.detail,
        )
    })
    .await?;
    Ok((StatusCode::CREATED, Json(s)))
}

#[derive(Debug, Deserialize)]
struct Removal {
    reason: Option<String>,
    #[serde(default)]
    force: bool,
}

async fn remove_suppression(
    State(app): State<AppState>,
    Path((tenant, address)): Path<(String, String)>,
    Query(q): Query<Removal>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let store = app.ctx.store.clone();
    let reason = q.reason.unwrap_or_default();
    let was =
        blocking(move || ops::remove_suppression(&store, &tenant, &address, &reason, q.force))
            .await?;
    Ok(Json(serde_json::json!({"removed": true, "was": was})))
}

/// The tenant's counters, complaint rate and the rolling window.
async fn stats(
    State(app): State<AppState>,
    Path(tenant): Path<String>,
    Extension(Authorized(tenant_config)): Extension<Authorized>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let store = app.ctx.store.clone();
    let window = tenant_config.suspension_window_days;
    let state =
        blocking(move || Ok(crate::tenant::state_with_pending(&store, &tenant, window)?)).await?;
    Ok(Json(stats_json(&state, &tenant_config)))
}

/// The stats document of the API and of `postwarden tenant stats --json`.
pub fn stats_json(state: &crate::tenant::TenantState, config: &TenantConfig) -> serde_json::Value {
    let window = state.window(crate::values::now(), config.suspension_window_days);
    serde_json::json!({
        "suspended": state.suspended,
        "submitted": state.submitted,
        "policy_rejected": state.policy_rejected,
        "policy_rejected_by_reason": state.rejected_by_reason,
        "delivered": state.delivered,
        "deferred": state.deferred,
        "bounced": state.bounced,
        "hard_bounces": state.hard_bounces,
        "soft_bounces": state.soft_bounces,
        "complaints": state.complaints,
        "unsubscribes": state.unsubscribes,
        "complaint_rate": state.complaint_rate(),
        "window": window,
        "limits": {
            "complaint_rate_limit": config.complaint_rate_limit,
            "complaint_min_deliveries": config.complaint_min_deliveries,
            "max_policy_rejections": config.max_policy_rejections,
        },
    })
}

#[derive(Debug, Deserialize)]
struct Suspension {
    reason: String,
}

fn admin_only(admin: Admin) -> Result<(), ApiError> {
    if admin.0 {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only the postmaster (the daemon's admin token) changes a suspension".into(),
        ))
    }
}

async fn suspend(
    State(app): State<AppState>,
    Path(tenant): Path<String>,
    Extension(admin): Extension<Admin>,
    Json(body): Json<Suspension>,
) -> Result<Json<serde_json::Value>, ApiError> {
    admin_only(admin)?;
    let store = app.ctx.store.clone();
    let t = tenant.clone();
    let reason = body.reason.clone();
    blocking(move || {
        let event = serde_json::json!({"type": "tenant_suspended", "at": crate::values::now(), "tenant": t, "reason": reason, "source": "admin"});
        Ok(crate::tenant::record(&store, &t, Some(event), |s| s.suspended = Some(reason))?)
    })
    .await?;
    tracing::warn!(
        "tenant {tenant}: suspended by the postmaster: {}",
        body.reason
    );
    Ok(Json(serde_json::json!({"suspended": body.reason})))
}

async fn resume(
    State(app): State<AppState>,
    Path(tenant): Path<String>,
    Extension(admin): Extension<Admin>,
) -> Result<Json<serde_json::Value>, ApiError> {
    admin_only(admin)?;
    let store = app.ctx.store.clone();
    let t = tenant.clone();
    blocking(move || {
        let event = serde_json::json!({"type": "tenant_resumed", "at": crate::values::now(), "tenant": t, "source": "admin"});
        Ok(crate::tenant::record(&store, &t, Some(event), |s| s.resume())?)
    })
    .await?;
    tracing::info!("tenant {tenant}: resumed by the postmaster");
    Ok(Json(serde_json::json!({"suspended": null})))
}

#[derive(Debug, Deserialize)]
struct QueueSelection {
    queue_id: Option<String>,
    #[serde(default)]
    all: bool,
}

/// Hold, release, delete or flush queued messages (admin token only). A
/// message being delivered at that moment is waited for, then claimed from
/// the scheduler while it changes.
async fn queue_change(
    State(app): State<AppState>,
    Path(action): Path<String>,
    headers: HeaderMap,
    Json(sel): Json<QueueSelection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&app, &headers)?;
    let Some(action) = Action::parse(&action) else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no queue action {action:?} (hold, release, delete, flush)"),
        ));
    };
    let store = app.ctx.store.clone();
    let entries = tokio::task::spawn_blocking(move || {
        crate::queue::admin::select(&store, sel.queue_id.as_deref(), sel.all)
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
    .map_err(|e| match e {
        QueueAdminError::NotFound(_) => ApiError(StatusCode::NOT_FOUND, "not_found", e.to_string()),
        QueueAdminError::Selection => {
            ApiError(StatusCode::UNPROCESSABLE_ENTITY, "selection", e.to_string())
        }
        QueueAdminError::Store(_) => {
            ApiError(StatusCode::SERVICE_UNAVAILABLE, "store", e.to_string())
        }
    })?;
    let mut changed = Vec::new();
    for entry in entries {
        let id = entry.id;
        // Wait (up to a minute) for a delivery of this message to end.
        let mut waited = 0;
        while !app.ctx.in_flight.claim(&id) {
            // A message parked for its destination's lane is not being
            // delivered: its claim passes to the postmaster.
            if app
                .ctx
                .lanes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .unpark(&id)
            {
                break;
            }
            if waited >= 3000 {
                return Err(ApiError(
                    StatusCode::CONFLICT,
                    "busy",
                    format!("{id} is being delivered; try again"),
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            waited += 1;
        }
        let store = app.ctx.store.clone();
        let i = id.clone();
        let result =
            tokio::task::spawn_blocking(move || crate::queue::admin::apply(&store, &i, action))
                .await;
        app.ctx.in_flight.release(&id);
        match result {
            Ok(Ok(true)) => changed.push(id),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                return Err(ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store",
                    e.to_string(),
                ))
            }
            Err(e) => {
                return Err(ApiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    e.to_string(),
                ))
            }
        }
    }
    if matches!(action, Action::Release | Action::Flush) {
        app.ctx.request_scan();
    }
    Ok(Json(
        serde_json::json!({"action": action, "changed": changed}),
    ))
}

/// Lets only the daemon's admin token through.
fn require_admin(app: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if bearer(headers).is_some_and(|t| app.is_admin(&sha256_hex(&t))) {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this needs the daemon's admin token".into(),
        ))
    }
}

async fn webhook_retry(
    State(app): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&app, &headers)?;
    let store = app.ctx.store.clone();
    let t = tenant.clone();
    blocking(move || Ok(crate::webhooks::retry_now(&store, &t)?)).await?;
    Ok(Json(serde_json::json!({"tenant": tenant, "retry": "now"})))
}

/// The egress paths of this node: open connections, waiting recipients,
/// suspensions and throttles (admin token only).
async fn shaping_status(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&app, &headers)?;
    let now = crate::values::clock::now_millis();
    let config = app.ctx.settings().config.clone();
    let per_domain = u32::try_from(config.delivery.max_connections_per_domain).unwrap_or(u32::MAX);
    let store = app.ctx.store.clone();
    let shaping = config.shaping.clone();
    let warmups =
        blocking(move || Ok(crate::shaping::warmup::status(&store, &shaping, now)?)).await?;
    let sources = config.egress_sources();
    let mut paths = serde_json::to_value(app.ctx.shaper.status(&config.shaping, per_domain, now))
        .unwrap_or_default();
    // Each path of a source on warm-up shows its day, and today's count and cap.
    for p in paths.as_array_mut().into_iter().flatten() {
        let source = p["source"].as_str().unwrap_or_default().to_string();
        let provider = p["provider"].as_str().unwrap_or_default().to_string();
        if let Some(w) = warmups
            .iter()
            .find(|w| w.kind == "source" && w.name == source)
        {
            if let Some((used, cap)) = w.today.get(&provider) {
                p["warmup"] = serde_json::json!({"day": w.day, "used": used, "cap": cap});
            }
        }
    }
    Ok(Json(serde_json::json!({
        "sources": sources,
        "paths": paths,
        "warmups": warmups,
    })))
}

#[derive(Debug, Deserialize)]
struct ShapingChange {
    /// A provider's name, or `default:DOMAIN`.
    path: String,
    /// The egress source; absent: every source of the node.
    source: Option<String>,
    /// Seconds, for a suspension; absent: until resumed.
    duration: Option<u64>,
    reason: Option<String>,
}

/// Suspends a path for a time, or resumes one (admin token only): what a
/// postmaster does when a provider's postmaster desk asks them to pause.
async fn shaping_change(
    State(app): State<AppState>,
    Path(action): Path<String>,
    headers: HeaderMap,
    Json(change): Json<ShapingChange>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&app, &headers)?;
    let invalid = |m: String| ApiError(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m);
    let config = app.ctx.settings().config.clone();
    let sources: Vec<String> = config
        .egress_sources()
        .into_iter()
        .map(|s| s.name)
        .collect();
    let text = change.path.trim();
    // `mta2/google` names its source; --source names one; else every source.
    let named = text.split_once('/').map(|(s, _)| s.to_string());
    let chosen: Vec<String> = match named.or(change.source.clone()) {
        Some(source) if sources.contains(&source) => vec![source],
        Some(source) => {
            return Err(invalid(format!(
                "no egress source {source:?} (this node's: {})",
                sources.join(", ")
            )))
        }
        None => sources.clone(),
    };
    let path = crate::shaping::PathId::parse(text, &chosen[0]);
    let known = path
        .domain
        .as_deref()
        .is_some_and(crate::values::address::is_domain)
        || (path.domain.is_none() && config.shaping.provider(&path.provider).is_some());
    if !known {
        return Err(invalid(format!(
            "{:?} is no provider of the shaping file, nor default:DOMAIN",
            change.path
        )));
    }
    let paths: Vec<crate::shaping::PathId> = chosen
        .iter()
        .map(|source| crate::shaping::PathId {
            source: source.clone(),
            ..path.clone()
        })
        .collect();
    let names: Vec<String> = paths.iter().map(ToString::to_string).collect();
    let now = crate::values::clock::now_millis();
    match action.as_str() {
        "suspend" => {
            if change.duration == Some(0) {
                return Err(invalid(
                    "a suspension's duration is at least 1 second".into(),
                ));
            }
            // Absent: until resumed (a hundred years).
            let duration = change.duration.unwrap_or(100 * 365 * 86_400);
            let reason = change
                .reason
                .filter(|r| !r.trim().is_empty())
                .ok_or_else(|| invalid("a suspension needs a reason".into()))?;
            let until = now + duration.saturating_mul(1000);
            for p in &paths {
                app.ctx.shaper.suspend(p, until, &reason, now);
                tracing::info!(
                    service = "shaping",
                    "path {p}: suspended by the postmaster until {} ({reason})",
                    until / 1000
                );
            }
            app.ctx.save_shaping_holds().await;
            Ok(Json(serde_json::json!({
                "path": path.to_string(), "paths": names, "sources": chosen,
                "suspended_until": until / 1000, "reason": reason,
            })))
        }
        "resume" => {
            let reason = change.reason.unwrap_or_default();
            let mut n = 0;
            for p in &paths {
                let held = app.ctx.shaper.resume(p, now);
                tracing::info!(
                    service = "shaping",
                    "path {p}: resumed by the postmaster ({held} held) {reason}"
                );
                n += held;
            }
            app.ctx.save_shaping_holds().await;
            // What waited for the path may go at once.
            app.ctx.request_scan();
            Ok(Json(serde_json::json!({
                "path": path.to_string(), "paths": names, "sources": chosen, "resumed": n,
            })))
        }
        other => Err(ApiError(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no shaping action {other:?} (suspend, resume)"),
        )),
    }
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The OpenAPI document names exactly the routes of [`ROUTES`].
    #[test]
    fn the_openapi_document_matches_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let mut documented = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            if path == "/api/v1/openapi.json" {
                continue;
            }
            for method in item.as_object().unwrap().keys() {
                if method != "parameters" {
                    documented.push((method.clone(), path.clone()));
                }
            }
        }
        documented.sort();
        let mut routes: Vec<_> = ROUTES
            .iter()
            .chain(ADMIN_ROUTES)
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        routes.sort();
        assert_eq!(documented, routes);
    }
}
