//! The queue as the spool keeps it: the envelope of a queued message and the
//! state of each of its recipients (`queue`), its bytes (`messages`), the
//! schedule index, tracking records and inbound feedback waiting for the
//! processor.

use rocksdb::IteratorMode;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::{keys, to_json, Cf, Op, ScheduleScan, Store, StoreError};

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

/// Messages in the queue by state ([`Store::queue_counts`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct QueueCounts {
    pub queued: u64,
    pub deferred: u64,
    pub held: u64,
}

impl QueueCounts {
    /// Messages in the queue, whatever their state.
    pub fn total(&self) -> u64 {
        self.queued + self.deferred + self.held
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
    /// The tenant's sender domain the From address is of (for its warm-up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_domain: Option<String>,
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
            sender_domain: None,
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
    /// The tenant's sender domain of the From address: a complaint counts
    /// against its warm-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_domain: Option<String>,
}

impl Store {
    /// The operations that put a new message into the queue.
    pub fn enqueue_ops(entry: &QueueEntry, message: &[u8]) -> Vec<Op> {
        vec![
            Op::Put(Cf::Messages, entry.id.as_bytes().to_vec(), message.to_vec()),
            Op::Put(Cf::Queue, entry.id.as_bytes().to_vec(), to_json(entry)),
            Op::Put(
                Cf::Schedule,
                keys::schedule(entry.next_attempt, &entry.id),
                Vec::new(),
            ),
        ]
    }

    /// Queues a message durably: when this returns Ok, the message may be acknowledged with 250.
    pub async fn enqueue(&self, entry: &QueueEntry, message: &[u8]) -> Result<(), StoreError> {
        self.commit(Self::enqueue_ops(entry, message)).await
    }

    pub fn queue_entry(&self, id: &str) -> Result<Option<QueueEntry>, StoreError> {
        self.get_json(Cf::Queue, id.as_bytes())
    }

