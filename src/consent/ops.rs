//! The consent changes an admin or a CRM makes: the admin API and the CLI
//! call these same functions, so that both behave alike whether the daemon
//! runs or not. Every change appends evidence and an event; nothing here
//! overwrites an evidence trail except erasure, which is its purpose.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::{lock, now, ConsentState, Contact, Evidence, Suppression};
use crate::config::TenantConfig;
use crate::store::{Op, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("not a valid address: {0}")]
    InvalidAddress(String),
    #[error("not a valid list name: {0:?}")]
    InvalidList(String),
    #[error("not a consent state: {0:?} (none, single_opt_in, double_opt_in_pending, double_opt_in_confirmed, unsubscribed)")]
    InvalidState(String),
    #[error("the state {0} needs evidence: give the source and an IP address or a detail")]
    MissingEvidence(&'static str),
    #[error("the tenant's quota of {max} contacts is reached ({count} stored)")]
    QuotaExceeded { max: u64, count: u64 },
    #[error("<{0}> is suppressed because of a complaint; removing that needs force")]
    ComplaintNeedsForce(String),
    #[error("a removal from the suppression list needs a reason")]
    ReasonMissing,
    #[error("<{0}> was erased (GDPR) and stays suppressed")]
    Erased(String),
    #[error("not found")]
    NotFound,
}

/// Checks and normalises an address given by a person or a CRM.
pub fn address(raw: &str) -> Result<String, ConsentError> {
    super::address::validate_address(raw)
        .map_err(|why| ConsentError::InvalidAddress(format!("{raw:?}: {why}")))
}

pub fn list_name(list: &str) -> Result<(), ConsentError> {
    if super::address::is_valid_list_name(list) {
        Ok(())
    } else {
        Err(ConsentError::InvalidList(list.into()))
    }
}

/// The key under which an erased address stays suppressed: a hash, so the
/// address itself is gone but a re-import of it is still refused.
pub fn erased_key(address: &str) -> String {
    format!(
        "{}{}",
        crate::store::keys::ERASED_PREFIX,
        crate::token::sha256_hex(address)
    )
}

/// Contact counts per (spool, tenant), loaded by one scan on first use and
/// kept current by the changes below (which all hold the consent lock).
/// In a fleet other nodes change the count too, so there it is not kept
/// here but counted in PostgreSQL each time it is asked for (under the
/// fleet-wide consent lock).
static COUNTS: Mutex<Option<HashMap<(std::path::PathBuf, String), u64>>> = Mutex::new(None);

fn kept_count<T>(
    store: &Store,
    tenant: &str,
    f: impl FnOnce(&mut u64) -> T,
) -> Result<T, StoreError> {
    let mut guard = COUNTS.lock().unwrap_or_else(|p| p.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    let key = (store.path().to_path_buf(), tenant.to_string());
    let count = match map.get_mut(&key) {
        Some(c) => c,
        None => {
            let c = store.count_contacts(tenant)?;
            map.entry(key).or_insert(c)
        }
    };
    Ok(f(count))
}

/// Counts a change of `delta` records. Callers call it with 0 before their
/// write too, so that the first count (a scan) does not already include it.
fn count_change(store: &Store, tenant: &str, delta: i64) -> Result<(), StoreError> {
    if store.in_fleet() {
        return Ok(());
    }
    kept_count(store, tenant, |c| *c = c.saturating_add_signed(delta))
}

/// The number of contact records (list, address) of a tenant.
pub fn contact_count(store: &Store, tenant: &str) -> Result<u64, StoreError> {
    if store.in_fleet() {
        return store.count_contacts(tenant);
    }
    kept_count(store, tenant, |c| *c)
}

/// Counts `n` new contact records of an import.
pub(crate) fn count_added(store: &Store, tenant: &str, n: u64) -> Result<(), StoreError> {
    count_change(store, tenant, i64::try_from(n).unwrap_or(i64::MAX))
}

/// A consent change to record, as given by an admin, the API or an import.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Change {
    pub list: String,
    pub state: String,
    /// form, api, import, admin ...; the API sets "api" when absent.
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
    /// Free text: where the consent was collected, a reason.
    #[serde(default)]
    pub detail: Option<String>,
    /// When the consent was given (unix seconds), if not now.
    #[serde(default)]
    pub at: Option<u64>,
}

