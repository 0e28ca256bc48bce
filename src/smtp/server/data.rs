//! The policy hooks of a session (MAIL: tenant, RCPT: recipient, end of DATA:
//! message and consent) and durable acceptance into the spool.

use tracing::{info, warn};

use super::session::{Session, Transaction};
use super::ListenerKind;
use crate::consent::{normalize_address, Contact};
use crate::policy::{self, MessageView};
use crate::queue::entry::{InboundItem, QueueEntry};
use crate::queue::id::new_queue_id;
use crate::store::{Store, StoreError};

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
    if local.is_empty() || !crate::config::is_domain(domain) {
        return Some("bad domain");
    }
    None
}

impl Session {
    /// The MAIL FROM refusal for a suspended tenant, if any.
    pub(super) fn tenant_refusal(&self, tenant: &str) -> Option<String> {
        let policy = self.settings.policies.get(tenant)?;
        let state = match crate::tenant::state(&self.ctx.store, tenant) {
            Ok(s) => s,
            Err(e) => {
                warn!("cannot read tenant state of {tenant}: {e}");
                return Some("451 4.3.0 Temporary failure reading account state, try again".into());
            }
        };
        policy::check_tenant(policy, state.suspended.as_deref())
            .filter(|r| r.action == crate::config::RuleAction::Reject)
            .map(|_| {
                crate::metrics::rejected("tenant.suspended");
                "550 5.7.1 policy: tenant.suspended: account suspended".to_string()
            })
    }

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

    /// `452 4.3.1` when the spool's file system has less than
    /// `min_free_space` left beyond `size` bytes (Postfix's queue_minfree): a
    /// full disk is refused before RocksDB runs into it.
    pub(super) fn storage_refusal(&self, size: usize) -> Option<String> {
        let required = self.limits().required_free_space();
        if required == 0 {
            return None;
        }
        match self.ctx.store.free_space() {
            Ok(free) if free >= required.saturating_add(size as u64) => None,
            Ok(free) => {
                warn!("spool file system has {free} bytes free, {required} required beyond the message");
                Some("452 4.3.1 Insufficient system storage".into())
            }
            Err(e) => {
                warn!("{e}");
                None
            }
        }
    }

