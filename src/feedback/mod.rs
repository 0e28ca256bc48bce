//! Feedback from the Internet: the mailboxes of the inbound listener under
//! `[feedback] domain`.

use crate::config::Feedback;

/// Which mailbox of the feedback domain a local part names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxKind {
    /// A VERP bounce address `b-TOKEN`.
    Bounce(String),
    /// A feedback-loop address (ARF reports).
    FeedbackLoop,
    Abuse,
    /// RFC 5321 §4.5.1: every domain that accepts mail has a postmaster.
    Postmaster,
    /// `unsubscribe+TOKEN` (the mailto: of List-Unsubscribe).
    Unsubscribe(String),
}

/// Classifies `local`; None for addresses we do not receive.
pub fn mailbox_kind(local: &str, feedback: &Feedback) -> Option<MailboxKind> {
    let lower = local.to_ascii_lowercase();
    if let Some(token) = local
        .strip_prefix("b-")
        .or_else(|| local.strip_prefix("B-"))
    {
        return (!token.is_empty()).then(|| MailboxKind::Bounce(token.to_string()));
    }
    if let Some(token) = lower.strip_prefix("unsubscribe+") {
        let token = &local[local.len() - token.len()..];
        return (!token.is_empty()).then(|| MailboxKind::Unsubscribe(token.to_string()));
    }
    if feedback
        .fbl_addresses
        .iter()
        .any(|a| a.eq_ignore_ascii_case(&lower))
    {
        return Some(MailboxKind::FeedbackLoop);
    }
    match lower.as_str() {
        "abuse" => Some(MailboxKind::Abuse),
        "postmaster" => Some(MailboxKind::Postmaster),
        _ => None,
    }
}

pub mod autoreply;
pub mod bounce;
pub mod classify;
pub mod processor;
pub mod report;
