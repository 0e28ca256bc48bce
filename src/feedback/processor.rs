//! The feedback processor: reads the inbound messages from the spool,
//! attributes each to a sent message through its signed VERP token or
//! tracking header, and updates counters and suppression. The inbound message
//! is removed in the same write as its effects, so a crash in between neither
//! loses it nor counts it twice.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::classify::{BounceClass, Classification};
use super::report::{self, FeedbackReport, ReportKind};
use super::MailboxKind;
use crate::config::Config;
use crate::consent::{normalize_address, Suppression};
use crate::runtime::Context;
use crate::store::queue::{InboundItem, Tracking};
use crate::store::{Op, Store, StoreError};

/// Processes inbound feedback until the task is aborted.
pub async fn run(ctx: Arc<Context>) {
    loop {
        let settings = ctx.settings();
        let store = ctx.store.clone();
        let config = settings.config.clone();
        let secret = ctx.secret.clone();
        let result =
            tokio::task::spawn_blocking(move || process_all(&store, &config, &secret)).await;
        match result {
            Ok(Err(e)) => warn!("feedback processing failed: {e}"),
            Err(e) => warn!("feedback processing stopped: {e}"),
            Ok(Ok(_)) => {}
        }
        tokio::select! {
            _ = ctx.inbound.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// Processes every stored inbound message; returns how many.
pub fn process_all(store: &Store, config: &Config, secret: &[u8]) -> Result<usize, StoreError> {
    let items = store.inbound_items()?;
    for item in &items {
        let raw = store.message(&item.id)?.unwrap_or_default();
        let _guard = crate::consent::lock(store)?;
        // Anyone on the Internet writes these messages. Should a parser panic
        // on one (fuzzing found a mail-parser assertion), the message is set
        // aside for the postmaster instead of blocking every report behind it.
        let processed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            process(store, config, secret, item, &raw)
        }));
        let mut ops = match processed {
            Ok(result) => result?,
            Err(_) => {
                tracing::error!(
                    "{}: the feedback parser failed on this message: kept for the postmaster (`postwarden abuse show {}`), nothing counted",
                    item.id,
                    item.id
                );
                vec![Store::abuse_case_op(
                    &item.id,
                    &AbuseCase::received(item, &raw, "postmaster", "unparsable"),
                )]
            }
        };
        ops.extend(Store::remove_inbound_ops(&item.id));
        store.commit_blocking(ops)?;
    }
    Ok(items.len())
}

pub fn secret(store: &Store, config: &Config) -> Result<Vec<u8>, StoreError> {
    match &config.server.secret {
        Some(s) => Ok(s.as_bytes().to_vec()),
        None => store.secret(),
    }
}

/// The writes one inbound message causes (without its removal).
fn process(
    store: &Store,
    config: &Config,
    secret: &[u8],
    item: &InboundItem,
    raw: &[u8],
) -> Result<Vec<Op>, StoreError> {
    let id = &item.id;
    let report = report::parse(raw);
    let mut ops = Vec::new();
    for rcpt in &item.recipients {
        let Some((local, _)) = rcpt.rsplit_once('@') else {
            continue;
        };
        match super::mailbox_kind(local, &config.feedback) {
            Some(MailboxKind::Bounce(token)) => {
                let Some((qid, index)) = crate::token::verify_verp(secret, &token) else {
                    warn!(
                        "{id}: bounce to <{rcpt}> with a VERP token that does not verify: ignored"
                    );
                    continue;
                };
                ops.extend(bounce(
                    store, config, id, secret, &qid, index, &report, raw,
                )?);
            }
            Some(mailbox @ (MailboxKind::FeedbackLoop | MailboxKind::Abuse)) => {
                let kind = if report.kind == ReportKind::Arf {
                    "arf"
                } else {
                    "abuse"
                };
                let (complaint_ops, attributed) =
                    complaint(store, config, id, secret, &report, raw, kind)?;
                ops.extend(complaint_ops);
                // Every report is kept for the abuse desk, attributed or not.
                let mut case = AbuseCase::received(
                    item,
                    raw,
                    if mailbox == MailboxKind::Abuse {
                        "abuse"
                    } else {
                        "fbl"
                    },
                    kind,
                );
                case.feedback_type = report.feedback_type.clone();
                if let Some((tenant, recipient, queue_id)) = attributed {
                    case.tenant = Some(tenant);
                    case.recipient = Some(recipient);
                    case.queue_id = Some(queue_id);
                }
                ops.push(Store::abuse_case_op(id, &case));
            }
            Some(MailboxKind::Unsubscribe(token)) => {
                ops.extend(mailto_unsubscribe(store, id, secret, &token)?);
            }
            Some(MailboxKind::Postmaster) | None => {
                info!("{id}: message to <{rcpt}> kept for the postmaster");
            }
        }
    }
    Ok(ops)
}

