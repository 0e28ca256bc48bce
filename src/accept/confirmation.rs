//! The double opt-in confirmation mail that a sign-up form asks for: the
//! pending consent and the mail go into the spool in one durable write, so
//! that neither exists without the other.

use tracing::{info, warn};

use super::{Outcome, Ready, Rejection, TempFailure};
use crate::config::Config;
use crate::consent::confirm::{self, ConfirmToken, MailParts};
use crate::consent::{self, ConsentState, Contact, Evidence};
use crate::store::queue::{QueueEntry, Recipient, Tracking};
use crate::store::{Store, StoreError};
use crate::values::Lang;

/// A sign-up for one list, as the form sent it.
pub struct Request<'a> {
    pub tenant: &'a str,
    pub list: &'a str,
    /// Normalised and validated.
    pub address: &'a str,
    /// The confirmation mail's From (`confirm::confirm_from`).
    pub from: &'a str,
    pub ip: &'a str,
    pub user_agent: Option<String>,
    pub lang: Lang,
}

/// Records the pending state and queues the confirmation mail. Rejected
/// (and nothing written) when no mail should go out: the address is already
/// confirmed, or suppressed after a bounce or complaint. Blocking: the
/// consent lock may wait for PostgreSQL.
pub fn accept(store: &Store, config: &Config, secret: &[u8], r: &Request) -> Outcome {
    match queue(store, config, secret, r) {
        Ok(outcome) => outcome,
        Err(e) => {
            warn!("subscribe: cannot record ({}/{}): {e}", r.tenant, r.list);
            Outcome::TempFailure(TempFailure::SpoolWrite)
        }
    }
}

fn queue(
    store: &Store,
    config: &Config,
    secret: &[u8],
    r: &Request,
) -> Result<Outcome, StoreError> {
    let _guard = consent::lock(store)?;
    let now = crate::values::now();
    if let Some(s) = consent::ConsentLookup::suppression(store, r.tenant, r.address)? {
        if s.reason != "unsubscribed" {
            info!(
                "subscribe: <{}> is suppressed ({}) for {}: no confirmation mail",
                r.address, s.reason, r.tenant
            );
            return Ok(Outcome::Rejected(Rejection::Suppressed));
        }
    }
    let mut contact = store
        .contact::<Contact>(r.tenant, r.list, r.address)?
        .unwrap_or_else(Contact::new);
    if contact.state == ConsentState::DoubleOptInConfirmed {
        info!(
            "subscribe: <{}> is already confirmed on {}/{}",
            r.address, r.tenant, r.list
        );
        return Ok(Outcome::Rejected(Rejection::AlreadyConfirmed));
    }
    let Some(tenant_config) = config.tenants.get(r.tenant) else {
        // Gone with a reload since the form was checked: no mail, as before.
        return Ok(Outcome::Rejected(Rejection::UnknownTenant));
    };
    let qid = crate::values::queue_id::new_queue_id();
    let ready = confirmation_mail(config, tenant_config, secret, r, &qid, now);
    contact.state = ConsentState::DoubleOptInPending;
    contact.evidence.push(Evidence {
        at: now,
        state: ConsentState::DoubleOptInPending,
        source: "form".into(),
        ip: Some(r.ip.into()),
        user_agent: r.user_agent.clone(),
        detail: Some(format!("confirmation mail {qid}")),
    });
    let mut ops = ready.ops();
    ops.push(Store::put_contact_op(r.tenant, r.list, r.address, &contact));
    ops.push(Store::event_op(&serde_json::json!({
        "type": "consent_changed", "at": now, "tenant": r.tenant, "list": r.list,
        "address": r.address, "state": "double_opt_in_pending", "source": "form", "ip": r.ip,
    })));
    store.commit_blocking(ops)?;
    info!(
        "{qid}: from=<{}>, size={}, nrcpt=1 (confirmation for {}/{})",
        r.from, ready.entry.size, r.tenant, r.list
    );
    Ok(Outcome::Queued { id: qid })
}

/// The confirmation mail with its signed link, ready to be queued.
fn confirmation_mail(
    config: &Config,
    tenant_config: &crate::config::TenantConfig,
    secret: &[u8],
    r: &Request,
    qid: &str,
    now: u64,
) -> Ready {
    let token = ConfirmToken {
        tenant: r.tenant.into(),
        list: r.list.into(),
        address: r.address.into(),
        expires: now + tenant_config.confirm_token_ttl,
    }
    .sign(secret);
    let url = format!("{}/confirm/{token}", config.public_base_url());
    let message_id = format!("<{qid}@{}>", config.server.hostname);
    // The template was checked at config load; if it went away since, the
    // built-in text is better than no confirmation mail.
    let template = tenant_config.confirm_template.as_ref().and_then(|path| {
        std::fs::read_to_string(path)
            .map_err(|e| {
                warn!(
                    "cannot read {}: {e}; using the built-in text",
                    path.display()
                )
            })
            .ok()
    });
    let date = crate::values::clock::rfc2822_now();
    let mail = confirm::confirmation_mail(
        tenant_config,
        template.as_deref(),
        r.lang,
        &MailParts {
            from: r.from,
            to: r.address,
            list: r.list,
            url: &url,
            message_id: &message_id,
            date: &date,
        },
    );
    let received = format!(
        "Received: from [{}] by {} (postwarden) with HTTP id {qid}; {date}\r\n",
        r.ip, config.server.hostname
    );
    let stored = crate::message::prepend_headers(&received, &mail);
    let mut entry = QueueEntry::new(
        qid.to_string(),
        r.tenant,
        r.from,
        vec![Recipient::new(r.address.into())],
        now,
    );
    entry.size = stored.len();
    entry.message_id = Some(message_id.clone());
    entry.smtputf8 = !r.address.is_ascii();
    entry.eight_bit = true;
    entry.list = Some(r.list.into());
    entry.client_ip = r.ip.into();
    Ready {
        entry,
        message: stored,
        tracking: Some(Tracking {
            tenant: r.tenant.into(),
            list: Some(r.list.into()),
            recipients: vec![r.address.into()],
            message_id: Some(message_id),
            at: now,
        }),
        events: Vec::new(),
    }
}
