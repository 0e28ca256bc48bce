//! Bounce counters per (tenant, address) and suppression at the limits.

use crate::config::TenantConfig;
use crate::consent::{normalize_address, ConsentState, Contact, Evidence, Suppression};
use crate::store::{Op, Store, StoreError};

use super::classify::{BounceClass, Classification};

/// Counts a failed delivery to `address` on `list`; suppresses the address
/// tenant-wide when the tenant's hard or soft limit is reached. Returns true
/// when it suppressed.
#[allow(clippy::too_many_arguments)]
pub fn record_bounce(
    store: &Store,
    tenant: &str,
    settings: &TenantConfig,
    list: Option<&str>,
    address: &str,
    classification: Classification,
    source: &str,
    detail: &str,
) -> Result<bool, StoreError> {
    let _guard = crate::consent::lock(store)?;
    let (ops, suppressed) = bounce_ops(
        store,
        tenant,
        settings,
        list,
        address,
        classification,
        source,
        detail,
    )?;
    store.commit_blocking(ops)?;
    Ok(suppressed)
}

/// The writes that [`record_bounce`] makes, for callers that commit them
/// together with other writes (the feedback processor removes the inbound
/// message in the same batch, so that a crash never counts a bounce twice).
#[allow(clippy::too_many_arguments)]
pub fn bounce_ops(
    store: &Store,
    tenant: &str,
    settings: &TenantConfig,
    list: Option<&str>,
    address: &str,
    classification: Classification,
    source: &str,
    detail: &str,
) -> Result<(Vec<Op>, bool), StoreError> {
    let address = normalize_address(address);
    let now = crate::consent::now();
    let list = list.unwrap_or("");
    let mut contact = store
        .contact::<Contact>(tenant, list, &address)?
        .unwrap_or_else(Contact::new);
    match classification.class {
        BounceClass::Hard => contact.hard_bounces += 1,
        BounceClass::Soft => contact.soft_bounces += 1,
        _ => return Ok((Vec::new(), false)),
    }
    // Policy blocks are not the recipient's fault (reputation, content): they
    // are counted but never suppress the address.
    let counts_against_address = !matches!(
        classification.reason,
        "policy_blocked"
            | "spam_blocked"
            | "rate_limited"
            | "auth_failure"
            | "content_rejected"
            | "network_error"
    );
    let limit_reached = counts_against_address
        && ((classification.class == BounceClass::Hard
            && contact.hard_bounces >= settings.hard_bounce_limit)
            || (classification.class == BounceClass::Soft
                && contact.soft_bounces >= settings.soft_bounce_limit));
    let mut ops: Vec<Op> = Vec::new();
    if limit_reached {
        contact.state = ConsentState::Suppressed;
        contact.evidence.push(Evidence {
            at: now,
            state: ConsentState::Suppressed,
            source: source.into(),
            ip: None,
            user_agent: None,
            detail: Some(format!(
                "{} bounce: {}: {detail}",
                class_name(classification.class),
                classification.reason
            )),
        });
        let record = Suppression {
            reason: "bounce".into(),
            at: now,
            source: source.into(),
            detail: Some(format!("{}: {detail}", classification.reason)),
        };
        ops.push(Store::put_suppression_op(tenant, &address, &record));
        ops.push(Store::event_op(&serde_json::json!({
            "type": "suppressed", "at": now, "tenant": tenant, "address": address,
            "reason": "bounce", "source": source, "bounce_reason": classification.reason,
        })));
    }
    ops.push(Store::put_contact_op(tenant, list, &address, &contact));
    Ok((ops, limit_reached))
}

fn class_name(c: BounceClass) -> &'static str {
    match c {
        BounceClass::Hard => "hard",
        BounceClass::Soft => "soft",
        BounceClass::Complaint => "complaint",
        BounceClass::Unknown => "unknown",
    }
}
