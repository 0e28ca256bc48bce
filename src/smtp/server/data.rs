//! The policy hooks of a session (MAIL: tenant, RCPT: recipient) and the
//! end of DATA, which hands the message to the acceptance pipeline and turns
//! its outcome into the reply.

use smtp_proto::request::receiver::{BdatReceiver, DataReceiver};
use tracing::warn;

use super::session::{Flow, Session, State, Transaction};
use crate::accept::{self, Outcome, Rejection, TempFailure};
use crate::values::ListenerKind;

impl Session {
    pub(super) fn data(&mut self) {
        match self.transaction.as_ref() {
            None => {
                self.errors += 1;
                self.reply("503 5.5.1 Error: need MAIL command");
            }
            Some(t) if t.recipients.is_empty() => {
                self.errors += 1;
                self.reply("554 5.5.1 Error: no valid recipients");
            }
            Some(t) if t.chunking => {
                self.errors += 1;
                self.reply("503 5.5.1 Error: DATA after BDAT");
            }
            Some(_) => {
                self.state = State::Data(DataReceiver::new());
                self.reply("354 End data with <CR><LF>.<CR><LF>");
            }
        }
    }

    pub(super) fn bdat(&mut self, chunk_size: usize, is_last: bool) {
        let valid = self
            .transaction
            .as_ref()
            .is_some_and(|t| !t.recipients.is_empty());
        if let Some(t) = self.transaction.as_mut() {
            t.chunking = true;
        }
        self.state = State::Bdat {
            receiver: BdatReceiver::new(chunk_size, is_last),
            discard: !valid,
        };
    }

    /// Moves message bytes from the input into the transaction; true when the
    /// end of DATA or of the BDAT chunk was reached.
    pub(super) fn ingest_message_bytes(&mut self) -> bool {
        let max = self.limits().max_message_size;
        let mut scratch = Vec::new();
        let (done, consumed) = {
            let mut iter = self.input.iter();
            let start = iter.len();
            let target = match self.transaction.as_mut() {
                Some(t) if !matches!(self.state, State::Bdat { discard: true, .. }) => {
                    &mut t.message
                }
                _ => &mut scratch,
            };
            let done = match &mut self.state {
                State::Data(r) => r.ingest(&mut iter, target),
                State::Bdat { receiver, .. } => receiver.ingest(&mut iter, target),
                _ => true,
            };
            (done, start - iter.len())
        };
        self.input.drain(..consumed);
        if let Some(t) = self.transaction.as_mut() {
            if t.message.len() > max {
                // Keep reading to stay in step, but keep nothing.
                t.too_big = true;
                t.message.clear();
            }
        }
        done
    }

    pub(super) async fn end_of_message(&mut self) -> Flow {
        let state = std::mem::replace(&mut self.state, State::Command);
        match state {
            State::Bdat { receiver, discard } => {
                if discard {
                    self.errors += 1;
                    if self.transaction.is_none() {
                        self.reply("503 5.5.1 Error: need MAIL command");
                    } else {
                        self.reply("554 5.5.1 Error: no valid recipients");
                    }
                    return Flow::More;
                }
                if !receiver.is_last {
                    let size = self.transaction.as_ref().map_or(0, |t| t.message.len());
                    self.reply(&format!("250 2.0.0 {size} octets received"));
                    return Flow::More;
                }
            }
            State::Data(_) => {}
            _ => return Flow::More,
        }
        let Some(txn) = self.transaction.take() else {
            return Flow::More;
        };
        if txn.too_big {
            warn!(
                "NOQUEUE: reject: END-OF-MESSAGE from [{}]: 552 5.3.4 message too big; from=<{}>",
                self.peer.ip(),
                txn.sender
            );
            self.reply("552 5.3.4 Message size exceeds fixed maximum message size");
            return Flow::More;
        }
        let reply = self.accept_message(txn).await;
        self.reply(&reply);
        Flow::More
    }

    /// `452 4.3.1` when the spool's file system has less than
    /// `min_free_space` left beyond `size` bytes (asked at MAIL FROM with
    /// the SIZE the client declared).
    pub(super) fn storage_refusal(&self, size: usize) -> Option<String> {
        let required = self.limits().required_free_space();
        accept::storage_check(&self.ctx.store, required, size)
            .err()
            .map(|why| temp_failure_reply(&why))
    }

    /// Hands a complete message to the acceptance pipeline; returns the reply.
    pub(super) async fn accept_message(&mut self, txn: Transaction) -> String {
        let message = normalize_line_ends(&txn.message);
        let client = accept::Client {
            ip: self.peer.ip(),
            helo: self.helo.clone(),
            protocol: self.protocol(),
            authenticated: self.authenticated,
        };
        let envelope = accept::Envelope {
            sender: txn.sender,
            flags: txn.flags,
            env_id: txn.env_id,
            recipients: txn.recipients,
        };
        let outcome = if self.kind == ListenerKind::Inbound {
            accept::inbound::accept(&self.ctx, &self.settings, &client, envelope, message).await
        } else {
            let submission = accept::submission::Submission {
                tenant: self.tenant.as_deref(),
                listener: self.kind,
                client: &client,
                envelope,
                message,
            };
            accept::submission::accept(&self.ctx, &self.settings, submission).await
        };
        reply(&outcome)
    }
}

