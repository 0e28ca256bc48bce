//! The queue ids being delivered or changed by the postmaster right now.

use std::collections::HashSet;
use std::sync::Mutex;

/// Queue ids being delivered (or changed) right now; the scheduler skips a
/// claimed id and an admin change waits for a delivery to end.
#[derive(Debug, Default)]
pub struct InFlight(Mutex<HashSet<String>>);

impl InFlight {
    fn set(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True when `id` was free and is now claimed.
    pub fn claim(&self, id: &str) -> bool {
        self.set().insert(id.to_string())
    }

    pub fn release(&self, id: &str) {
        self.set().remove(id);
    }

    /// True when `id` is claimed now.
    pub fn contains(&self, id: &str) -> bool {
        self.set().contains(id)
    }

    pub fn len(&self) -> usize {
        self.set().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