/// Records a consent state with its evidence; a new contact counts against
/// the tenant's `max_contacts`. Opt-in states need evidence (an IP address or
/// a detail such as the form or the import's origin).
pub fn set_state(
    store: &Store,
    tenant: &str,
    tenant_config: &TenantConfig,
    raw_address: &str,
    change: &Change,
    default_source: &str,
) -> Result<Contact, ConsentError> {
    let address = address(raw_address)?;
    list_name(&change.list)?;
    let state = ConsentState::parse(&change.state)
        .filter(|s| *s != ConsentState::Suppressed)
        .ok_or_else(|| ConsentError::InvalidState(change.state.clone()))?;
    let opt_in = state.is_opt_in();
    if opt_in && change.ip.is_none() && change.detail.is_none() {
        return Err(ConsentError::MissingEvidence(state.as_str()));
    }
    let _guard = lock(store)?;
    if opt_in
        && store
            .suppression::<Suppression>(tenant, &erased_key(&address))?
            .is_some()
    {
        return Err(ConsentError::Erased(address));
    }
    let existing = store.contact::<Contact>(tenant, &change.list, &address)?;
    let count = contact_count(store, tenant)?;
    if existing.is_none() {
        if let Some(max) = tenant_config.max_contacts {
            if count >= max {
                return Err(ConsentError::QuotaExceeded { max, count });
            }
        }
    }
    let is_new = existing.is_none();
    let mut contact = existing.unwrap_or_else(Contact::new);
    let source = change
        .source
        .clone()
        .unwrap_or_else(|| default_source.into());
    let at = change.at.unwrap_or_else(now);
    contact.state = state;
    contact.evidence.push(Evidence {
        at,
        state,
        source: source.clone(),
        ip: change.ip.clone(),
        user_agent: change.user_agent.clone(),
        detail: change.detail.clone(),
        consent: None,
    });
    store.commit_blocking(vec![
        Store::put_contact_op(tenant, &change.list, &address, &contact),
        Store::event_op(&serde_json::json!({
            "type": "consent_changed", "at": now(), "tenant": tenant, "list": change.list,
            "address": address, "state": state.as_str(), "source": source,
        })),
    ])?;
    if is_new {
        count_change(store, tenant, 1)?;
    }
    Ok(contact)
}

/// Everything known about one address of a tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddressReport {
    pub address: String,
    pub lists: Vec<ListEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppression: Option<Suppression>,
    /// The exact wording of each consent the evidence names, by its SHA-256.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub consent_texts: std::collections::BTreeMap<String, super::wording::Wording>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListEntry {
    pub list: String,
    #[serde(flatten)]
    pub contact: Contact,
}

/// The evidence export of an address (API and CLI): the report, with every
/// opt-in line that has no consent proof (recorded before wordings were
/// kept, or set by an admin, an import or the API) saying so in words, so
/// that a reader of the export does not take a missing field for an error.
pub fn export(report: &AddressReport, now: u64) -> serde_json::Value {
    let mut report = serde_json::to_value(report).unwrap_or_default();
    let lists = report.get_mut("lists").and_then(|l| l.as_array_mut());
    for list in lists.into_iter().flatten() {
        let evidence = list.get_mut("evidence").and_then(|e| e.as_array_mut());
        for line in evidence.into_iter().flatten() {
            let opt_in = line
                .get("state")
                .and_then(|s| s.as_str())
                .and_then(ConsentState::parse)
                .is_some_and(ConsentState::is_opt_in);
            if let Some(obj) = line.as_object_mut().filter(|_| opt_in) {
                obj.entry("consent")
                    .or_insert_with(|| "not recorded".into());
            }
        }
    }
    serde_json::json!({"exported_at": now, "report": report})
}