    pub fn message(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(Cf::Messages), id.as_bytes())?)
    }

    /// Every queue entry, oldest first.
    pub fn queue_entries(&self) -> Result<Vec<QueueEntry>, StoreError> {
        self.scan_prefix(Cf::Queue, b"")?
            .into_iter()
            .map(|(k, v)| {
                serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                    key: format!("queue/{}", String::from_utf8_lossy(&k)),
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    /// How many messages are queued, deferred (a recipient was tried and
    /// will be again) and held, counted entry by entry without keeping
    /// them: a scrape of /metrics with a million queued reads each entry
    /// once and holds one at a time, not the million at once.
    pub fn queue_counts(&self) -> Result<QueueCounts, StoreError> {
        /// What the count needs of an entry; serde skips the rest.
        #[derive(Deserialize)]
        struct State {
            #[serde(default)]
            held: bool,
            recipients: Vec<RecipientState>,
        }
        #[derive(Deserialize)]
        struct RecipientState {
            status: RecipientStatus,
        }
        let mut counts = QueueCounts::default();
        for item in self.db.iterator_cf(self.cf(Cf::Queue), IteratorMode::Start) {
            let (k, v) = item?;
            let state: State = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                key: format!("queue/{}", String::from_utf8_lossy(&k)),
                reason: e.to_string(),
            })?;
            if state.held {
                counts.held += 1;
            } else if state
                .recipients
                .iter()
                .any(|r| r.status == RecipientStatus::Deferred)
            {
                counts.deferred += 1;
            } else {
                counts.queued += 1;
            }
        }
        Ok(counts)
    }

    /// Reads the schedule index from `from` (a key; None: the start): the
    /// entries due at or before `now` (up to `limit`), where the next scan
    /// may start (`first`: the first key found, or the start of second `now`
    /// if that is earlier; everything before it is gone, and whatever is
    /// scheduled later is at `now` or after, so the next scan need not step
    /// over the tombstones of delivered messages again), and the time of the
    /// first entry not yet due.
    pub fn scan_schedule(
        &self,
        from: Option<&[u8]>,
        now: u64,
        limit: usize,
    ) -> Result<ScheduleScan, StoreError> {
        self.scan_schedule_skipping(from, now, limit, |_| false)
    }

    /// [`Store::scan_schedule`], stepping over the due entries whose id
    /// `skip` names without counting them in `limit`: messages that wait in
    /// memory already (parked for their destination's lane), so that a
    /// long line of them cannot hide the messages behind it from the scan.
    pub fn scan_schedule_skipping(
        &self,
        from: Option<&[u8]>,
        now: u64,
        limit: usize,
        skip: impl Fn(&str) -> bool,
    ) -> Result<ScheduleScan, StoreError> {
        let mode = match from {
            Some(key) => IteratorMode::From(key, rocksdb::Direction::Forward),
            None => IteratorMode::Start,
        };
        let mut scan = ScheduleScan::default();
        let floor = keys::schedule(now, "");
        for item in self.db.iterator_cf(self.cf(Cf::Schedule), mode) {
            let (k, _) = item?;
            scan.read += 1;
            if scan.first.is_none() {
                scan.first = Some(k.to_vec().min(floor.clone()));
            }
            let Some((when, id)) = keys::parse_schedule(&k) else {
                continue;
            };
            if when > now {
                scan.next_later = Some(when);
                break;
            }
            if skip(&id) {
                continue;
            }
            if scan.due.len() >= limit {
                break;
            }
            scan.due.push((when, id));
        }
        if scan.first.is_none() {
            scan.first = Some(floor);
        }
        Ok(scan)
    }

    /// Compacts the schedule index, dropping the tombstones of delivered
    /// messages, which a full scan would otherwise step over one by one.
    pub fn compact_schedule(&self) {
        self.db
            .compact_range_cf(self.cf(Cf::Schedule), None::<&[u8]>, None::<&[u8]>);
    }

    /// Operations that store `entry` after an attempt and move its schedule
    /// slot from `old_next` (None: not scheduled) to its new `next_attempt`,
    /// or remove everything when all recipients are final.
    pub fn update_entry_ops(entry: &QueueEntry, old_next: Option<u64>) -> Vec<Op> {
        let mut ops = Vec::new();
        if let Some(old) = old_next {
            ops.push(Op::Delete(Cf::Schedule, keys::schedule(old, &entry.id)));
        }
        if entry.is_done() {
            ops.push(Op::Delete(Cf::Queue, entry.id.as_bytes().to_vec()));
            ops.push(Op::Delete(Cf::Messages, entry.id.as_bytes().to_vec()));
        } else {
            ops.push(Op::Put(
                Cf::Queue,
                entry.id.as_bytes().to_vec(),
                to_json(entry),
            ));
            if !entry.held {
                ops.push(Op::Put(
                    Cf::Schedule,
                    keys::schedule(entry.next_attempt, &entry.id),
                    Vec::new(),
                ));
            }
        }
        ops
    }

    /// Removes a message and its schedule slot.
    pub fn delete_entry_ops(entry: &QueueEntry) -> Vec<Op> {
        vec![
            Op::Delete(Cf::Schedule, keys::schedule(entry.next_attempt, &entry.id)),
            Op::Delete(Cf::Queue, entry.id.as_bytes().to_vec()),
            Op::Delete(Cf::Messages, entry.id.as_bytes().to_vec()),
        ]
    }

    // ---- tracking ----------------------------------------------------------

    pub fn tracking_op<T: Serialize>(id: &str, record: &T) -> Op {
        Op::Put(Cf::Tracking, id.as_bytes().to_vec(), to_json(record))
    }

    pub fn tracking<T: DeserializeOwned>(&self, id: &str) -> Result<Option<T>, StoreError> {
        self.get_json(Cf::Tracking, id.as_bytes())
    }

    // ---- inbound feedback --------------------------------------------------

    pub fn inbound_ops(item: &InboundItem, message: &[u8]) -> Vec<Op> {
        vec![
            Op::Put(Cf::Messages, item.id.as_bytes().to_vec(), message.to_vec()),
            Op::Put(Cf::Inbound, item.id.as_bytes().to_vec(), to_json(item)),
        ]
    }

    pub fn inbound_items(&self) -> Result<Vec<InboundItem>, StoreError> {
        self.scan_prefix(Cf::Inbound, b"")?
            .into_iter()
            .map(|(k, v)| {
                serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                    key: format!("inbound/{}", String::from_utf8_lossy(&k)),
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    pub fn remove_inbound_ops(id: &str) -> Vec<Op> {
        vec![
            Op::Delete(Cf::Inbound, id.as_bytes().to_vec()),
            Op::Delete(Cf::Messages, id.as_bytes().to_vec()),
        ]
    }
}
