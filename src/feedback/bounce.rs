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
    let now = crate::values::now();
    let list = list.unwrap_or("");
    if !matches!(classification.class, BounceClass::Hard | BounceClass::Soft) {
        return Ok((Vec::new(), false));
    }
    let count = |c: &mut Contact| match classification.class {
        BounceClass::Hard => c.hard_bounces += 1,
        _ => c.count_soft_bounce(now, settings.soft_bounce_window),
    };
    // The counters are the address's, tenant-wide: kept alike on each of
    // its list contacts, so that the RCPT path and deliveries read them from
    // the list they already have in hand.
    let mut others = store.contacts_of::<Contact>(tenant, &address)?;
    others.iter_mut().for_each(|(_, c)| count(c));
    let mut contact = match others.iter().position(|(l, _)| l == list) {
        Some(i) => others.swap_remove(i).1,
        None => {
            let mut c = Contact::new();
            count(&mut c);
            c
        }
    };
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
            consent: None,
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
    for (other, c) in &others {
        ops.push(Store::put_contact_op(tenant, other, &address, c));
    }
    Ok((ops, limit_reached))
}

/// A delivery to `address` (sent for `list`): its soft bounces are forgiven
/// on every list contact it has (the counters are tenant-wide, see
/// [`bounce_ops`]). Looks at the sending list's contact first (cached), and
/// writes only when there were some; returns whether it did.
pub fn record_delivery(
    store: &Store,
    tenant: &str,
    list: Option<&str>,
    address: &str,
) -> Result<bool, StoreError> {
    let list = list.unwrap_or("");
    let address = normalize_address(address);
    if !crate::consent::has_soft_bounces(store, tenant, list, &address)? {
        return Ok(false);
    }
    let _guard = crate::consent::lock(store)?;
    let mut ops = Vec::new();
    for (l, mut contact) in store.contacts_of::<Contact>(tenant, &address)? {
        if contact.delivered() {
            ops.push(Store::put_contact_op(tenant, &l, &address, &contact));
        }
    }
    if ops.is_empty() {
        return Ok(false);
    }
    store.commit_blocking(ops)?;
    Ok(true)
}

fn class_name(c: BounceClass) -> &'static str {
    match c {
        BounceClass::Hard => "hard",
        BounceClass::Soft => "soft",
        BounceClass::Complaint => "complaint",
        BounceClass::Unknown => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_bounces_count_within_the_window_and_a_delivery_clears_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("store");
        let settings = TenantConfig {
            soft_bounce_limit: 2,
            soft_bounce_window: 10 * 86400,
            ..TenantConfig::default()
        };
        let now = crate::values::now();
        // A soft bounce eleven days ago is outside the window.
        let mut old = Contact::new();
        old.count_soft_bounce(now - 11 * 86400, settings.soft_bounce_window);
        store
            .commit_blocking(vec![Store::put_contact_op(
                "acme",
                "news",
                "jo@example.test",
                &old,
            )])
            .expect("write");
        let record = |reason| {
            record_bounce(
                &store,
                "acme",
                &settings,
                Some("news"),
                "jo@example.test",
                Classification::soft(reason, "test"),
                "dsn",
                "full",
            )
            .expect("record")
        };
        assert!(!record("mailbox_full"), "the old bounce counted");
        let contact = || {
            store
                .contact::<Contact>("acme", "news", "jo@example.test")
                .expect("read")
                .expect("contact")
        };
        assert_eq!(contact().soft_bounces, 1);
        assert_eq!(
            contact().soft_bounce_level(now + 11 * 86400, settings.soft_bounce_window),
            0
        );
        // A delivery forgives it: the next one is the first again.
        assert!(
            record_delivery(&store, "acme", Some("news"), "jo@example.test").expect("delivery")
        );
        assert!(
            !record_delivery(&store, "acme", Some("news"), "jo@example.test").expect("delivery")
        );
        assert_eq!(
            contact().soft_bounce_level(now, settings.soft_bounce_window),
            0
        );
        // The counts are the address's: a contact on another list shows
        // them too, and a delivery for either list clears both.
        let mut other = Contact::new();
        other.state = crate::consent::ConsentState::SingleOptIn;
        store
            .commit_blocking(vec![Store::put_contact_op(
                "acme",
                "offers",
                "jo@example.test",
                &other,
            )])
            .expect("write");
        assert!(!record("mailbox_full"));
        let on = |list: &str| {
            store
                .contact::<Contact>("acme", list, "jo@example.test")
                .expect("read")
                .expect("contact")
                .soft_bounce_level(now, settings.soft_bounce_window)
        };
        assert_eq!((on("news"), on("offers")), (1, 1));
        assert!(
            record_delivery(&store, "acme", Some("offers"), "jo@example.test").expect("delivery")
        );
        assert_eq!((on("news"), on("offers")), (0, 0));
        assert!(!record("mailbox_full"));
        // Two within the window reach the limit.
        assert!(record("mailbox_full"));
        assert_eq!(on("offers"), 2);
        assert_eq!(
            store
                .suppression::<crate::consent::Suppression>("acme", "jo@example.test")
                .expect("read")
                .map(|s| s.reason),
            Some("bounce".to_string())
        );
    }
}