pub fn tracked(
    store: &Store,
    qid: &str,
    index: usize,
) -> Result<Option<(Tracking, String)>, StoreError> {
    let Some(t) = store.tracking::<Tracking>(qid)? else {
        return Ok(None);
    };
    let Some(addr) = t.recipients.get(index).cloned() else {
        return Ok(None);
    };
    Ok(Some((t, addr)))
}

#[allow(clippy::too_many_arguments)]
fn bounce(
    store: &Store,
    config: &Config,
    id: &str,
    secret: &[u8],
    qid: &str,
    index: usize,
    report: &FeedbackReport,
    raw: &[u8],
) -> Result<Vec<Op>, StoreError> {
    let Some((tracking, address)) = tracked(store, qid, index)? else {
        warn!("{id}: bounce for {qid} recipient {index}, which is no longer tracked: ignored");
        return Ok(Vec::new());
    };
    if store.feedback_seen("bounce", qid, index)? {
        // A replayed or repeated report: one bounce per recipient and message.
        warn!("{id}: bounce for <{address}> ({qid}) was counted before: ignored");
        return Ok(Vec::new());
    }
    // The VERP address names the recipient; the report's own recipient line
    // may be rewritten by forwarding, so the token wins.
    let (class, reason, status) = match report
        .recipients
        .iter()
        .find(|r| r.recipient == address)
        .or(report.recipients.first())
    {
        Some(r) => (r.class, r.reason, r.status.clone()),
        None => (BounceClass::Unknown, "other", String::new()),
    };
    let action = report
        .recipients
        .iter()
        .find(|r| r.recipient == address)
        .or(report.recipients.first())
        .and_then(|r| r.action.clone());
    if matches!(
        action.as_deref(),
        Some("delayed") | Some("delivered") | Some("relayed") | Some("expanded")
    ) || class == BounceClass::Unknown
    {
        info!(
            "{id}: {:?} report for <{address}> ({qid}): not a bounce",
            report.kind
        );
        return Ok(Vec::new());
    }
    let Some(settings) = config.tenant(&tracking.tenant) else {
        return Ok(Vec::new());
    };
    let (mut ops, suppressed) = super::bounce::bounce_ops(
        store,
        &tracking.tenant,
        settings,
        tracking.list.as_deref(),
        &address,
        Classification {
            class,
            reason,
            rule: "",
        },
        "dsn",
        report.diagnostic.as_deref().unwrap_or(&status),
    )?;
    ops.push(Store::feedback_seen_op("bounce", qid, index));
    ops.push(Store::event_op(&serde_json::json!({
        "type": "bounced", "at": crate::values::now(), "tenant": tracking.tenant, "queue_id": qid,
        "recipient": address, "class": class, "reason": reason, "status": status, "source": "dsn",
    })));
    info!(
        "{id}: bounce for {qid}: to=<{address}>, class={class:?}, reason={reason}, status={status}{}",
        if suppressed { " (suppressed)" } else { "" }
    );
    let hard = class == BounceClass::Hard;
    crate::metrics::bounce(if hard { "hard" } else { "soft" });
    if let Err(e) = crate::tenant::record(store, &tracking.tenant, None, |s| {
        s.bounced += 1;
        if hard {
            s.hard_bounces += 1;
        } else {
            s.soft_bounces += 1;
        }
    }) {
        warn!("{id}: cannot count the bounce: {e}");
    }
    // A bounce that comes back later (a DSN, not a refusal at delivery)
    // counts for the warm-ups of its day as a refusal would.
    let text = returned_headers(report, raw);
    let now_ms = crate::values::clock::now_millis();
    count_for_warm_ups(
        store,
        id,
        &tracking,
        &text,
        secret,
        qid,
        index,
        (1, 0),
        now_ms,
    );
    Ok(ops)
}

