//! Webhooks: each tenant's events, in order, POSTed to its `webhook_url`.
//!
//! The outbox is the spool's event log itself (durable, time-ordered) plus a
//! per-tenant place in it, so nothing is lost across restarts and mail flow
//! never waits for a CRM. A failed POST is retried with backoff; an event
//! that could not be delivered for a day is given up (logged and counted),
//! so that one dead receiver cannot hold a tenant's stream for ever.
//!
//! Each request carries `X-Postwarden-Signature: t=UNIX,v1=HEX` where HEX is
//! HMAC-SHA256(webhook_secret, "UNIX.BODY") (the Stripe scheme: the time in
//! the MAC stops replays), and `X-Postwarden-Event-Id`, stable across retries.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tracing::warn;

use crate::config::{Config, TenantConfig};
use crate::runtime::Context;
use crate::store::{Store, StoreError};

/// Events older than this are given up when they still cannot be delivered.
const GIVE_UP_AFTER: u64 = 86_400;
/// Longest wait between retries.
const MAX_BACKOFF: u64 = 600;
/// Events read from the log per pass.
const BATCH: usize = 500;

pub use crate::store::WebhookState;

use crate::token::{hex, unhex};

/// The signature header value for `body` sent at `t`.
pub fn signature(secret: &str, t: u64, body: &[u8]) -> String {
    // HMAC takes keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex(&mac.finalize().into_bytes()))
}

/// The unix seconds of an event key (microseconds first, big-endian).
fn key_time(key: &[u8]) -> u64 {
    crate::store::keys::event_time(key).unwrap_or(0)
}

/// Backoff after `failures` failures in a row: `base` seconds, doubling, at
/// most ten minutes.
fn backoff(base: u64, failures: u32) -> u64 {
    base.max(1)
        .saturating_mul(1 << failures.saturating_sub(1).min(10))
        .min(MAX_BACKOFF)
}

/// The shared lock id of the webhook dispatcher.
const DISPATCHER_LOCK_ID: i64 = 2;