/// The consent of `address` on every list, with evidence, and its
/// suppression: what answers "prove that this person opted in".
pub fn show(store: &Store, tenant: &str, raw_address: &str) -> Result<AddressReport, ConsentError> {
    let address = address(raw_address)?;
    let lists: Vec<ListEntry> = store
        .contacts_of::<Contact>(tenant, &address)?
        .into_iter()
        .map(|(list, contact)| ListEntry { list, contact })
        .collect();
    let mut consent_texts = std::collections::BTreeMap::new();
    for entry in &lists {
        for proof in entry
            .contact
            .evidence
            .iter()
            .filter_map(|e| e.consent.as_ref())
        {
            let hash = &proof.text_sha256;
            if consent_texts.contains_key(hash) {
                continue;
            }
            if let Some(kept) =
                store.consent_text::<super::wording::Kept>(tenant, &entry.list, hash)?
            {
                consent_texts.insert(hash.clone(), kept.wording);
            }
        }
    }
    let suppression = match store.suppression::<Suppression>(tenant, &address)? {
        Some(s) => Some(s),
        None => store.suppression(tenant, &erased_key(&address))?,
    };
    Ok(AddressReport {
        address,
        lists,
        suppression,
        consent_texts,
    })
}

/// Deletes the contact from one list or, with `list` None, from every list.
/// Suppression stays. Returns how many records went.
pub fn delete(
    store: &Store,
    tenant: &str,
    raw_address: &str,
    list: Option<&str>,
) -> Result<usize, ConsentError> {
    let address = address(raw_address)?;
    let _guard = lock(store)?;
    count_change(store, tenant, 0)?;
    let lists = match list {
        Some(l) => vec![l.to_string()],
        None => store.lists(tenant)?,
    };
    let mut ops = Vec::new();
    for l in &lists {
        if store.contact::<Contact>(tenant, l, &address)?.is_some() {
            ops.push(Store::delete_contact_op(tenant, l, &address));
        }
    }
    let n = ops.len();
    if n == 0 {
        return Err(ConsentError::NotFound);
    }
    ops.push(Store::event_op(&serde_json::json!({
        "type": "contact_deleted", "at": now(), "tenant": tenant, "address": address, "list": list,
    })));
    store.commit_blocking(ops)?;
    count_change(store, tenant, -(n as i64))?;
    Ok(n)
}

/// Double opt-in sign-ups never confirmed: each contact of `tenant` still
/// pending whose last evidence is older than `before` (Unix seconds) is
/// deleted, with a `contact_expired` event that tells the tenant's CRM.
/// Without a confirmation there is no consent to prove, so nothing of the
/// address is kept (storage limitation; `[retention] unconfirmed`). Read in
/// pages of `page` contacts; each found one is read again under the consent
/// lock, so a confirmation that came meanwhile keeps it. Returns how many.
/// The suppression list is not touched: an unsubscribe stays an unsubscribe.
pub fn expire_unconfirmed(
    store: &Store,
    tenant: &str,
    before: u64,
    page: usize,
) -> Result<u64, ConsentError> {
    let stale = |c: &Contact| {
        c.state == ConsentState::DoubleOptInPending
            && c.evidence.last().is_none_or(|e| e.at < before)
    };
    let mut found = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (contacts, next) =
            store.contacts_page::<Contact>(tenant, None, after.as_deref(), page.max(1))?;
        found.extend(
            contacts
                .into_iter()
                .filter(|(_, _, c)| stale(c))
                .map(|(l, a, _)| (l, a)),
        );
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    // In steps of `page`, each under the lock and in one commit, so that
    // sign-ups and confirmations wait for one step at most.
    let mut total = 0;
    for step in found.chunks(page.max(1)) {
        let _guard = lock(store)?;
        count_change(store, tenant, 0)?;
        let mut ops = Vec::new();
        let mut n = 0;
        for (list, address) in step {
            if store
                .contact::<Contact>(tenant, list, address)?
                .is_some_and(|c| stale(&c))
            {
                ops.push(Store::delete_contact_op(tenant, list, address));
                ops.push(Store::event_op(&serde_json::json!({
                    "type": "contact_expired", "at": now(), "tenant": tenant, "list": list,
                    "address": address, "reason": "double opt-in not confirmed",
                })));
                n += 1;
            }
        }
        store.commit_blocking(ops)?;
        count_change(store, tenant, -n)?;
        total += n as u64;
    }
    Ok(total)
}

