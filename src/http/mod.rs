//! The HTTP listener: health check now; unsubscribe and confirmation pages,
//! the admin API and metrics as their issues land.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

mod unsubscribe;
use axum::Router;

use crate::smtp::server::ServerContext;

pub fn router(ctx: Arc<ServerContext>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route(
            "/u/{token}",
            get(unsubscribe::show).post(unsubscribe::apply),
        )
        .with_state(ctx)
}

/// 200 "ok" while the spool answers.
async fn healthz(State(ctx): State<Arc<ServerContext>>) -> (StatusCode, String) {
    match ctx.store.next_due() {
        Ok(_) => (StatusCode::OK, "ok\n".into()),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("spool error: {e}\n"),
        ),
    }
}

pub async fn serve(listener: tokio::net::TcpListener, ctx: Arc<ServerContext>) {
    tracing::info!(
        "listening for http on {}",
        listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
    let app = router(ctx).into_make_service_with_connect_info::<std::net::SocketAddr>();
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("http listener stopped: {e}");
    }
}
