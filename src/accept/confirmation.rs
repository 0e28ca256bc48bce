//! The double opt-in confirmation mail that a sign-up form asks for: the
//! pending consent and the mail go into the spool in one durable write, so
//! that neither exists without the other.

use tracing::{info, warn};

use super::{Outcome, Ready, Rejection, TempFailure};
use crate::config::Config;
use crate::consent::confirm::{self, ConfirmToken, MailParts};
use crate::consent::wording::{self, Wording};
use crate::consent::{self, ConsentProof, ConsentState, Contact, Evidence};
use crate::store::queue::{QueueEntry, Recipient, Tracking};
use crate::store::{Store, StoreError};
use crate::values::Lang;

/// A sign-up for one list that passed the form's (or the API's) checks.
#[derive(Debug, Clone)]
pub struct Request {
    pub tenant: String,
    pub list: String,
    /// Normalised and validated.
    pub address: String,
    /// The confirmation mail's From (`confirm::confirm_from`).
    pub from: String,
    /// The person's IP address; empty when a CRM's API call did not say.
    pub ip: String,
    pub user_agent: Option<String>,
    pub lang: Lang,
    /// The wording agreed to and where (checked by the caller).
    pub wording: Wording,
    pub proof: ConsentProof,
    /// form or api, for the evidence and the event.
    pub source: &'static str,
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
    if let Some(s) = consent::ConsentLookup::suppression(store, &r.tenant, &r.address)? {
        if s.reason != "unsubscribed" {
            info!(
                "subscribe: <{}> is suppressed ({}) for {}: no confirmation mail",
                r.address, s.reason, r.tenant
            );
            return Ok(Outcome::Rejected(Rejection::Suppressed));
        }
    }
    let existing = store.contact::<Contact>(&r.tenant, &r.list, &r.address)?;
    let is_new = existing.is_none();
    let mut contact = existing.unwrap_or_else(Contact::new);
    if contact.state == ConsentState::DoubleOptInConfirmed {
        info!(
            "subscribe: <{}> is already confirmed on {}/{}",
            r.address, r.tenant, r.list
        );
        return Ok(Outcome::Rejected(Rejection::AlreadyConfirmed));
    }
    let Some(tenant_config) = config.tenants.get(&r.tenant) else {
        // Gone with a reload since the form was checked: no mail, as before.
        return Ok(Outcome::Rejected(Rejection::UnknownTenant));
    };
    if is_new {
        // Read before the write: the first count is a scan.
        let count = consent::ops::contact_count(store, &r.tenant)?;
        if tenant_config.max_contacts.is_some_and(|max| count >= max) {
            warn!(
                "subscribe: {} is at its max_contacts ({count}): no sign-up for {}",
                r.tenant, r.list
            );
            return Ok(Outcome::Rejected(Rejection::ContactQuota));
        }
    }
    let qid = crate::values::queue_id::new_queue_id();
    let ready = confirmation_mail(config, tenant_config, secret, r, &qid, now);
    contact.state = ConsentState::DoubleOptInPending;
    contact.evidence.push(Evidence {
        at: now,
        state: ConsentState::DoubleOptInPending,
        source: r.source.into(),
        ip: Some(r.ip.clone()).filter(|ip| !ip.is_empty()),
        user_agent: r.user_agent.clone(),
        detail: Some(format!("confirmation mail {qid}")),
        consent: Some(r.proof.clone()),
    });
    let mut ops = ready.ops();
    ops.push(Store::put_contact_op(
        &r.tenant, &r.list, &r.address, &contact,
    ));
    ops.extend(wording::keep_op(
        store, &r.tenant, &r.list, &r.wording, now,
    )?);
    ops.push(Store::event_op(&serde_json::json!({
        "type": "consent_changed", "at": now, "tenant": r.tenant, "list": r.list,
        "address": r.address, "state": "double_opt_in_pending", "source": r.source, "ip": r.ip,
        "consent_version": r.wording.version,
    })));
    store.commit_blocking(ops)?;
    if is_new {
        consent::ops::count_added(store, &r.tenant, 1)?;
    }
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
        tenant: r.tenant.clone(),
        list: r.list.clone(),
        address: r.address.clone(),
        expires: now + tenant_config.confirm_token_ttl,
        consent: Some(r.wording.sha256.clone()),
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
            from: &r.from,
            to: &r.address,
            list: &r.list,
            url: &url,
            message_id: &message_id,
            date: &date,
            consent: &r.wording,
        },
    );
    let client = if r.ip.is_empty() {
        format!("localhost ({} API)", r.tenant)
    } else {
        format!("[{}]", r.ip)
    };
    let received = format!(
        "Received: from {client} by {} (postwarden) with HTTP id {qid}; {date}\r\n",
        config.server.hostname
    );
    let stored = crate::message::prepend_headers(&received, &mail);
    let mut entry = QueueEntry::new(
        qid.to_string(),
        &r.tenant,
        &r.from,
        vec![Recipient::new(r.address.clone())],
        now,
    );
    entry.size = stored.len();
    entry.message_id = Some(message_id.clone());
    entry.smtputf8 = !r.address.is_ascii();
    entry.eight_bit = true;
    entry.list = Some(r.list.clone());
    entry.client_ip = r.ip.clone();
    Ready {
        entry,
        message: stored,
        tracking: Some(Tracking {
            tenant: r.tenant.clone(),
            list: Some(r.list.clone()),
            recipients: vec![r.address.clone()],
            message_id: Some(message_id),
            at: now,
            sender_domain: None,
        }),
        events: Vec::new(),
    }
}
