//! A tenant's message on the submission listeners: checked against the
//! tenant's policy, filtered by the mailing's soft-bounce level, given its
//! trace and missing headers, and queued with its tracking record, events
//! and counts in one durable write.

use std::time::Instant;

use tracing::{info, warn};

use super::{Client, Envelope, Outcome, Ready, Rejection, TempFailure};
use crate::config::{TenantConfig, UnsubscribeMode};
use crate::consent::{normalize_address, Contact};
use crate::policy::{self, MessageView, TenantPolicy, Verdict};
use crate::runtime::{Context, Settings};
use crate::store::queue::{QueueEntry, Recipient, Tracking};
use crate::values::ListenerKind;

/// What a submission listener hands over at the end of DATA.
pub struct Submission<'a> {
    /// The tenant (from AUTH or `trusted_networks`); None if nobody authenticated.
    pub tenant: Option<&'a str>,
    pub listener: ListenerKind,
    pub client: &'a Client,
    pub envelope: Envelope,
    /// The message with CRLF line ends (the SMTP reader normalised them).
    pub message: Vec<u8>,
}

/// Checks and queues a submitted message.
pub async fn accept(ctx: &Context, settings: &Settings, s: Submission<'_>) -> Outcome {
    let started = Instant::now();
    let id = crate::values::queue_id::new_queue_id();
    if let Err(outcome) = super::first_checks(ctx, settings, &id, s.client, &s.message) {
        return outcome;
    }
    let Some(tenant) = s.tenant else {
        return Outcome::Rejected(Rejection::NotAuthenticated);
    };
    let Some(policy) = settings.policies.get(tenant) else {
        return Outcome::TempFailure(TempFailure::TenantGone);
    };
    let now = crate::values::now();
    let view = MessageView::parse(&s.message);
    let skip_level = match view.skip_soft_bounces.as_deref().map(str::parse::<u32>) {
        None => None,
        Some(Ok(n)) if n >= 1 => Some(n),
        Some(_) => return Outcome::Rejected(Rejection::BadSkipLevel),
    };
    let rcpts: Vec<String> = s
        .envelope
        .recipients
        .iter()
        .map(|r| r.address.clone())
        .collect();
    let verdict =
        match policy::check_message(policy, &view, &rcpts, &ctx.store, Some(&ctx.sender_auth)) {
            Ok(v) => v,
            Err(e) => {
                warn!("{id}: consent look-up failed: {e}");
                return Outcome::TempFailure(TempFailure::ConsentLookup);
            }
        };
    for w in verdict.warnings() {
        warn!(
            "{id}: warn: policy: {}: {}; tenant={tenant}",
            w.code, w.detail
        );
    }
    if verdict.is_reject() {
        record_rejection(ctx, settings, tenant, &s, &view, &rcpts, &verdict, now);
        return Outcome::Rejected(Rejection::Policy(verdict));
    }
    let mut envelope = s.envelope;
    let mut message = s.message;
    let mut skipped = Vec::new();
    if let Some(level) = skip_level {
        let window = TenantConfig::soft_bounce_window_of(settings.config.tenant(tenant));
        let list = policy.list_of(&view).unwrap_or_default();
        let (kept, skips) =
            match by_bounce_level(ctx, tenant, &list, envelope.recipients, level, now, window) {
                Ok(split) => split,
                Err(why) => {
                    warn!("{id}: consent look-up failed: {why}");
                    return Outcome::TempFailure(TempFailure::ConsentLookup);
                }
            };
        if kept.is_empty() {
            warn!(
                "NOQUEUE: reject: END-OF-MESSAGE from [{}]: 550 5.7.1 policy: recipient.bounce_level; from=<{}> tenant={tenant}",
                s.client.ip, envelope.sender
            );
            return Outcome::Rejected(Rejection::BounceLevel { level });
        }
        envelope.recipients = kept;
        skipped = skips;
        // The instruction is for us and is not passed on.
        message = crate::message::strip_headers(&message, &["x-postwarden-skip-soft-bounces"]);
    }
    let hostname = &settings.config.server.hostname;
    let rcpts: Vec<String> = envelope
        .recipients
        .iter()
        .map(|r| r.address.clone())
        .collect();
    let mut headers = super::received_header(s.client, hostname, &id, &rcpts);
    if view.message_id.is_none() {
        headers.push_str(&format!("Message-ID: <{id}@{hostname}>\r\n"));
    }
    if !view.has_date {
        headers.push_str(&format!(
            "Date: {}\r\n",
            crate::values::clock::rfc2822_now()
        ));
    }
    let stored = crate::message::prepend_headers(&headers, &message);
    let message_id = view
        .message_id
        .clone()
        .unwrap_or_else(|| format!("<{id}@{hostname}>"));
    let ready = ready(
        &id,
        tenant,
        policy,
        &view,
        envelope,
        s.client,
        stored,
        &message_id,
        &skipped,
        now,
    );
    if let Err(e) = ctx.store.commit(ready.ops()).await {
        return Outcome::TempFailure(super::store_failure(&id, &e));
    }
    log_queued(&ready, s.client, tenant, &skipped, skip_level);
    ctx.store.pending_counts().add(tenant, |c| c.submitted += 1);
    ready.hand_over(ctx);
    crate::metrics::accepted(s.listener.name(), started.elapsed().as_secs_f64());
    Outcome::Queued { id }
}

