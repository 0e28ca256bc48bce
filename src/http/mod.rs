//! The HTTP listener: unsubscribe and double opt-in pages, the admin JSON
//! API, and a health check.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;

mod answer;
pub mod api;
mod api_signup;
mod confirm;
pub mod form;
pub mod human;
mod limits;
pub mod pages;
mod subscribe;
mod unsubscribe;

use crate::runtime::Context;

/// The file in the spool that holds the daemon's admin API token.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub ctx: Arc<Context>,
    confirm_limits: Arc<limits::DailyLimiter>,
    /// SHA-256 (hex) of the admin token written to the spool at start.
    admin_token_sha256: Option<String>,
}

impl FromRef<AppState> for Arc<Context> {
    fn from_ref(app: &AppState) -> Arc<Context> {
        app.ctx.clone()
    }
}

impl AppState {
    /// Whether `hash` is the hash of the daemon's admin token.
    pub(crate) fn is_admin(&self, hash: &str) -> bool {
        self.admin_token_sha256
            .as_deref()
            .is_some_and(|a| crate::token::hash_matches(a, hash))
    }

    pub fn new(ctx: Arc<Context>, admin_token: Option<&str>) -> AppState {
        AppState {
            ctx,
            confirm_limits: Arc::new(limits::DailyLimiter::default()),
            admin_token_sha256: admin_token.map(api::sha256_hex),
        }
    }
}

pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route(
            "/u/{token}",
            get(unsubscribe::show).post(unsubscribe::apply),
        )
        .route(
            "/subscribe/{tenant}/{list}",
            post(subscribe::subscribe).options(form::preflight),
        )
        .route(
            "/subscribe/{tenant}/{list}/form",
            get(form::show)
                .post(subscribe::subscribe)
                .options(form::preflight),
        )
        .route(
            "/confirm/{token}",
            get(confirm::show).post(confirm::confirm),
        )
        .route("/metrics", get(metrics))
        .merge(api::routes(app.clone()))
        .with_state(app)
}

/// 200 "ok" while the spool answers and takes writes.
async fn healthz(State(ctx): State<Arc<Context>>) -> (StatusCode, String) {
    match ctx.store.healthy() {
        Ok(()) => (StatusCode::OK, "ok\n".into()),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("spool error: {e}\n"),
        ),
    }
}

/// Prometheus metrics, to the admin token or the configured metrics token.
async fn metrics(
    State(app): State<AppState>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let config = app.ctx.settings().config.clone();
    let hash = api::bearer(&headers).map(|t| api::sha256_hex(&t));
    let allowed = hash.is_some_and(|h| {
        app.is_admin(&h)
            || config
                .server
                .metrics_token_sha256
                .as_deref()
                .is_some_and(|m| crate::token::hash_matches(m, &h))
    });
    if !allowed {
        return (
            StatusCode::UNAUTHORIZED,
            "metrics need a bearer token (metrics_token_sha256 or the admin token)\n",
        )
            .into_response();
    }
    app.ctx.shaper.report(crate::values::clock::now_millis());
    let store = app.ctx.store.clone();
    match tokio::task::spawn_blocking(move || {
        let webhooks = crate::webhooks::status(&store, &config).unwrap_or_default();
        crate::metrics::render(&store, &webhooks)
    })
    .await
    {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Makes a fresh admin token and writes it to the spool, readable by the
/// spool's owner only; the CLI reads it to reach the running daemon.
pub fn write_admin_token(spool: &std::path::Path) -> std::io::Result<String> {
    use std::io::Write;
    let token = crate::token::random_hex(32);
    let path = spool.join(ADMIN_TOKEN_FILE);
    let tmp = spool.join(format!("{ADMIN_TOKEN_FILE}.tmp"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(&tmp)?;
    f.write_all(token.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(token)
}

/// Writes the admin token for the daemon starting now (see
/// [`write_admin_token`]); None, with a warning, if it cannot. Called before
/// any listener is bound, so that a client that reaches the daemon never
/// reads the token of an earlier run.
pub fn new_admin_token(spool: &std::path::Path) -> Option<String> {
    match write_admin_token(spool) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!(
                "cannot write the admin token to {}: {e}; admin commands need the daemon stopped",
                spool.display()
            );
            None
        }
    }
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    ctx: Arc<Context>,
    admin_token: Option<String>,
) {
    tracing::info!(
        "listening for http on {}",
        listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
    let app = router(AppState::new(ctx, admin_token.as_deref()))
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("http listener stopped: {e}");
    }
}
