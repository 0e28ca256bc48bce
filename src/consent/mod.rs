//! Consent records: per (tenant, list, address) a state with an append-only
//! evidence trail, and the tenant-wide suppression list (DESIGN.md "Consent model").

pub mod confirm;
pub mod form;
pub mod import;
pub mod ops;
pub mod wording;

use serde::{Deserialize, Serialize};

use crate::store::{Op, Store, StoreError};
pub use crate::values::address::{self, normalize_address};
use crate::values::now;
pub use crate::values::ConsentState;

/// One transition of a contact's consent, kept for ever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Unix seconds.
    pub at: u64,
    pub state: ConsentState,
    /// form, api, import, unsubscribe_link, mailto, dsn, arf, abuse, admin
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Free text: an import's declared origin, an admin's reason, a DSN's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// What the person agreed to, and where (sign-ups since consent
    /// wordings are kept; None on older records: "not recorded").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<ConsentProof>,
}

/// The proof of an explicit consent given at a sign-up form (or a CRM's
/// form, through the API): which wording, in which language, on which page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentProof {
    /// The wording's version name (`[tenants.NAME.consent] version`).
    pub version: String,
    pub lang: String,
    /// SHA-256 (hex) of the exact text shown; the export has the text.
    pub text_sha256: String,
    /// The consent field was sent set (a checkbox that is not pre-ticked on
    /// postwarden's form); a sign-up without it is refused.
    pub explicit: bool,
    /// The page the form was on: the form's `source` field, else `Referer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    /// The `Origin` header of the post, where the browser sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// When postwarden served the form that was posted (its signed token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form_served_at: Option<u64>,
    /// form (postwarden's endpoint) or api (a CRM's own form).
    pub via: String,
}

/// A contact on one list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub state: ConsentState,
    pub evidence: Vec<Evidence>,
    #[serde(default)]
    pub hard_bounces: u32,
    /// Soft bounces within the tenant's `soft_bounce_window` as of the last
    /// one (see [`Contact::soft_bounce_level`] for now); a delivery clears them.
    #[serde(default)]
    pub soft_bounces: u32,
    /// When those soft bounces came (unix seconds), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub soft_bounce_times: Vec<u64>,
}

impl Contact {
    /// A contact with no consent yet and no evidence.
    pub fn new() -> Contact {
        Contact {
            state: ConsentState::None,
            evidence: Vec::new(),
            hard_bounces: 0,
            soft_bounces: 0,
            soft_bounce_times: Vec::new(),
        }
    }

    /// Counts a soft bounce at `now`: `soft_bounces` becomes the number of
    /// them within the last `window` seconds, older ones are forgotten.
    pub fn count_soft_bounce(&mut self, now: u64, window: u64) {
        self.soft_bounce_times
            .retain(|&t| t.saturating_add(window) > now);
        self.soft_bounce_times.push(now);
        self.soft_bounces = u32::try_from(self.soft_bounce_times.len()).unwrap_or(u32::MAX);
    }

    /// The soft bounces within the last `window` seconds at `now`: the
    /// contact's bounce level, which a mailing can be restricted by.
    pub fn soft_bounce_level(&self, now: u64, window: u64) -> u32 {
        if self.soft_bounce_times.is_empty() {
            // Counted before their times were kept: all of them.
            return self.soft_bounces;
        }
        let within = self
            .soft_bounce_times
            .iter()
            .filter(|&&t| t.saturating_add(window) > now)
            .count();
        u32::try_from(within).unwrap_or(u32::MAX)
    }

    /// A delivery to the address: its soft bounces are forgiven (a full
    /// mailbox that takes mail again starts afresh). Whether it changed.
    pub fn delivered(&mut self) -> bool {
        let changed = self.soft_bounces > 0 || !self.soft_bounce_times.is_empty();
        self.soft_bounces = 0;
        self.soft_bounce_times.clear();
        changed
    }
}

impl Default for Contact {
    fn default() -> Self {
        Contact::new()
    }
}

/// Serialises read-modify-write of contact and suppression records within
/// this process, so that concurrent changes to one contact never lose a line
/// of evidence.
static CONSENT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The shared lock id of consent changes (see [`lock`]).
const CONSENT_LOCK_ID: i64 = 1;

/// Held while contacts, suppression and feedback marks are read and
/// rewritten: this process's lock and, in a fleet, the fleet-wide one.
pub struct ConsentGuard {
    _shared: Box<dyn Send>,
    _local: std::sync::MutexGuard<'static, ()>,
}

/// Takes the consent lock: one change at a time in this process and, with
/// the shared state in PostgreSQL, on every node (an advisory lock), so a
/// bounce counted on one node and an unsubscribe on another cannot overwrite
/// each other's evidence. Fails (and nothing is changed) when the shared
/// store does not answer.
pub fn lock(store: &Store) -> Result<ConsentGuard, StoreError> {
    let local = CONSENT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    Ok(ConsentGuard {
        _shared: store.shared_lock(CONSENT_LOCK_ID)?,
        _local: local,
    })
}

