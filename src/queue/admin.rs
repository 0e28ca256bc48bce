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
    // Read again: the entry may have changed since it was selected.
    let Some(mut entry) = store.queue_entry(id)? else {
        return Ok(false);
    };
    let old = entry.next_attempt;
    let changed = match action {
        Action::Delete => {
            store.commit_blocking(Store::delete_entry_ops(&entry))?;
            tracing::info!("{id}: deleted by the postmaster");
            return Ok(true);
        }
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
    if changed {
        store.commit_blocking(Store::update_entry_ops(&entry, Some(old)))?;
        tracing::info!("{id}: {} by the postmaster", action.done());
    }
    Ok(changed)
}