/// Counts (bounced, complained) for the warm-ups a tracked copy belongs
/// to: its sender domain's, and its egress source's when the returned
/// headers carry a verified source mark. A lost count costs a statistic.
#[allow(clippy::too_many_arguments)]
fn count_for_warm_ups(
    store: &Store,
    id: &str,
    tracking: &Tracking,
    text: &str,
    secret: &[u8],
    qid: &str,
    index: usize,
    (bounced, complained): (u64, u64),
    now_ms: u64,
) {
    let warmups = crate::shaping::warmup::Warmups::default();
    let subjects = tracking
        .sender_domain
        .iter()
        .map(|domain| crate::shaping::warmup::Subject::Domain {
            tenant: tracking.tenant.clone(),
            domain: domain.clone(),
        })
        .chain(
            tracked_source(text, secret, qid, index).map(crate::shaping::warmup::Subject::Source),
        );
    for subject in subjects {
        if let Err(e) = warmups.record(store, &subject, bounced, complained, now_ms) {
            warn!("{id}: cannot count for the warm-up of {subject}: {e}");
        }
    }
}

/// The headers of the returned copy a report quotes, else the whole report
/// (some quote the copy as text): where the tracking header is looked for.
fn returned_headers(report: &FeedbackReport, raw: &[u8]) -> String {
    report
        .original_headers
        .clone()
        .unwrap_or_else(|| String::from_utf8_lossy(raw).into_owned())
}

/// The tracking token `QID-INDEX-MAC` of our header in a returned message.
fn tracking_token(text: &str) -> Option<String> {
    tracking_words(text).next().map(str::to_string)
}

/// The words of the tracking header: the token, then `source=NAME.MAC`
/// when a named egress source sent the copy.
fn tracking_words(text: &str) -> impl Iterator<Item = &str> {
    let rest = text
        .to_ascii_lowercase()
        .find("x-postwarden-tracking:")
        .map_or("", |pos| &text[pos + "x-postwarden-tracking:".len()..]);
    rest.split_whitespace().take(2)
}

/// The egress source the tracking header names for recipient `index` of
/// `qid`, if its mark verifies.
fn tracked_source(text: &str, secret: &[u8], qid: &str, index: usize) -> Option<String> {
    let mark = tracking_words(text).nth(1)?.strip_prefix("source=")?;
    crate::token::verify_source_mark(secret, qid, index, mark)
}

/// A complaint or abuse report as the abuse desk sees it (`postwarden abuse`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AbuseCase {
    pub id: String,
    pub at: u64,
    /// fbl or abuse: where it arrived.
    pub mailbox: String,
    /// arf or abuse (a person's forward).
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback_type: Option<String>,
    pub sender: String,
    pub client_ip: String,
    /// What the tracking header named, when it verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_id: Option<String>,
    /// The report as received (cut at 256 KiB).
    pub message: String,
}

impl AbuseCase {
    /// The case of an inbound message as received, attributed to nobody yet.
    fn received(item: &InboundItem, raw: &[u8], mailbox: &str, kind: &str) -> AbuseCase {
        AbuseCase {
            id: item.id.clone(),
            at: item.received_at,
            mailbox: mailbox.into(),
            kind: kind.into(),
            feedback_type: None,
            sender: item.sender.clone(),
            client_ip: item.client_ip.clone(),
            tenant: None,
            recipient: None,
            queue_id: None,
            message: String::from_utf8_lossy(&raw[..raw.len().min(MAX_CASE_BYTES)]).into_owned(),
        }
    }
}

const MAX_CASE_BYTES: usize = 256 * 1024;

