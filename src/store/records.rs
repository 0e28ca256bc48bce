//! The smaller records: tenants' runtime state, the event log (the audit
//! trail and the webhooks' source), feedback replay marks, abuse cases and
//! the webhooks' outbox state.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::{keys, to_json, Cf, Op, Store, StoreError};

/// A tenant's place in the event log and how its receiver fares.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookState {
    /// Hex key of the last event handled (delivered, skipped as another
    /// tenant's, or given up).
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub delivered: u64,
    #[serde(default)]
    pub given_up: u64,
    /// Failures in a row; the backoff grows with them.
    #[serde(default)]
    pub failures: u32,
    /// Unix seconds before which no attempt is made.
    #[serde(default)]
    pub next_attempt: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl WebhookState {
    /// The key of the last event handled (None: none yet).
    pub fn cursor_key(&self) -> Option<Vec<u8>> {
        self.cursor.as_deref().and_then(crate::token::unhex)
    }
}

impl Store {
    // ---- tenants -----------------------------------------------------------

    pub fn tenant_state<T: DeserializeOwned>(&self, tenant: &str) -> Result<Option<T>, StoreError> {
        self.get_json(Cf::Tenants, tenant.as_bytes())
    }

    pub fn put_tenant_state_op<T: Serialize>(tenant: &str, state: &T) -> Op {
        Op::Put(Cf::Tenants, tenant.as_bytes().to_vec(), to_json(state))
    }

    // ---- events ------------------------------------------------------------

    /// An operation appending `event` to the audit log.
    pub fn event_op<T: Serialize>(event: &T) -> Op {
        Op::Put(Cf::Events, keys::event(), to_json(event))
    }

    /// [`Store::event_op`] for an event made at `micros` since the epoch
    /// (a simulated clock's, for the retention benchmark).
    pub fn event_op_at<T: Serialize>(micros: u64, event: &T) -> Op {
        let mut key = micros.to_be_bytes().to_vec();
        key.extend_from_slice(&keys::event()[8..]);
        Op::Put(Cf::Events, key, to_json(event))
    }

    /// Up to `limit` events after the key `after` (all from the start when
    /// None), oldest first, with their keys.
    pub fn events_after(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, serde_json::Value)>, StoreError> {
        let start = match after {
            Some(k) => {
                let mut k = k.to_vec();
                k.push(0);
                k
            }
            None => Vec::new(),
        };
        let mut out = Vec::new();
        for (k, v) in self.shared.scan(Cf::Events, &start, b"", limit)? {
            if let Ok(value) = serde_json::from_slice(&v) {
                out.push((k, value));
            }
        }
        Ok(out)
    }

    /// Whether a bounce or complaint about this recipient of this message was
    /// counted already (see [`Store::feedback_seen_op`]).
    pub fn feedback_seen(&self, kind: &str, qid: &str, index: usize) -> Result<bool, StoreError> {
        Ok(self
            .get_raw(Cf::Meta, &keys::feedback_seen(kind, qid, index))?
            .is_some())
    }

    pub fn feedback_seen_op(kind: &str, qid: &str, index: usize) -> Op {
        Op::Put(
            Cf::Meta,
            keys::feedback_seen(kind, qid, index),
            crate::values::now().to_string().into_bytes(),
        )
    }

    /// This node's saved path suspensions (see `crate::shaping::SavedHold`).
    pub fn shaping_holds<T: DeserializeOwned>(&self) -> Result<Option<T>, StoreError> {
        self.get_json(Cf::Meta, keys::SHAPING_HOLDS)
    }

    pub fn put_shaping_holds_op<T: Serialize>(holds: &T) -> Op {
        Op::Put(Cf::Meta, keys::SHAPING_HOLDS.to_vec(), to_json(holds))
    }

    /// The warm-up record of `subject` (see `crate::shaping::warmup`).
    pub fn warmup<T: DeserializeOwned>(&self, subject: &str) -> Result<Option<T>, StoreError> {
        self.get_json(Cf::Meta, &keys::warmup(subject))
    }

    /// Every warm-up record, by subject, in subject order.
    pub fn warmups<T: DeserializeOwned>(&self) -> Result<Vec<(String, T)>, StoreError> {
        let mut out = Vec::new();
        for (k, v) in self.scan_prefix(Cf::Meta, keys::WARMUP_PREFIX)? {
            let subject = String::from_utf8_lossy(&k[keys::WARMUP_PREFIX.len()..]).into_owned();
            out.push((subject, super::decode(Cf::Meta, &k, &v)?));
        }
        Ok(out)
    }

