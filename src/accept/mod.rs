//! The acceptance pipeline: every path of mail into the queue goes through
//! here, as every Postfix message goes through cleanup.
//!
//! - [`submission`]: a CRM's message on the submission listeners (envelope,
//!   bytes, tenant, listener) → policy verdict, recipient filtering, header
//!   additions, the queue entry, the tracking record, the events and the
//!   counters, in one durable write;
//! - [`inbound`]: a bounce, report or abuse forward on the inbound listener,
//!   stored for the feedback processor;
//! - [`confirmation`]: the double opt-in confirmation mail of a sign-up form,
//!   queued in the same write as the pending consent;
//! - [`Ready::notice`]: a delivery status notice, queued in the same write as
//!   the delivery results that caused it.
//!
//! Each returns a typed [`Outcome`]; the protocol edges (SMTP, HTTP) only
//! turn it into their reply.

pub mod confirmation;
pub mod inbound;
pub mod submission;

use std::net::IpAddr;

use tracing::warn;

use crate::policy::Verdict;
use crate::runtime::{Context, Settings};
use crate::store::queue::{QueueEntry, Recipient, Tracking};
use crate::store::{Op, Store, StoreError};

/// The SMTP envelope of a message (RFC 5321 §2.3.1) with its ESMTP options.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// MAIL FROM ("" for the null sender).
    pub sender: String,
    /// smtp-proto's `MAIL_*` flags of MAIL FROM (RET, SMTPUTF8, BODY).
    pub flags: u64,
    /// RFC 3461 ENVID.
    pub env_id: Option<String>,
    pub recipients: Vec<Recipient>,
}

/// Who handed the message over, for the trace header and the log.
#[derive(Debug, Clone)]
pub struct Client {
    pub ip: IpAddr,
    /// The EHLO/HELO name, if one was given.
    pub helo: Option<String>,
    /// RFC 3848 protocol type (`ESMTPSA`, …) for the Received: header.
    pub protocol: &'static str,
    /// Whether the tenant authenticated (rather than a trusted network).
    pub authenticated: bool,
}

/// What became of a message handed to the pipeline.
#[derive(Debug)]
pub enum Outcome {
    /// Durably in the queue (or the inbound store) under this id.
    Queued { id: String },
    /// Refused for good; the sender must change something.
    Rejected(Rejection),
    /// Not accepted now; the same message may be tried again later.
    TempFailure(TempFailure),
}

/// Why a message was refused.
#[derive(Debug)]
pub enum Rejection {
    /// Rules of the tenant's policy failed; each reason has its code.
    Policy(Verdict),
    /// Every recipient was skipped by the mailing's own soft-bounce level.
    BounceLevel { level: u32 },
    /// An X-Postwarden-Skip-Soft-Bounces that is not a whole number ≥ 1.
    BadSkipLevel,
    /// No tenant: nobody authenticated on a submission listener.
    NotAuthenticated,
    /// NUL characters in the message (RFC 5321 §4.5.2 allows none).
    Nul,
    /// A confirmation mail to an address suppressed after a bounce or
    /// complaint (an unsubscribe may be undone by signing up again).
    Suppressed,
    /// A confirmation mail to an address that has confirmed already.
    AlreadyConfirmed,
    /// A confirmation mail for a tenant that a reload has removed.
    UnknownTenant,
    /// A sign-up of a new contact for a tenant at its `max_contacts`.
    ContactQuota,
}

/// Why a message could not be accepted now.
#[derive(Debug)]
pub enum TempFailure {
    /// The spool's file system is below `min_free_space`, or full.
    NoSpace,
    /// The tenant went away with a reload during the session.
    TenantGone,
    /// The consent records could not be read (the shared store is away).
    ConsentLookup,
    /// The spool refused the write.
    SpoolWrite,
}

/// A message ready to be queued: the entry, the bytes as they will be
/// stored, and what is written with them. Every path builds one; the writes
/// that queue it are the same for all.
pub struct Ready {
    pub entry: QueueEntry,
    /// The message with the headers the pipeline added.
    pub message: Vec<u8>,
    /// What feedback about the message will be matched against.
    pub tracking: Option<Tracking>,
    /// Events written in the same write (after the entry).
    pub events: Vec<serde_json::Value>,
}

impl Ready {
    /// A delivery status notice of delivery (`queue::dsn`): no tracking and
    /// no event, as it counts for no tenant and is never answered.
    pub fn notice(entry: QueueEntry, message: Vec<u8>) -> Ready {
        Ready {
            entry,
            message,
            tracking: None,
            events: Vec::new(),
        }
    }

    /// The writes that queue the message: entry, message and schedule slot,
    /// then the tracking record and the events.
    pub fn ops(&self) -> Vec<Op> {
        let mut ops = Store::enqueue_ops(&self.entry, &self.message);
        if let Some(tracking) = &self.tracking {
            ops.push(Store::tracking_op(&self.entry.id, tracking));
        }
        ops.extend(self.events.iter().map(Store::event_op));
        ops
    }

    /// Hands the message, once its write is durable, to the scheduler.
    pub fn hand_over(&self, ctx: &Context) {
        ctx.queue_ready(self.entry.next_attempt, self.entry.id.clone());
    }
}

/// The temporary failure of a spool write that failed with `e`.
pub fn store_failure(id: &str, e: &StoreError) -> TempFailure {
    warn!("{id}: cannot write to the spool: {e}");
    let text = e.to_string();
    if text.contains("No space") || text.contains("ENOSPC") || text.contains("space left") {
        TempFailure::NoSpace
    } else {
        TempFailure::SpoolWrite
    }
}

/// `NoSpace` when the spool's file system has less than `required` bytes
/// free beyond `size` (Postfix's queue_minfree): a full disk is refused
/// before RocksDB runs into it. `required` 0 turns the check off.
pub fn storage_check(store: &Store, required: u64, size: usize) -> Result<(), TempFailure> {
    if required == 0 {
        return Ok(());
    }
    match store.free_space() {
        Ok(free) if free >= required.saturating_add(size as u64) => Ok(()),
        Ok(free) => {
            warn!(
                "spool file system has {free} bytes free, {required} required beyond the message"
            );
            Err(TempFailure::NoSpace)
        }
        Err(e) => {
            warn!("{e}");
            Ok(())
        }
    }
}

/// The checks every message from a client passes first: room in the spool,
/// and no NUL characters.
pub fn first_checks(
    ctx: &Context,
    settings: &Settings,
    id: &str,
    client: &Client,
    message: &[u8],
) -> Result<(), Outcome> {
    let required = settings.config.limits.required_free_space();
    storage_check(&ctx.store, required, message.len()).map_err(Outcome::TempFailure)?;
    if memchr::memchr(0, message).is_some() {
        warn!("{id}: reject: message from [{}] contains NUL", client.ip);
        return Err(Outcome::Rejected(Rejection::Nul));
    }
    Ok(())
}

/// The trace header of RFC 5321 §4.4 for a message from `client`.
pub fn received_header(client: &Client, hostname: &str, id: &str, rcpts: &[String]) -> String {
    let helo = client.helo.as_deref().unwrap_or("unknown");
    let for_clause = match rcpts {
        [one] => format!("\r\n\tfor <{one}>"),
        _ => String::new(),
    };
    format!(
        "Received: from {helo} ([{}])\r\n\tby {hostname} (postwarden) with {} id {id}{for_clause};\r\n\t{}\r\n",
        client.ip,
        client.protocol,
        crate::values::clock::rfc2822_now()
    )
}