/// The log line, metrics, event and tenant counts of a policy rejection.
#[allow(clippy::too_many_arguments)]
fn record_rejection(
    ctx: &Context,
    settings: &Settings,
    tenant: &str,
    s: &Submission<'_>,
    view: &MessageView,
    rcpts: &[String],
    verdict: &Verdict,
    now: u64,
) {
    let codes: Vec<&str> = verdict.rejections().map(|r| r.code).collect();
    for code in &codes {
        crate::metrics::rejected(code);
    }
    warn!(
        "NOQUEUE: reject: END-OF-MESSAGE from [{}]: 550 5.7.1 policy: {}; from=<{}> tenant={tenant} message-id={}",
        s.client.ip,
        codes.join(","),
        s.envelope.sender,
        view.message_id.as_deref().unwrap_or("")
    );
    let event = serde_json::json!({
        "type": "policy_rejected",
        "at": now,
        "tenant": tenant,
        "reasons": codes,
        "message_id": view.message_id,
        "recipients": rcpts,
    });
    let config = settings.config.tenant(tenant);
    let result = crate::tenant::record_checked(&ctx.store, tenant, config, Some(event), |t| {
        t.policy_rejected += 1;
        for code in &codes {
            *t.rejected_by_reason.entry(code.to_string()).or_default() += 1;
        }
        let window = TenantConfig::suspension_window_of(config);
        t.today(now, window, |d| d.policy_rejected += 1);
    });
    if let Err(e) = result {
        warn!("cannot record policy rejection: {e}");
    }
}

/// The recipients a bounce level keeps, and the (address, soft bounces) it skips.
type BounceLevelSplit = (Vec<Recipient>, Vec<(String, u32)>);

/// The mailing's own restriction by bounce level: recipients with at least
/// `level` soft bounces within `window` are skipped. Returns the kept
/// recipients and the skipped (address, soft bounces).
fn by_bounce_level(
    ctx: &Context,
    tenant: &str,
    list: &str,
    recipients: Vec<Recipient>,
    level: u32,
    now: u64,
    window: u64,
) -> Result<BounceLevelSplit, crate::store::StoreError> {
    let mut kept = Vec::new();
    let mut skipped = Vec::new();
    for r in recipients {
        let address = normalize_address(&r.address);
        let contact = ctx.store.contact::<Contact>(tenant, list, &address)?;
        let soft = contact.map_or(0, |c| c.soft_bounce_level(now, window));
        if soft >= level {
            skipped.push((address, soft));
        } else {
            kept.push(r);
        }
    }
    Ok((kept, skipped))
}

/// The queue entry, tracking record and events of an accepted message.
#[allow(clippy::too_many_arguments)]
fn ready(
    id: &str,
    tenant: &str,
    policy: &TenantPolicy,
    view: &MessageView,
    envelope: Envelope,
    client: &Client,
    stored: Vec<u8>,
    message_id: &str,
    skipped: &[(String, u32)],
    now: u64,
) -> Ready {
    let flags = envelope.flags;
    let mut entry = QueueEntry::new(
        id.to_string(),
        tenant,
        &envelope.sender,
        envelope.recipients,
        now,
    );
    entry.size = stored.len();
    entry.message_id = Some(message_id.to_string());
    entry.env_id = envelope.env_id;
    entry.ret_full = flags & smtp_proto::MAIL_RET_FULL != 0;
    entry.smtputf8 = flags & smtp_proto::MAIL_SMTPUTF8 != 0;
    entry.eight_bit = flags & smtp_proto::MAIL_BODY_8BITMIME != 0;
    entry.per_recipient_copies = policy.unsubscribe_mode == UnsubscribeMode::Managed;
    entry.list = policy.list_of(view);
    entry.client_ip = client.ip.to_string();
    entry.sender_domain = policy.sender_domain_of(view);
    let tracking = Tracking {
        tenant: tenant.to_string(),
        list: entry.list.clone(),
        recipients: entry
            .recipients
            .iter()
            .map(|r| normalize_address(&r.address))
            .collect(),
        message_id: Some(message_id.to_string()),
        at: now,
        sender_domain: entry.sender_domain.clone(),
    };
    let mut events = vec![serde_json::json!({
        "type": "queued", "at": now, "tenant": tenant, "queue_id": id,
        "message_id": message_id, "recipients": entry.recipients.len(),
    })];
    for (address, soft) in skipped {
        events.push(serde_json::json!({
            "type": "skipped", "at": now, "tenant": tenant, "queue_id": id,
            "message_id": message_id, "recipient": address,
            "reason": "bounce_level", "soft_bounces": soft,
        }));
    }
    Ready {
        entry,
        message: stored,
        tracking: Some(tracking),
        events,
    }
}

/// The log lines of a queued message, as Postfix's smtpd, cleanup and qmgr write them.
fn log_queued(
    ready: &Ready,
    client: &Client,
    tenant: &str,
    skipped: &[(String, u32)],
    skip_level: Option<u32>,
) {
    let entry = &ready.entry;
    let id = &entry.id;
    for (address, soft) in skipped {
        info!(
            "{id}: skipped <{address}>: {soft} soft bounce(s), the mailing skips {} or more",
            skip_level.unwrap_or_default()
        );
    }
    let sasl = if client.authenticated { tenant } else { "" };
    info!("{id}: client=[{}], sasl_username={sasl}", client.ip);
    info!(
        service = "cleanup",
        "{id}: message-id={}",
        entry.message_id.as_deref().unwrap_or_default()
    );
    info!(
        service = "qmgr",
        "{id}: from=<{}>, size={}, nrcpt={} (queue active)",
        entry.sender,
        entry.size,
        entry.recipients.len()
    );
}
