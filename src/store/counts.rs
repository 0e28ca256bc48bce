//! Tenant counts that wait in memory before they go into the tenants'
//! records (the records themselves are `tenant`'s).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Counts of one tenant's accepted and delivered mail not yet written
/// into its record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub submitted: u64,
    pub delivered: u64,
    pub bounced: u64,
    pub hard_bounces: u64,
    pub soft_bounces: u64,
    pub deferred: u64,
    /// Deliveries by UTC day (days since the epoch), for the rolling window.
    pub delivered_by_day: BTreeMap<u64, u64>,
}

impl Counts {
    /// Counts `delivered` deliveries made at `now` (unix seconds).
    pub fn deliveries(&mut self, now: u64, delivered: u64) {
        self.delivered += delivered;
        if delivered > 0 {
            *self.delivered_by_day.entry(now / 86400).or_default() += delivered;
        }
    }

    pub fn merge(&mut self, other: Counts) {
        self.submitted += other.submitted;
        self.delivered += other.delivered;
        self.bounced += other.bounced;
        self.hard_bounces += other.hard_bounces;
        self.soft_bounces += other.soft_bounces;
        self.deferred += other.deferred;
        for (day, n) in other.delivered_by_day {
            *self.delivered_by_day.entry(day).or_default() += n;
        }
    }
}

/// The counts of accepted and delivered mail, gathered in memory and
/// written into the tenants' records in one update per tenant.
///
/// Writing the record for every message put a RocksDB write on the SMTP and
/// delivery workers, and such a write waits behind the group commit's WAL
/// sync: measured, that cost a quarter of the acceptance rate with a new
/// connection per message. So these counts wait here, and go into the record
/// every `tenant::FLUSH_INTERVAL` (see `tenant::flush`), at a clean stop, and first
/// thing in any other update of the same tenant (a complaint, a policy
/// rejection, a suspension), which therefore always judges every count made
/// so far. A crash loses at most the last interval's counts, never mail.
#[derive(Debug, Default)]
pub struct PendingCounts(Mutex<HashMap<String, Counts>>);

impl PendingCounts {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Counts>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add(&self, tenant: &str, change: impl FnOnce(&mut Counts)) {
        let mut map = self.map();
        match map.get_mut(tenant) {
            Some(counts) => change(counts),
            None => change(map.entry(tenant.to_string()).or_default()),
        }
    }

    pub fn take(&self, tenant: &str) -> Option<Counts> {
        self.map().remove(tenant)
    }

    /// Puts back counts whose write failed.
    pub fn restore(&self, tenant: &str, counts: Counts) {
        self.add(tenant, |c| c.merge(counts));
    }

    pub fn peek(&self, tenant: &str) -> Option<Counts> {
        self.map().get(tenant).cloned()
    }

    pub fn tenants(&self) -> Vec<String> {
        self.map().keys().cloned().collect()
    }
}