/// A tenant-wide "never mail this address again".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    /// unsubscribed, bounce, complaint, admin, erasure
    pub reason: String,
    pub at: u64,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The part of a contact record that the RCPT path and deliveries need (the
/// evidence is skipped, not decoded).
#[derive(Clone, Deserialize)]
struct ContactState {
    state: ConsentState,
    /// Whether there are soft bounces a delivery would clear.
    #[serde(default)]
    soft_bounces: u32,
}

impl crate::store::CacheValue for ContactState {
    /// The state in the low byte, then whether there are soft bounces.
    fn to_cached(&self) -> crate::store::Cached {
        crate::store::Cached::Word(self.state as u64 | (u64::from(self.soft_bounces > 0) << 8))
    }

    fn from_cached(cached: &crate::store::Cached) -> Option<Self> {
        match cached {
            crate::store::Cached::Word(n) => ConsentState::ALL
                .get(usize::try_from(n & 0xff).ok()?)
                .map(|&state| ContactState {
                    state,
                    soft_bounces: u32::from(n >> 8 & 1 == 1),
                }),
            _ => None,
        }
    }
}

/// Whether the contact has soft bounces that a delivery would clear, as far
/// as the cache knows (the RCPT and DATA checks filled it): None when it
/// does not know, and only the store can tell.
pub fn cached_soft_bounces(store: &Store, tenant: &str, list: &str, address: &str) -> Option<bool> {
    store
        .contact_cache_peek::<ContactState>(tenant, list, &normalize_address(address))
        .map(|c| c.is_some_and(|c| c.soft_bounces > 0))
}

/// Whether the contact of `address` (normalised) has soft bounces that a
/// delivery would clear: a cached look-up where the cache knows, else a read
/// of the store.
pub fn has_soft_bounces(
    store: &Store,
    tenant: &str,
    list: &str,
    address: &str,
) -> Result<bool, StoreError> {
    Ok(store
        .contact_cached::<ContactState>(tenant, list, address)?
        .is_some_and(|c| c.soft_bounces > 0))
}

impl crate::store::CacheValue for Suppression {}

/// What the policy needs to know about recipients; the store implements it,
/// tests may use a map. Addresses are normalised by the caller.
pub trait ConsentLookup {
    fn state(&self, tenant: &str, list: &str, address: &str) -> Result<ConsentState, StoreError>;
    fn suppression(&self, tenant: &str, address: &str) -> Result<Option<Suppression>, StoreError>;
}

impl ConsentLookup for Store {
    fn state(&self, tenant: &str, list: &str, address: &str) -> Result<ConsentState, StoreError> {
        Ok(self
            .contact_cached::<ContactState>(tenant, list, address)?
            .map(|c| c.state)
            .unwrap_or(ConsentState::None))
    }

    fn suppression(&self, tenant: &str, address: &str) -> Result<Option<Suppression>, StoreError> {
        // An erased address stays suppressed under its hash.
        self.rcpt_suppression(tenant, address, ops::erased_key)
    }
}

/// The writes of an unsubscribe: the list state becomes `unsubscribed` with
/// its evidence and, when `everything` (one-click, mailto, "all mail from this
/// sender"), the address goes on the tenant's suppression list, so that the
/// very next RCPT TO is refused.
#[allow(clippy::too_many_arguments)]
pub fn unsubscribe_ops(
    store: &Store,
    tenant: &str,
    list: Option<&str>,
    address: &str,
    everything: bool,
    source: &str,
    ip: Option<String>,
    user_agent: Option<String>,
) -> Result<Vec<Op>, StoreError> {
    let address = normalize_address(address);
    let now = now();
    let mut ops = Vec::new();
    if let Some(list) = list {
        let mut contact = store
            .contact::<Contact>(tenant, list, &address)?
            .unwrap_or_else(Contact::new);
        contact.state = ConsentState::Unsubscribed;
        contact.evidence.push(Evidence {
            at: now,
            state: ConsentState::Unsubscribed,
            source: source.into(),
            ip: ip.clone(),
            user_agent: user_agent.clone(),
            detail: Some(
                if everything {
                    "all mail from this sender"
                } else {
                    "this list"
                }
                .into(),
            ),
            consent: None,
        });
        ops.push(Store::put_contact_op(tenant, list, &address, &contact));
    }
    if everything {
        ops.push(Store::put_suppression_op(
            tenant,
            &address,
            &Suppression {
                reason: "unsubscribed".into(),
                at: now,
                source: source.into(),
                detail: list.map(|l| format!("from list {l}")),
            },
        ));
    }
    ops.push(Store::event_op(&serde_json::json!({
        "type": "unsubscribed", "at": now, "tenant": tenant, "list": list,
        "address": address, "everything": everything, "source": source, "ip": ip,
    })));
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CacheValue;

    #[test]
    fn every_consent_state_survives_the_cache_word() {
        for (i, &state) in ConsentState::ALL.iter().enumerate() {
            assert_eq!(state as usize, i);
            let cached = ContactState {
                state,
                soft_bounces: 0,
            }
            .to_cached();
            assert_eq!(
                ContactState::from_cached(&cached).map(|c| c.state),
                Some(state)
            );
            let cached = ContactState {
                state,
                soft_bounces: 3,
            }
            .to_cached();
            assert_eq!(
                ContactState::from_cached(&cached).map(|c| (c.state, c.soft_bounces > 0)),
                Some((state, true))
            );
        }
        assert!(ContactState::from_cached(&crate::store::Cached::Word(6)).is_none());
    }
}
