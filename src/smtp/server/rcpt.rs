//! RCPT TO (RFC 5321 §4.1.1.3): relay tricks, the inbound listener's
//! mailboxes, the suppression list, the recipient limit.

use tracing::warn;

use super::session::Session;
use crate::policy;
use crate::store::queue::Recipient;
use crate::values::ListenerKind;

/// Why an address is a relay trick, if it is one: routing syntax that some
/// MTAs still honour and that would make us relay where we must not.
pub fn relay_trick(address: &str) -> Option<&'static str> {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Some("no domain");
    };
    if address.starts_with('@') || address.contains(':') {
        return Some("source route");
    }
    if local.contains('@') || local.contains('"') {
        return Some("quoted or extra @ in the local part");
    }
    if local.contains('%') {
        return Some("% routing");
    }
    if local.contains('!') || domain.contains('!') {
        return Some("bang path");
    }
    if local.is_empty() || !crate::values::address::is_domain(domain) {
        return Some("bad domain");
    }
    None
}

impl Session {
    /// The RCPT TO refusal, if any: relay tricks, foreign domains on the
    /// inbound listener, suppressed addresses on submission.
    pub(super) fn recipient_refusal(&self, address: &str) -> Option<String> {
        if let Some(why) = relay_trick(address) {
            return Some(format!("550 5.7.1 <{address}>: relaying denied ({why})"));
        }
        match self.kind {
            ListenerKind::Inbound => self.inbound_refusal(address),
            _ => {
                let tenant = self.tenant.as_deref()?;
                let policy = self.settings.policies.get(tenant)?;
                match policy::check_recipient(policy, address, &self.ctx.store) {
                    Ok(Some(reason)) if reason.action == crate::config::RuleAction::Reject => Some(
                        format!("550 5.7.1 policy: {}: {}", reason.code, reason.detail),
                    ),
                    Ok(Some(reason)) => {
                        warn!(
                            "warn: RCPT <{address}>: policy: {}: {}",
                            reason.code, reason.detail
                        );
                        None
                    }
                    Ok(None) => None,
                    Err(e) => {
                        warn!("suppression look-up failed: {e}");
                        Some(
                            "451 4.3.0 Temporary failure reading the suppression list, try again"
                                .into(),
                        )
                    }
                }
            }
        }
    }

    fn inbound_refusal(&self, address: &str) -> Option<String> {
        let feedback = &self.settings.config.feedback;
        let (local, domain) = address.rsplit_once('@')?;
        if !domain.eq_ignore_ascii_case(&feedback.domain) {
            return Some(format!("550 5.7.1 <{address}>: relaying denied"));
        }
        if crate::feedback::mailbox_kind(local, feedback).is_none() {
            return Some(format!(
                "550 5.1.1 <{address}>: recipient address rejected: no such mailbox"
            ));
        }
        None
    }

    pub(super) async fn rcpt_to(&mut self, to: smtp_proto::RcptTo<String>) {
        let Some(txn) = self.transaction.as_ref() else {
            self.errors += 1;
            self.reply("503 5.5.1 Error: need MAIL command");
            return;
        };
        let (count, sender) = (txn.recipients.len(), txn.sender.clone());
        if count >= self.limits().max_recipients {
            self.reply("452 4.5.3 Error: too many recipients");
            return;
        }
        if let Some(reply) = self.recipient_refusal(&to.address) {
            let code = reply
                .split("policy: ")
                .nth(1)
                .and_then(|r| r.split(':').next())
                .unwrap_or("recipient.refused");
            crate::metrics::rejected(code);
            warn!(
                "NOQUEUE: reject: RCPT from [{}]: {reply}; from=<{sender}> to=<{}>",
                self.peer.ip(),
                to.address
            );
            self.errors += usize::from(reply.starts_with("501"));
            self.reply(&reply);
            return;
        }
        let mut recipient = Recipient::new(to.address);
        recipient.orcpt = to.orcpt;
        recipient.notify = to.flags;
        if let Some(txn) = self.transaction.as_mut() {
            txn.recipients.push(recipient);
        }
        self.reply("250 2.1.5 Ok");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_tricks_are_recognised() {
        for trick in [
            "user%other.example@host.example",
            "@a.example:user@b.example",
            "\"user@other\"@host.example",
            "user@other.example@host.example",
            "other.example!user@host.example",
            "user",
        ] {
            assert!(relay_trick(trick).is_some(), "{trick}");
        }
        assert!(relay_trick("jane.doe+news@example.test").is_none());
    }
}