    /// Changes the warm-up record of `subject` atomically (against every
    /// node of a fleet): `change` gets the record there is and returns the
    /// one to write, or None to write nothing.
    pub fn update_warmup<T: Serialize + DeserializeOwned>(
        &self,
        subject: &str,
        mut change: impl FnMut(Option<T>) -> Result<Option<T>, StoreError>,
    ) -> Result<(), StoreError> {
        let key = keys::warmup(subject);
        let mut failed = None;
        self.update(Cf::Meta, &key, |current| {
            let decoded = match current
                .map(|b| super::decode::<T>(Cf::Meta, &key, &b))
                .transpose()
            {
                Ok(d) => d,
                Err(e) => {
                    failed = Some(e);
                    return Vec::new();
                }
            };
            match change(decoded) {
                Ok(Some(next)) => vec![Op::Put(Cf::Meta, key.clone(), to_json(&next))],
                Ok(None) => Vec::new(),
                Err(e) => {
                    failed = Some(e);
                    Vec::new()
                }
            }
        })?;
        failed.map_or(Ok(()), Err)
    }

    /// An abuse desk case (a complaint or abuse report), kept until deleted.
    pub fn abuse_case_op<T: Serialize>(id: &str, case: &T) -> Op {
        Op::Put(Cf::Meta, keys::abuse(id), to_json(case))
    }

    pub fn abuse_case<T: DeserializeOwned>(&self, id: &str) -> Result<Option<T>, StoreError> {
        self.get_json(Cf::Meta, &keys::abuse(id))
    }

    /// Every abuse case, oldest first (ids sort by time).
    pub fn abuse_cases<T: DeserializeOwned>(&self) -> Result<Vec<T>, StoreError> {
        let prefix = keys::abuse("");
        let mut out = Vec::new();
        for (k, v) in self.scan_prefix(Cf::Meta, &prefix)? {
            let case = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                key: format!("abuse/{}", String::from_utf8_lossy(&k[prefix.len()..])),
                reason: e.to_string(),
            })?;
            out.push(case);
        }
        Ok(out)
    }

    /// A consent wording kept for the evidence (see `consent::wording`).
    pub fn consent_text<T: DeserializeOwned>(
        &self,
        tenant: &str,
        list: &str,
        hash: &str,
    ) -> Result<Option<T>, StoreError> {
        self.get_json(Cf::Meta, &keys::consent_text(tenant, list, hash))
    }

    /// Every consent wording kept for a list of the tenant.
    pub fn consent_texts<T: DeserializeOwned>(
        &self,
        tenant: &str,
        list: &str,
    ) -> Result<Vec<T>, StoreError> {
        let prefix = keys::consent_text(tenant, list, "");
        let mut out = Vec::new();
        for (k, v) in self.scan_prefix(Cf::Meta, &prefix)? {
            let kept = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                key: format!(
                    "consent_text/{}",
                    String::from_utf8_lossy(&k[prefix.len()..])
                ),
                reason: e.to_string(),
            })?;
            out.push(kept);
        }
        Ok(out)
    }

    pub fn put_consent_text_op<T: Serialize>(tenant: &str, list: &str, hash: &str, kept: &T) -> Op {
        Op::Put(
            Cf::Meta,
            keys::consent_text(tenant, list, hash),
            to_json(kept),
        )
    }

    /// The webhook delivery state of a tenant (its place in the event log).
    pub fn webhook_state<T: DeserializeOwned>(
        &self,
        tenant: &str,
    ) -> Result<Option<T>, StoreError> {
        self.get_json(Cf::Meta, &keys::webhook(tenant))
    }

    pub fn put_webhook_state_op<T: Serialize>(tenant: &str, state: &T) -> Op {
        Op::Put(Cf::Meta, keys::webhook(tenant), to_json(state))
    }

    /// The newest `limit` events, oldest first.
    pub fn recent_events(&self, limit: usize) -> Result<Vec<serde_json::Value>, StoreError> {
        let mut out = Vec::new();
        for (_, v) in self.shared.scan_back(Cf::Events, limit)? {
            if let Ok(value) = serde_json::from_slice(&v) {
                out.push(value);
            }
        }
        out.reverse();
        Ok(out)
    }
}