/// GDPR erasure: every record of the address goes, and a hash of it stays on
/// the suppression list so that it cannot be re-imported by mistake.
pub fn erase(store: &Store, tenant: &str, raw_address: &str) -> Result<usize, ConsentError> {
    let address = address(raw_address)?;
    let _guard = lock(store)?;
    count_change(store, tenant, 0)?;
    let mut ops: Vec<_> = store
        .contacts_of::<Contact>(tenant, &address)?
        .into_iter()
        .map(|(l, _)| Store::delete_contact_op(tenant, &l, &address))
        .collect();
    let n = ops.len();
    ops.push(Store::delete_suppression_op(tenant, &address));
    let hashed = erased_key(&address);
    ops.push(Store::put_suppression_op(
        tenant,
        &hashed,
        &Suppression {
            reason: "erasure".into(),
            at: now(),
            source: "admin".into(),
            detail: None,
        },
    ));
    // The event names the hash, not the address: the audit log keeps no
    // trace of an erased person.
    ops.push(Store::event_op(&serde_json::json!({
        "type": "erased", "at": now(), "tenant": tenant, "address_hash": hashed, "records": n,
    })));
    store.commit_blocking(ops)?;
    count_change(store, tenant, -(n as i64))?;
    drop(_guard);
    let scrubbed = scrub(store, tenant, &address, &hashed)?;
    tracing::info!(
        "erasure for tenant {tenant}: {n} contact record(s) deleted, the address replaced by its hash in {scrubbed} tracking record(s), event(s) and abuse case(s)"
    );
    Ok(n)
}

/// Replaces `address` by `replacement` wherever the records that retention
/// has not yet pruned keep it for `tenant`: tracking records, events and
/// abuse cases (those of the tenant, and those attributed to no one).
/// Returns how many records it rewrote. A scan of all of them, which
/// retention keeps bounded.
fn scrub(store: &Store, tenant: &str, address: &str, replacement: &str) -> Result<u64, StoreError> {
    use crate::store::retention::Kept;
    let pattern = regex::Regex::new(&format!("(?i){}", regex::escape(address)))
        .map_err(|e| StoreError::Write(e.to_string()))?;
    let mut total = 0;
    for kind in [Kept::Tracking, Kept::Events, Kept::AbuseCases] {
        total += store.rewrite_kept(kind, &mut |bytes| {
            if !pattern.is_match(&String::from_utf8_lossy(bytes)) {
                return None;
            }
            let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
            let owner = value.get("tenant").and_then(|t| t.as_str());
            let ours = owner == Some(tenant) || (kind == Kept::AbuseCases && owner.is_none());
            (ours && redact(&mut value, &pattern, replacement))
                .then(|| serde_json::to_vec(&value).ok())
                .flatten()
        })?;
    }
    Ok(total)
}

/// Replaces every match of `pattern` in the strings of `value`; whether
/// there was one.
fn redact(value: &mut serde_json::Value, pattern: &regex::Regex, replacement: &str) -> bool {
    match value {
        serde_json::Value::String(s) if pattern.is_match(s) => {
            *s = pattern.replace_all(s, replacement).into_owned();
            true
        }
        serde_json::Value::Array(items) => items
            .iter_mut()
            .fold(false, |hit, v| redact(v, pattern, replacement) | hit),
        serde_json::Value::Object(map) => map
            .values_mut()
            .fold(false, |hit, v| redact(v, pattern, replacement) | hit),
        _ => false,
    }
}