/// The writes of a complaint, and whom it names: (tenant, address, queue id).
type Attributed = (Vec<Op>, Option<(String, String, String)>);

fn complaint(
    store: &Store,
    config: &Config,
    id: &str,
    secret: &[u8],
    report: &FeedbackReport,
    raw: &[u8],
    source: &str,
) -> Result<Attributed, StoreError> {
    let text = returned_headers(report, raw);
    let Some(token) = tracking_token(&text) else {
        warn!("{id}: {source} report without a tracking header: kept for the abuse desk, nobody suppressed");
        return Ok((Vec::new(), None));
    };
    let Some((qid, index)) = crate::token::verify_verp(secret, &token) else {
        warn!("{id}: {source} report with a tracking token that does not verify: kept for the abuse desk");
        return Ok((Vec::new(), None));
    };
    let Some((tracking, address)) = tracked(store, &qid, index)? else {
        warn!(
            "{id}: {source} report for {qid}, which is no longer tracked: kept for the abuse desk"
        );
        return Ok((Vec::new(), None));
    };
    let address = normalize_address(&address);
    if store.feedback_seen("complaint", &qid, index)? {
        // The same complaint again (a provider's duplicate, or a replay meant
        // to push the tenant over its complaint limit) counts once.
        warn!("{id}: complaint for <{address}> ({qid}) was counted before: not counted again");
        return Ok((Vec::new(), Some((tracking.tenant, address, qid))));
    }
    let now = crate::values::now();
    let record = Suppression {
        reason: "complaint".into(),
        at: now,
        source: source.into(),
        detail: report.feedback_type.clone(),
    };
    info!(
        "{id}: complaint ({}) for {qid}: <{address}> suppressed for {}",
        report.feedback_type.as_deref().unwrap_or(source),
        tracking.tenant
    );
    crate::metrics::complaint();
    // Counted for the tenant (and its automatic suspension) apart from the
    // suppression: a lost count costs a statistic, never a "no".
    let tenant_config = config.tenant(&tracking.tenant);
    let window = crate::config::TenantConfig::suspension_window_of(tenant_config);
    if let Err(e) =
        crate::tenant::record_checked(store, &tracking.tenant, tenant_config, None, |s| {
            s.complaints += 1;
            s.today(now, window, |d| d.complaints += 1);
        })
    {
        warn!("{id}: cannot count the complaint: {e}");
    }
    // A complaint of a warm-up's day (the sender domain's, the source's)
    // counts toward holding the day back.
    let now_ms = now.saturating_mul(1000);
    count_for_warm_ups(
        store,
        id,
        &tracking,
        &text,
        secret,
        &qid,
        index,
        (0, 1),
        now_ms,
    );
    let ops = vec![
        Store::feedback_seen_op("complaint", &qid, index),
        Store::put_suppression_op(&tracking.tenant, &address, &record),
        Store::event_op(&serde_json::json!({
            "type": "complained", "at": now, "tenant": tracking.tenant, "queue_id": qid,
            "recipient": address, "feedback_type": report.feedback_type, "source": source,
        })),
    ];
    Ok((ops, Some((tracking.tenant, address, qid))))
}

fn mailto_unsubscribe(
    store: &Store,
    id: &str,
    secret: &[u8],
    token: &str,
) -> Result<Vec<Op>, StoreError> {
    let Some((qid, index)) = crate::token::verify_recipient_token(secret, "unsubscribe", token)
    else {
        warn!("{id}: mailto unsubscribe with a token that does not verify: ignored");
        return Ok(Vec::new());
    };
    let Some((tracking, address)) = tracked(store, &qid, index)? else {
        warn!("{id}: mailto unsubscribe for {qid}, which is no longer tracked: ignored");
        return Ok(Vec::new());
    };
    info!(
        "{id}: mailto unsubscribe: <{address}> for {}",
        tracking.tenant
    );
    crate::tenant::count_unsubscribe(store, &tracking.tenant);
    crate::consent::unsubscribe_ops(
        store,
        &tracking.tenant,
        tracking.list.as_deref(),
        &address,
        true,
        "mailto",
        None,
        None,
    )
}