    /// Checks and queues a complete message; returns the reply.
    pub(super) async fn accept_message(&mut self, mut txn: Transaction) -> String {
        let started = std::time::Instant::now();
        let id = new_queue_id();
        if let Some(reply) = self.storage_refusal(txn.message.len()) {
            return reply;
        }
        let message = normalize_line_ends(&txn.message);
        if memchr::memchr(0, &message).is_some() {
            warn!(
                "{id}: reject: message from [{}] contains NUL",
                self.peer.ip()
            );
            return "554 5.6.0 Error: message contains NUL characters".into();
        }
        let now = crate::consent::now();
        let client = format!("[{}]", self.peer.ip());
        if self.kind == ListenerKind::Inbound {
            let reply = self.accept_inbound(id, txn, message, now).await;
            if reply.starts_with("250") {
                crate::metrics::accepted("inbound", started.elapsed().as_secs_f64());
            }
            return reply;
        }
        let Some(tenant) = self.tenant.clone() else {
            return "530 5.7.0 Authentication required".into();
        };
        let Some(policy) = self.settings.policies.get(&tenant) else {
            return "451 4.3.0 Error: account no longer configured".into();
        };
        let view = MessageView::parse(&message);
        let skip_level = match view.skip_soft_bounces.as_deref().map(str::parse::<u32>) {
            None => None,
            Some(Ok(n)) if n >= 1 => Some(n),
            Some(_) => {
                return "554 5.6.0 Error: X-Postwarden-Skip-Soft-Bounces must be a whole number of at least 1".into();
            }
        };
        let rcpts: Vec<String> = txn.recipients.iter().map(|r| r.address.clone()).collect();
        let verdict = match policy::check_message(policy, &view, &rcpts, &self.ctx.store) {
            Ok(v) => v,
            Err(e) => {
                warn!("{id}: consent look-up failed: {e}");
                return "451 4.3.0 Temporary failure reading consent records, try again".into();
            }
        };
        for w in verdict.warnings() {
            warn!(
                "{id}: warn: policy: {}: {}; tenant={tenant}",
                w.code, w.detail
            );
        }
        if verdict.is_reject() {
            let codes: Vec<&str> = verdict.rejections().map(|r| r.code).collect();
            for code in &codes {
                crate::metrics::rejected(code);
            }
            warn!(
                "NOQUEUE: reject: END-OF-MESSAGE from {client}: 550 5.7.1 policy: {}; from=<{}> tenant={tenant} message-id={}",
                codes.join(","),
                txn.sender,
                view.message_id.as_deref().unwrap_or("")
            );
            let event = serde_json::json!({
                "type": "policy_rejected",
                "at": now,
                "tenant": tenant,
                "reasons": codes,
                "message_id": view.message_id,
                "recipients": rcpts,
            });
            let config = self.settings.config.tenant(&tenant);
            let result =
                crate::tenant::record_checked(&self.ctx.store, &tenant, config, Some(event), |s| {
                    s.policy_rejected += 1;
                    for code in &codes {
                        *s.rejected_by_reason.entry(code.to_string()).or_default() += 1;
                    }
                    let window = crate::config::TenantConfig::suspension_window_of(config);
                    s.today(now, window, |d| d.policy_rejected += 1);
                });
            if let Err(e) = result {
                warn!("cannot record policy rejection: {e}");
            }
            return verdict.smtp_reply();
        }
        // The mailing's own restriction by bounce level: recipients with at
        // least that many soft bounces (within the tenant's window) are
        // skipped. The instruction is for us and is not passed on.
        let mut skipped = Vec::new();
        let mut message = message;
        if let Some(level) = skip_level {
            let list = policy.list_of(&view).unwrap_or_default();
            let window = crate::config::TenantConfig::soft_bounce_window_of(
                self.settings.config.tenant(&tenant),
            );
            let mut kept = Vec::new();
            for r in std::mem::take(&mut txn.recipients) {
                let address = normalize_address(&r.address);
                let contact = match self.ctx.store.contact::<Contact>(&tenant, &list, &address) {
                    Ok(c) => c,
                    Err(e) => {
                        warn!("{id}: consent look-up failed: {e}");
                        return "451 4.3.0 Temporary failure reading consent records, try again"
                            .into();
                    }
                };
                let soft = contact.map_or(0, |c| c.soft_bounce_level(now, window));
                if soft >= level {
                    skipped.push((address, soft));
                } else {
                    kept.push(r);
                }
            }
            txn.recipients = kept;
            if txn.recipients.is_empty() {
                warn!(
                    "NOQUEUE: reject: END-OF-MESSAGE from {client}: 550 5.7.1 policy: recipient.bounce_level; from=<{}> tenant={tenant}",
                    txn.sender
                );
                return format!(
                    "550 5.7.1 policy: recipient.bounce_level: every recipient has {level} or more soft bounces (X-Postwarden-Skip-Soft-Bounces: {level})"
                );
            }
            message = crate::queue::delivery::strip_headers(
                &message,
                &["x-postwarden-skip-soft-bounces"],
            );
        }
        let rcpts: Vec<String> = txn.recipients.iter().map(|r| r.address.clone()).collect();
        let mut headers = self.received_header(&id, &rcpts, now);
        if view.message_id.is_none() {
            let host = &self.settings.config.server.hostname;
            headers.push_str(&format!("Message-ID: <{id}@{host}>\r\n"));
        }
        if !view.has_date {
            headers.push_str(&format!("Date: {}\r\n", rfc2822_now()));
        }
        let mut stored = headers.into_bytes();
        stored.extend_from_slice(&message);
        let message_id = view
            .message_id
            .clone()
            .unwrap_or_else(|| format!("<{id}@{}>", self.settings.config.server.hostname));
        let entry = QueueEntry {
            id: id.clone(),
            tenant: tenant.clone(),
            sender: txn.sender.clone(),
            recipients: txn.recipients,
            received_at: now,
            next_attempt: now,
            size: stored.len(),
            message_id: Some(message_id.clone()),
            env_id: txn.env_id,
            ret_full: txn.flags & smtp_proto::MAIL_RET_FULL != 0,
            smtputf8: txn.flags & smtp_proto::MAIL_SMTPUTF8 != 0,
            eight_bit: txn.flags & smtp_proto::MAIL_BODY_8BITMIME != 0,
            held: false,
            per_recipient_copies: policy.unsubscribe_mode
                == crate::config::UnsubscribeMode::Managed,
            list: policy.list_of(&view),
            client_ip: self.peer.ip().to_string(),
            notice: false,
        };
        let mut ops = Store::enqueue_ops(&entry, &stored);
        ops.push(Store::tracking_op(
            &id,
            &crate::queue::entry::Tracking {
                tenant: tenant.clone(),
                list: entry.list.clone(),
                recipients: rcpts.iter().map(|r| normalize_address(r)).collect(),
                message_id: Some(message_id.clone()),
                at: now,
            },
        ));
        ops.push(Store::event_op(&serde_json::json!({
            "type": "queued", "at": now, "tenant": tenant, "queue_id": id,
            "message_id": message_id, "recipients": rcpts.len(),
        })));
        for (address, soft) in &skipped {
            ops.push(Store::event_op(&serde_json::json!({
                "type": "skipped", "at": now, "tenant": tenant, "queue_id": id,
                "message_id": message_id, "recipient": address,
                "reason": "bounce_level", "soft_bounces": soft,
            })));
        }
        if let Err(e) = self.ctx.store.commit(ops).await {
            return store_failure(&id, &e);
        }
        for (address, soft) in &skipped {
            info!(
                "{id}: skipped <{address}>: {soft} soft bounce(s), the mailing skips {} or more",
                skip_level.unwrap_or_default()
            );
        }
        info!(
            "{id}: client={client}, sasl_username={}",
            if self.authenticated {
                tenant.as_str()
            } else {
                ""
            }
        );
        info!("{id}: message-id={message_id}");
        info!(
            "{id}: from=<{}>, size={}, nrcpt={} (queue active)",
            txn.sender,
            entry.size,
            entry.recipients.len()
        );
        self.ctx
            .store
            .pending_counts()
            .add(&tenant, |c| c.submitted += 1);
        self.ctx.queue_ready(entry.next_attempt, id.clone());
        crate::metrics::accepted(self.kind.name(), started.elapsed().as_secs_f64());
        format!("250 2.0.0 Ok: queued as {id}")
    }