/// The SMTP reply to an acceptance outcome (RFC 3463 enhanced codes).
fn reply(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Queued { id } => format!("250 2.0.0 Ok: queued as {id}"),
        Outcome::Rejected(Rejection::Policy(verdict)) => verdict.smtp_reply(),
        Outcome::Rejected(Rejection::BounceLevel { level }) => format!(
            "550 5.7.1 policy: recipient.bounce_level: every recipient has {level} or more soft bounces (X-Postwarden-Skip-Soft-Bounces: {level})"
        ),
        Outcome::Rejected(Rejection::BadSkipLevel) => {
            "554 5.6.0 Error: X-Postwarden-Skip-Soft-Bounces must be a whole number of at least 1".into()
        }
        Outcome::Rejected(Rejection::NotAuthenticated) => "530 5.7.0 Authentication required".into(),
        Outcome::Rejected(Rejection::Nul) => "554 5.6.0 Error: message contains NUL characters".into(),
        // Only the confirmation path refuses these; a session never meets them.
        Outcome::Rejected(
            Rejection::Suppressed
            | Rejection::AlreadyConfirmed
            | Rejection::UnknownTenant
            | Rejection::ContactQuota,
        ) => "550 5.7.1 policy: recipient.suppressed".into(),
        Outcome::TempFailure(why) => temp_failure_reply(why),
    }
}

fn temp_failure_reply(why: &TempFailure) -> String {
    match why {
        TempFailure::NoSpace => "452 4.3.1 Insufficient system storage",
        TempFailure::TenantGone => "451 4.3.0 Error: account no longer configured",
        TempFailure::ConsentLookup => {
            "451 4.3.0 Temporary failure reading consent records, try again"
        }
        TempFailure::SpoolWrite => "451 4.3.0 Error: queue file write error",
    }
    .into()
}

/// Stores lines ending in CRLF only: a bare LF becomes CRLF, a bare CR is
/// dropped (RFC 5321 §2.3.8 forbids both). Normalising, like Postfix, rather
/// than refusing keeps sloppy CRM exports flowing; and since delivery
/// dot-stuffs every line, a `\n.\n` in the input can never end a message
/// downstream (SMTP smuggling).
pub fn normalize_line_ends(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + 64);
    let mut rest = input;
    // From one CR or LF to the next (memchr: a byte at a time was 1.5 % of
    // the daemon's CPU).
    while let Some(i) = memchr::memchr2(b'\r', b'\n', rest) {
        out.extend_from_slice(&rest[..i]);
        let crlf = rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n');
        // A bare CR is dropped; a bare LF becomes CRLF.
        if crlf || rest[i] == b'\n' {
            out.extend_from_slice(b"\r\n");
        }
        rest = &rest[i + if crlf { 2 } else { 1 }..];
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_line_ends_are_normalised() {
        assert_eq!(
            normalize_line_ends(b"a\nb\r\nc\rd"),
            b"a\r\nb\r\ncd".to_vec()
        );
        assert_eq!(normalize_line_ends(b"x\n.\ny"), b"x\r\n.\r\ny".to_vec());
        for (input, want) in [
            (&b""[..], &b""[..]),
            (b"\r", b""),
            (b"\n", b"\r\n"),
            (b"\r\r\n\n", b"\r\n\r\n"),
            (b"a\r\n", b"a\r\n"),
            (b"\n\r", b"\r\n"),
        ] {
            assert_eq!(normalize_line_ends(input), want.to_vec(), "{input:?}");
        }
        // The same as a byte at a time, on random input.
        let reference = |input: &[u8]| {
            let mut out = Vec::new();
            let mut i = 0;
            while i < input.len() {
                match input[i] {
                    b'\r' if input.get(i + 1) == Some(&b'\n') => {
                        out.extend_from_slice(b"\r\n");
                        i += 2;
                    }
                    b'\r' => i += 1,
                    b'\n' => {
                        out.extend_from_slice(b"\r\n");
                        i += 1;
                    }
                    b => {
                        out.push(b);
                        i += 1;
                    }
                }
            }
            out
        };
        for m in
            crate::values::random::random_strings(&["\r", "\n", "\r\n", "a", "."], 11, 5000, 12)
        {
            assert_eq!(
                normalize_line_ends(m.as_bytes()),
                reference(m.as_bytes()),
                "{m:?}"
            );
        }
    }
}
