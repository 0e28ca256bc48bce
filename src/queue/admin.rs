//! Queue changes by the postmaster: hold, release, delete, flush. The CLI
//! runs them on the spool when the daemon is stopped, the admin API when it
//! runs; there, a message being delivered at that moment is first claimed
//! from the scheduler, so that a change and a delivery never overwrite each
//! other.

use crate::store::queue::QueueEntry;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum QueueAdminError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no message {0} in the queue")]
    NotFound(String),
    #[error("name one queue id or all")]
    Selection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Hold,
    Release,
    Delete,
    Flush,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "hold" => Action::Hold,
            "release" => Action::Release,
            "delete" => Action::Delete,
            "flush" => Action::Flush,
            _ => return None,
        })
    }

    /// What the log and the CLI say after the change.
    pub fn done(self) -> &'static str {
        match self {
            Action::Hold => "held",
            Action::Release => "released",
            Action::Delete => "deleted",
            Action::Flush => "scheduled now",
        }
    }
}

/// The entries `queue_id` or `all` name.
pub fn select(
    store: &Store,
    queue_id: Option<&str>,
    all: bool,
) -> Result<Vec<QueueEntry>, QueueAdminError> {
    match (queue_id, all) {
        (Some(id), false) => match store.queue_entry(id)? {
            Some(e) => Ok(vec![e]),
            None => Err(QueueAdminError::NotFound(id.into())),
        },
        (None, true) => Ok(store.queue_entries()?),
        _ => Err(QueueAdminError::Selection),
    }
}

/// Applies `action` to the entry `id` as it is in the spool now; true when
/// something changed.
pub fn apply(store: &Store, id: &str, action: Action) -> Result<bool, QueueAdminError> {
    Ok(!apply_all(store, &[id.to_string()], action)?.is_empty())
}

/// Messages changed in one write by [`apply_all`].
const BATCH: usize = 1000;

/// [`apply`] for many entries (the daemon stopped), a thousand to a write
/// instead of one: a `queue flush --all` after an outage with a million
/// messages queued takes a thousand synced writes, not a million. The ids
/// changed, in order.
pub fn apply_all(
    store: &Store,
    ids: &[String],
    action: Action,
) -> Result<Vec<String>, QueueAdminError> {
    let mut changed = Vec::new();
    for chunk in ids.chunks(BATCH) {
        let mut ops = Vec::new();
        let mut done = Vec::new();
        for id in chunk {
            if let Some(o) = change(store, id, action)? {
                ops.extend(o);
                done.push(id.clone());
            }
        }
        if !ops.is_empty() {
            store.commit_blocking(ops)?;
        }
        for id in &done {
            tracing::info!("{id}: {} by the postmaster", action.done());
        }
        changed.extend(done);
    }
    Ok(changed)
}

/// The writes that apply `action` to `id` as it is in the spool now; None
/// when nothing would change.
fn change(
    store: &Store,
    id: &str,
    action: Action,
) -> Result<Option<Vec<crate::store::Op>>, QueueAdminError> {
    // Read again: the entry may have changed since it was selected.
    let Some(mut entry) = store.queue_entry(id)? else {
        return Ok(None);
    };
    let old = entry.next_attempt;
    let changed = match action {
        Action::Delete => return Ok(Some(Store::delete_entry_ops(&entry))),
        Action::Hold => !std::mem::replace(&mut entry.held, true),
        Action::Release => {
            let was = entry.held;
            entry.held = false;
            entry.next_attempt = crate::values::now();
            was
        }
        Action::Flush => {
            entry.next_attempt = crate::values::now();
            !entry.held
        }
    };
    Ok(changed.then(|| Store::update_entry_ops(&entry, Some(old))))
}
