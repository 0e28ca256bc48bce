//! MAIL FROM (RFC 5321 §4.1.1.2): the tenant, its suspension, SIZE and the
//! free space of the spool.

use tracing::warn;

use super::session::{Session, Transaction};
use crate::policy;

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

    pub(super) async fn mail_from(&mut self, from: smtp_proto::MailFrom<String>) {
        if self.helo.is_none() {
            self.errors += 1;
            self.reply("503 5.5.1 Error: send HELO/EHLO first");
            return;
        }
        if self.transaction.is_some() {
            self.errors += 1;
            self.reply("503 5.5.1 Error: nested MAIL command");
            return;
        }
        if self.kind.is_submission() && self.tenant.is_none() {
            self.errors += 1;
            self.reply("530 5.7.0 Authentication required");
            return;
        }
        let max = self.limits().max_message_size;
        if from.size > max {
            self.reply("552 5.3.4 Message size exceeds fixed maximum message size");
            return;
        }
        if let Some(reply) = self.storage_refusal(from.size) {
            warn!(
                "NOQUEUE: reject: MAIL from [{}]: {reply}; from=<{}>",
                self.peer.ip(),
                from.address
            );
            self.reply(&reply);
            return;
        }
        if !from.address.is_empty() && super::rcpt::relay_trick(&from.address).is_some() {
            self.errors += 1;
            self.reply("501 5.1.7 Bad sender address syntax");
            return;
        }
        if let Some(tenant) = self.tenant.clone() {
            if let Some(reply) = self.tenant_refusal(&tenant) {
                warn!(
                    "NOQUEUE: reject: MAIL from [{}]: {reply}; from=<{}> tenant={tenant}",
                    self.peer.ip(),
                    from.address
                );
                self.reply(&reply);
                return;
            }
        }
        self.transaction = Some(Transaction {
            sender: from.address,
            flags: from.flags,
            env_id: from.env_id,
            recipients: Vec::new(),
            message: Vec::new(),
            too_big: false,
            chunking: false,
        });
        self.reply("250 2.1.0 Ok");
    }
}
