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
    if local.is_empty() || ascii_domain(domain).is_none() {
        return Some("bad domain");
    }
    None
}

/// `domain` as its A-label form (UTS 46, the `idna` crate): a U-label
/// domain (`bücher.example`) and its A-label (`xn--bcher-kva.example`) are
/// one domain. None when it is no domain name.
pub fn ascii_domain(domain: &str) -> Option<String> {
    idna::domain_to_ascii(domain)
        .ok()
        .filter(|a| crate::values::address::is_domain(a))
}

/// What is wrong with `address` as a recipient, in words for the reply
/// (RFC 5321 §4.1.2 and RFC 6531 §3.3); None when it is well formed.
/// `smtputf8`: the client gave SMTPUTF8 on MAIL FROM.
pub fn syntax_problem(address: &str, smtputf8: bool) -> Option<(&'static str, String)> {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Some(("5.1.3", "no @ and domain".into()));
    };
    if local.is_empty() {
        return Some(("5.1.3", "nothing before the @".into()));
    }
    if local.len() > 64 {
        return Some((
            "5.1.3",
            "the part before the @ is longer than 64 octets".into(),
        ));
    }
    if domain.is_empty() {
        return Some(("5.1.2", "nothing after the @".into()));
    }
    if ascii_domain(domain).is_none() {
        return Some((
            "5.1.2",
            format!("{domain:?} is not a valid domain name (UTS 46)"),
        ));
    }
    // A U-label domain has an ASCII form, taken without SMTPUTF8 too; a
    // UTF-8 local part has none (RFC 6531 §3.4).
    if !smtputf8 && !local.is_ascii() {
        return Some((
            "5.6.7",
            "a UTF-8 local part needs SMTPUTF8 on MAIL FROM (RFC 6531)".into(),
        ));
    }
    None
}

/// `address` with its domain as the A-label: how a recipient is queued, so
/// that the MX look-up, the route and a server without SMTPUTF8 all get
/// the ASCII form (the local part stays as written).
pub fn with_ascii_domain(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => match ascii_domain(domain) {
            Some(ascii) => format!("{local}@{ascii}"),
            None => address.to_string(),
        },
        None => address.to_string(),
    }
}

impl Session {
    /// The RCPT TO refusal, if any: relay tricks, foreign domains on the
    /// inbound listener, suppressed addresses on submission.
    pub(super) fn recipient_refusal(&self, address: &str) -> Option<String> {
        let smtputf8 = self
            .transaction
            .as_ref()
            .is_some_and(|t| t.flags & smtp_proto::MAIL_SMTPUTF8 != 0);
        // A relay trick is refused as one; any other malformed address
        // (relay_trick's "bad domain" and "no domain" among them) is told
        // what is wrong with it.
        if let Some(why) =
            relay_trick(address).filter(|why| !matches!(*why, "bad domain" | "no domain"))
        {
            return Some(format!("550 5.7.1 <{address}>: relaying denied ({why})"));
        }
        if let Some((status, why)) = syntax_problem(address, smtputf8) {
            let code = if status == "5.6.7" { 553 } else { 501 };
            return Some(format!(
                "{code} {status} <{address}>: bad recipient address: {why}"
            ));
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
        let mut recipient = Recipient::new(with_ascii_domain(&to.address));
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
        assert!(relay_trick("joerg@bücher.example").is_none());
    }

    #[test]
    fn a_malformed_address_is_told_what_is_wrong() {
        assert!(syntax_problem("joerg@bücher.example", false).is_none());
        assert!(syntax_problem("joerg@xn--bcher-kva.example", false).is_none());
        assert_eq!(
            syntax_problem("jörg@example.test", false).map(|p| p.0),
            Some("5.6.7")
        );
        assert!(syntax_problem("jörg@bücher.example", true).is_none());
        assert_eq!(syntax_problem("jane@", false).map(|p| p.0), Some("5.1.2"));
        assert_eq!(
            syntax_problem("jane@exa mple.test", false).map(|p| p.0),
            Some("5.1.2")
        );
        assert_eq!(syntax_problem("jane", false).map(|p| p.0), Some("5.1.3"));
        assert_eq!(
            with_ascii_domain("Jörg@Bücher.example"),
            "Jörg@xn--bcher-kva.example"
        );
    }
}