    async fn accept_inbound(
        &mut self,
        id: String,
        txn: Transaction,
        message: Vec<u8>,
        now: u64,
    ) -> String {
        let rcpts: Vec<String> = txn
            .recipients
            .iter()
            .map(|r| normalize_address(&r.address))
            .collect();
        let mut stored = self.received_header(&id, &rcpts, now).into_bytes();
        stored.extend_from_slice(&message);
        let item = InboundItem {
            id: id.clone(),
            sender: txn.sender.clone(),
            recipients: rcpts,
            received_at: now,
            size: stored.len(),
            client_ip: self.peer.ip().to_string(),
        };
        if let Err(e) = self
            .ctx
            .store
            .commit(Store::inbound_ops(&item, &stored))
            .await
        {
            return store_failure(&id, &e);
        }
        info!("{id}: client=[{}]", self.peer.ip());
        info!(
            "{id}: from=<{}>, size={}, nrcpt={} (inbound feedback)",
            txn.sender,
            item.size,
            item.recipients.len()
        );
        self.ctx.inbound.notify_one();
        format!("250 2.0.0 Ok: queued as {id}")
    }

    /// The trace header of RFC 5321 §4.4.
    fn received_header(&self, id: &str, rcpts: &[String], _now: u64) -> String {
        let helo = self.helo.as_deref().unwrap_or("unknown");
        let host = &self.settings.config.server.hostname;
        let for_clause = match rcpts {
            [one] => format!("\r\n\tfor <{one}>"),
            _ => String::new(),
        };
        format!(
            "Received: from {helo} ([{}])\r\n\tby {host} (postwarden) with {} id {id}{for_clause};\r\n\t{}\r\n",
            self.peer.ip(),
            self.protocol(),
            rfc2822_now()
        )
    }
}

fn store_failure(id: &str, e: &StoreError) -> String {
    warn!("{id}: cannot write to the spool: {e}");
    let text = e.to_string();
    if text.contains("No space") || text.contains("ENOSPC") || text.contains("space left") {
        "452 4.3.1 Insufficient system storage".into()
    } else {
        "451 4.3.0 Error: queue file write error".into()
    }
}

/// The current time as an RFC 5322 date.
pub fn rfc2822_now() -> String {
    httpdate::fmt_http_date(std::time::SystemTime::now()).replace("GMT", "+0000")
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
        for m in crate::policy::random_strings(&["\r", "\n", "\r\n", "a", "."], 11, 5000, 12) {
            assert_eq!(
                normalize_line_ends(m.as_bytes()),
                reference(m.as_bytes()),
                "{m:?}"
            );
        }
    }
}