/// Puts an address on the suppression list.
pub fn add_suppression(
    store: &Store,
    tenant: &str,
    raw_address: &str,
    reason: &str,
    source: &str,
    detail: Option<String>,
) -> Result<Suppression, ConsentError> {
    let address = address(raw_address)?;
    let record = Suppression {
        reason: reason.into(),
        at: now(),
        source: source.into(),
        detail,
    };
    let _guard = lock(store)?;
    store.commit_blocking(vec![
        Store::put_suppression_op(tenant, &address, &record),
        Store::event_op(&serde_json::json!({
            "type": "suppressed", "at": record.at, "tenant": tenant, "address": address,
            "reason": record.reason, "source": source,
        })),
    ])?;
    Ok(record)
}

/// Takes an address off the suppression list, with a reason. A complaint
/// suppression (the person told their mailbox provider this is spam) needs
/// `force`; an erasure cannot be undone this way.
pub fn remove_suppression(
    store: &Store,
    tenant: &str,
    raw_address: &str,
    reason: &str,
    force: bool,
) -> Result<Suppression, ConsentError> {
    if reason.trim().is_empty() {
        return Err(ConsentError::ReasonMissing);
    }
    let address = address(raw_address)?;
    let _guard = lock(store)?;
    let Some(record) = store.suppression::<Suppression>(tenant, &address)? else {
        if store
            .suppression::<Suppression>(tenant, &erased_key(&address))?
            .is_some()
        {
            return Err(ConsentError::Erased(address));
        }
        return Err(ConsentError::NotFound);
    };
    if record.reason == "complaint" && !force {
        return Err(ConsentError::ComplaintNeedsForce(address));
    }
    store.commit_blocking(vec![
        Store::delete_suppression_op(tenant, &address),
        Store::event_op(&serde_json::json!({
            "type": "unsuppressed", "at": now(), "tenant": tenant, "address": address,
            "was": record.reason, "reason": reason, "forced": force,
        })),
    ])?;
    Ok(record)
}

/// An unsubscribe reported by the CRM (its own link or form): applied at
/// once. Without a list it stops all mail of the tenant to the address.
pub fn external_unsubscribe(
    store: &Store,
    tenant: &str,
    raw_address: &str,
    list: Option<&str>,
    ip: Option<String>,
) -> Result<(), ConsentError> {
    let address = address(raw_address)?;
    if let Some(l) = list {
        list_name(l)?;
    }
    let _guard = lock(store)?;
    let ops: Vec<Op> = super::unsubscribe_ops(
        store,
        tenant,
        list,
        &address,
        list.is_none(),
        "api",
        ip,
        None,
    )?;
    store.commit_blocking(ops)?;
    crate::tenant::count_unsubscribe(store, tenant);
    Ok(())
}

/// Checks every tenant's `max_contacts` against what the spool holds, at
/// start: lowering it below the current count (a classic move of a sender
/// about to spam from a fresh plan) is refused unless `quota_change_reason`
/// says why; every change of the quota goes to the audit log.
pub fn check_quotas(store: &Store, config: &crate::config::Config) -> Result<(), String> {
    for (name, tenant) in &config.tenants {
        let state = crate::tenant::state(store, name).map_err(|e| e.to_string())?;
        if state.max_contacts == tenant.max_contacts {
            continue;
        }
        if let Some(max) = tenant.max_contacts {
            let count = contact_count(store, name).map_err(|e| e.to_string())?;
            if count > max && tenant.quota_change_reason.is_none() {
                return Err(format!(
                    "tenants.{name}.max_contacts: {max} is below the {count} contacts the tenant has; \
                     set tenants.{name}.quota_change_reason to lower it"
                ));
            }
        }
        let event = serde_json::json!({
            "type": "quota_changed", "at": now(), "tenant": name,
            "from": state.max_contacts, "to": tenant.max_contacts,
            "reason": tenant.quota_change_reason,
        });
        tracing::info!(
            "tenant {name}: max_contacts {:?} -> {:?}{}",
            state.max_contacts,
            tenant.max_contacts,
            tenant
                .quota_change_reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
        let max = tenant.max_contacts;
        crate::tenant::record(store, name, Some(event), |s| s.max_contacts = max)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