/// Runs until aborted: one pass over every tenant with a webhook, then a
/// short sleep (or sooner when woken). In a fleet the event log is shared,
/// so only the node that holds the dispatcher lock posts (each event once);
/// when it goes, another takes the lock and goes on from the shared cursors.
pub async fn run(ctx: Arc<Context>) {
    let mut lease: Option<Box<dyn crate::store::shared::HeldLock>> = None;
    loop {
        let store = ctx.store.clone();
        let held = lease.take();
        let had = held.is_some();
        lease = tokio::task::spawn_blocking(move || match held {
            Some(l) if l.alive() => Some(l),
            _ => store
                .try_shared_lock(DISPATCHER_LOCK_ID)
                .unwrap_or_else(|e| {
                    warn!("webhooks: cannot take the dispatcher lock: {e}");
                    None
                }),
        })
        .await
        .unwrap_or(None);
        match (had, lease.is_some()) {
            (false, true) if ctx.store.in_fleet() => {
                tracing::info!("webhooks: this node posts the fleet's webhooks")
            }
            (true, false) => warn!("webhooks: lost the dispatcher lock"),
            _ => {}
        }
        if lease.is_none() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let config = ctx.settings().config.clone();
        for (name, tenant) in &config.tenants {
            if tenant.webhook_url.is_some() {
                if let Err(e) = pass(&ctx.store, &config, name, tenant).await {
                    warn!("webhooks for {name}: {e}");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Delivers what is due for one tenant, in order, stopping at the first
/// failure.
async fn pass(
    store: &Store,
    config: &Config,
    name: &str,
    tenant: &TenantConfig,
) -> Result<(), StoreError> {
    let (Some(url), Some(secret)) = (&tenant.webhook_url, &tenant.webhook_secret) else {
        return Ok(());
    };
    let now = crate::values::now();
    let mut state: WebhookState = store.webhook_state(name)?.unwrap_or_default();
    if state.next_attempt > now {
        return Ok(());
    }
    let cursor = state.cursor.as_deref().and_then(unhex);
    let events = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.events_after(cursor.as_deref(), BATCH))
            .await
            .map_err(|e| StoreError::Write(e.to_string()))??
    };
    let mut changed = false;
    for (key, event) in events {
        let id = hex(&key);
        if event.get("tenant").and_then(|t| t.as_str()) != Some(name) {
            state.cursor = Some(id);
            changed = true;
            continue;
        }
        let mut body = event.clone();
        if let Some(map) = body.as_object_mut() {
            map.insert("id".into(), serde_json::Value::String(id.clone()));
        }
        let body = serde_json::to_vec(&body).unwrap_or_default();
        match post(url, secret, &id, &body, &config.server.hostname).await {
            Ok(()) => {
                state.cursor = Some(id);
                state.delivered += 1;
                state.failures = 0;
                state.last_error = None;
                changed = true;
            }
            Err(e) => {
                let age = now.saturating_sub(key_time(&key));
                if age > GIVE_UP_AFTER {
                    warn!("webhook {name}: event {id} given up after a day: {e}");
                    state.cursor = Some(id);
                    state.given_up += 1;
                    state.failures = 0;
                } else {
                    state.failures += 1;
                    let wait = backoff(tenant.webhook_retry_base, state.failures);
                    state.next_attempt = now + wait;
                    warn!("webhook {name}: {url}: {e}; retry in {wait} s");
                }
                state.last_error = Some(e);
                changed = true;
                break;
            }
        }
    }
    if changed {
        store
            .commit(vec![Store::put_webhook_state_op(name, &state)])
            .await?;
    }
    Ok(())
}

/// One POST; Ok on any 2xx.
async fn post(
    url: &str,
    secret: &str,
    id: &str,
    body: &[u8],
    host_name: &str,
) -> Result<(), String> {
    use hyper::header::{HeaderName, CONTENT_TYPE, USER_AGENT};
    let t = crate::values::now();
    let headers = [
        (CONTENT_TYPE, "application/json".to_string()),
        (USER_AGENT, format!("postwarden ({host_name})")),
        (
            HeaderName::from_static("x-postwarden-event-id"),
            id.to_string(),
        ),
        (
            HeaderName::from_static("x-postwarden-signature"),
            signature(secret, t, body),
        ),
    ];
    let reply =
        crate::http_client::post(url, &headers, body.to_vec(), Duration::from_secs(30)).await?;
    if reply.status.is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", reply.status))
    }
}

/// What `postwarden webhooks list` shows per tenant with a webhook.
pub fn status(store: &Store, config: &Config) -> Result<Vec<serde_json::Value>, StoreError> {
    let mut out = Vec::new();
    for (name, tenant) in &config.tenants {
        let Some(url) = &tenant.webhook_url else {
            continue;
        };
        let state: WebhookState = store.webhook_state(name)?.unwrap_or_default();
        let cursor = state.cursor.as_deref().and_then(unhex);
        let backlog = store
            .events_after(cursor.as_deref(), 100_000)?
            .iter()
            .filter(|(_, e)| e.get("tenant").and_then(|t| t.as_str()) == Some(name))
            .count();
        out.push(serde_json::json!({
            "tenant": name, "url": url, "backlog": backlog, "delivered": state.delivered,
            "given_up": state.given_up, "failures": state.failures,
            "next_attempt": state.next_attempt, "last_error": state.last_error,
        }));
    }
    Ok(out)
}

/// Clears a tenant's backoff so the next pass tries at once.
pub fn retry_now(store: &Store, tenant: &str) -> Result<(), StoreError> {
    let mut state: WebhookState = store.webhook_state(tenant)?.unwrap_or_default();
    state.next_attempt = 0;
    state.failures = 0;
    store.commit_blocking(vec![Store::put_webhook_state_op(tenant, &state)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_of_time_dot_body() {
        let s = signature("k", 1700000000, b"{}");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"k").unwrap();
        mac.update(b"1700000000.{}");
        assert_eq!(
            s,
            format!("t=1700000000,v1={}", hex(&mac.finalize().into_bytes()))
        );
    }

    #[test]
    fn backoff_grows_to_ten_minutes() {
        assert_eq!(backoff(5, 1), 5);
        assert_eq!(backoff(5, 2), 10);
        assert_eq!(backoff(5, 30), 600);
        assert_eq!(unhex(&hex(&[0, 1, 255])), Some(vec![0, 1, 255]));
    }
}
