//! A tenant's runtime state in the spool: suspension and counters.

use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantState {
    /// The reason, when the tenant is suspended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<String>,
    #[serde(default)]
    pub submitted: u64,
    #[serde(default)]
    pub policy_rejected: u64,
    #[serde(default)]
    pub delivered: u64,
    #[serde(default)]
    pub bounced: u64,
    /// The `max_contacts` in force at the last start, to notice changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_contacts: Option<u64>,
}

pub fn state(store: &Store, tenant: &str) -> Result<TenantState, StoreError> {
    Ok(store.tenant_state(tenant)?.unwrap_or_default())
}

/// Serialises read-modify-write of tenant counters within this process.
static TENANT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Updates a tenant's state with `change` and, if given, appends `event`,
/// in one durable write.
pub fn record(
    store: &Store,
    tenant: &str,
    event: Option<serde_json::Value>,
    change: impl FnOnce(&mut TenantState),
) -> Result<TenantState, StoreError> {
    let _guard = TENANT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let mut s = state(store, tenant)?;
    change(&mut s);
    let mut ops = vec![Store::put_tenant_state_op(tenant, &s)];
    if let Some(e) = event {
        ops.push(Store::event_op(&e));
    }
    store.write_relaxed(ops)?;
    Ok(s)
}
