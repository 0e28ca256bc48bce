//! The envelope of a queued message and the state of each of its recipients,
//! as kept in the spool's `queue` column family.

use serde::{Deserialize, Serialize};

/// Where a recipient stands in delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecipientStatus {
    /// Not yet tried.
    Queued,
    /// Tried, got a temporary failure; tried again at `next_attempt`.
    Deferred,
    Delivered,
    /// Failed for good (5xx, expiry, null MX).
    Failed,
}

impl RecipientStatus {
    pub fn is_final(self) -> bool {
        matches!(self, RecipientStatus::Delivered | RecipientStatus::Failed)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub address: String,
    /// RFC 3461 ORCPT, as given at RCPT TO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orcpt: Option<String>,
    /// RFC 3461 NOTIFY flags (smtp-proto's RCPT_NOTIFY_* bits).
    #[serde(default)]
    pub notify: u64,
    pub status: RecipientStatus,
    #[serde(default)]
    pub attempts: u32,
    /// The last reply of the remote server (or our own reason), e.g. "550 5.1.1 user unknown".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reply: Option<String>,
    /// Enhanced status of the last attempt, e.g. "5.1.1".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsn: Option<String>,
}

impl Recipient {
    pub fn new(address: String) -> Self {
        Recipient {
            address,
            orcpt: None,
            notify: 0,
            status: RecipientStatus::Queued,
            attempts: 0,
            last_reply: None,
            dsn: None,
        }
    }
}

/// The queue entry: everything about a message but its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub id: String,
    pub tenant: String,
    /// The envelope sender as given at MAIL FROM ("" for the null sender).
    pub sender: String,
    pub recipients: Vec<Recipient>,
    /// Unix seconds when the message was accepted.
    pub received_at: u64,
    /// Unix seconds of the next delivery attempt.
    pub next_attempt: u64,
    pub size: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// RFC 3461 ENVID and RET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_id: Option<String>,
    #[serde(default)]
    pub ret_full: bool,
    #[serde(default)]
    pub smtputf8: bool,
    #[serde(default)]
    pub eight_bit: bool,
    /// Held by an admin or because the tenant is suspended: not delivered until released.
    #[serde(default)]
    pub held: bool,
    /// Managed unsubscribe: each recipient gets its own copy with its own headers.
    #[serde(default)]
    pub per_recipient_copies: bool,
    /// The list the message was sent to (List-Id or the tenant's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,
    pub client_ip: String,
    /// A delivery status notification postwarden wrote (to a tenant's
    /// `bounce_notify`): sent as is with the null sender, not counted for the
    /// tenant, and never answered by another notice.
    #[serde(default)]
    pub notice: bool,
}

impl QueueEntry {
    /// A new entry for `recipients`, due at once (`now`), with every option
    /// off: the caller sets what the message needs.
    pub fn new(
        id: String,
        tenant: &str,
        sender: &str,
        recipients: Vec<Recipient>,
        now: u64,
    ) -> Self {
        QueueEntry {
            id,
            tenant: tenant.to_string(),
            sender: sender.to_string(),
            recipients,
            received_at: now,
            next_attempt: now,
            size: 0,
            message_id: None,
            env_id: None,
            ret_full: false,
            smtputf8: false,
            eight_bit: false,
            held: false,
            per_recipient_copies: false,
            list: None,
            client_ip: String::new(),
            notice: false,
        }
    }

    pub fn pending(&self) -> impl Iterator<Item = &Recipient> {
        self.recipients.iter().filter(|r| !r.status.is_final())
    }

    pub fn is_done(&self) -> bool {
        self.recipients.iter().all(|r| r.status.is_final())
    }
}

/// A message received on the inbound listener (bounce, feedback report, abuse
/// forward, mailto unsubscribe), waiting for the feedback processor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundItem {
    pub id: String,
    pub sender: String,
    pub recipients: Vec<String>,
    pub received_at: u64,
    pub size: usize,
    pub client_ip: String,
}

/// What is kept of a sent message for attributing feedback to it: bounces
/// and complaints name a queue id and recipient index through VERP and the
/// tracking header, often days after the queue entry is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracking {
    pub tenant: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,
    pub recipients: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub at: u64,
}
