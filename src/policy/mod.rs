//! The submission policy: pure functions from (tenant settings, envelope,
//! message, consent look-ups) to a verdict with machine-readable reasons.
//!
//! No sockets and no database handles in here: consent arrives through the
//! [`ConsentLookup`] trait, so the same code serves the SMTP session and
//! `postwarden check`. Each rule is a small function in `rules/` with a stable
//! reason code.

mod confusables;
pub mod html;
pub mod message;
mod rules;

use std::collections::{BTreeMap, HashSet};

use regex::Regex;
use serde::Serialize;

use crate::config::{Config, RuleAction, TenantConfig, UnsubscribeMode};
use crate::consent::{normalize_address, ConsentLookup, ConsentState};
pub use message::MessageView;

pub use crate::values::RULE_CODES;

/// The shipped list of deceptive subject patterns (`[policy]
/// builtin_deceptive_subjects`): the phrasing of phishing and fake urgency.
/// Names often imitated in phishing with look-alike letters (the brands
/// APWG's phishing activity trends reports name most, and the large parcel
/// services and platforms), one word each: a display name or Subject word
/// that looks like one of them but is spelled otherwise is refused.
pub const BUILTIN_PROTECTED_NAMES: &[&str] = &[
    "PayPal",
    "Amazon",
    "Apple",
    "iCloud",
    "Microsoft",
    "Outlook",
    "Office365",
    "Google",
    "Gmail",
    "Netflix",
    "Facebook",
    "Instagram",
    "WhatsApp",
    "LinkedIn",
    "eBay",
    "DHL",
    "FedEx",
    "UPS",
    "USPS",
    "DocuSign",
    "Dropbox",
    "Adobe",
    "Chase",
    "Sparkasse",
    "Volksbank",
    "Postbank",
];

pub const BUILTIN_DECEPTIVE_SUBJECTS: &[&str] = &[
    r"(?i)\byour (account|mailbox|password) (has been|was|will be) (suspended|locked|closed|deactivated|disabled)\b",
    r"(?i)\b(verify|confirm|validate) your (account|password|identity|payment|billing)\b",
    r"(?i)\b(urgent|immediate) (action|response|attention) (is )?required\b",
    r"(?i)\byou('ve| have)? (won|been selected)\b",
    r"(?i)\b(final|last) (notice|warning)\b.*\b(account|payment|invoice)\b",
    r"(?i)\bunusual (sign[- ]?in|login) (activity|attempt)\b",
];

/// A failed rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    pub code: &'static str,
    /// RFC 3463 enhanced status code of the reply.
    pub smtp: &'static str,
    pub detail: String,
    pub action: RuleAction,
}

/// The outcome of a check: every failed rule, rejecting or warning.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub reasons: Vec<Reason>,
}

impl Verdict {
    pub fn is_reject(&self) -> bool {
        self.reasons.iter().any(|r| r.action == RuleAction::Reject)
    }

    pub fn rejections(&self) -> impl Iterator<Item = &Reason> {
        self.reasons
            .iter()
            .filter(|r| r.action == RuleAction::Reject)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Reason> {
        self.reasons.iter().filter(|r| r.action == RuleAction::Warn)
    }

    /// The JSON of DESIGN.md: `{"verdict": .., "reasons": [..]}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "verdict": if self.is_reject() { "reject" } else { "accept" },
            "reasons": self.reasons,
        })
    }

    /// The multi-line SMTP reply listing every rejecting rule (RFC 5321 §4.2.1).
    pub fn smtp_reply(&self) -> String {
        let lines: Vec<String> = self
            .rejections()
            .map(|r| format!("policy: {}: {}", r.code, r.detail))
            .collect();
        multiline_reply(550, "5.7.1", &lines)
    }
}

/// Formats `code esc text` lines as one multi-line reply.
pub fn multiline_reply(code: u16, esc: &str, lines: &[String]) -> String {
    let mut out = String::new();
    let n = lines.len().max(1);
    for i in 0..n {
        let sep = if i + 1 < n { '-' } else { ' ' };
        let text = lines.get(i).map(String::as_str).unwrap_or("");
        out.push_str(&format!("{code}{sep}{esc} {text}\r\n"));
    }
    out
}

/// A tenant's compiled policy: profile, overrides and patterns resolved once
/// at config load, so that checks do no parsing of settings.
#[derive(Debug, Clone)]
pub struct TenantPolicy {
    pub name: String,
    pub sender_domains: Vec<String>,
    pub unsubscribe_hosts: Vec<String>,
    pub unsubscribe_mode: UnsubscribeMode,
    pub default_list: Option<String>,
    pub allow_transactional: bool,
    pub check_reply_to: bool,
    pub check_sender: bool,
    pub allowed_consent: HashSet<ConsentState>,
    pub deceptive_subjects: Vec<Regex>,
    /// Body links that count as unsubscribe links besides the List-Unsubscribe URLs.
    pub unsubscribe_link_patterns: Vec<Regex>,
    /// Names a display name or Subject must not imitate: the shipped list,
    /// the site's, the tenant's, and each sender domain's name (`acme` of
    /// `news.acme.example`).
    pub protected_names: confusables::ProtectedNames,
    actions: BTreeMap<&'static str, RuleAction>,
}

impl TenantPolicy {
    /// The list a message is sent for: its List-Id, else the tenant's
    /// default list.
    pub fn list_of(&self, message: &MessageView) -> Option<String> {
        message
            .list_id
            .clone()
            .or_else(|| self.default_list.clone())
    }

    /// Builds the policy of tenant `name`. `own_hosts` are postwarden's own
    /// unsubscribe hosts (its public URL), always allowed in links.
    pub fn new(name: &str, tenant: &TenantConfig, config: &Config) -> TenantPolicy {
        let mut actions = BTreeMap::new();
        for code in RULE_CODES {
            actions.insert(*code, RuleAction::Reject);
        }
        // A sender that cannot yet authenticate is warned in `standard`
        // and refused in `strict` (see SenderAuth).
        if tenant.policy == "standard" {
            actions.insert("from.not_authenticated", RuleAction::Warn);
        }
        for (rule, action) in &tenant.rules {
            if let Some(code) = RULE_CODES.iter().find(|c| **c == rule.as_str()) {
                actions.insert(*code, *action);
            }
        }
        let mut allowed_consent: HashSet<ConsentState> = tenant
            .allowed_consent
            .iter()
            .filter_map(|s| ConsentState::parse(s))
            .collect();
        if allowed_consent.is_empty() {
            allowed_consent.insert(ConsentState::DoubleOptInConfirmed);
            if tenant.policy == "standard" {
                allowed_consent.insert(ConsentState::SingleOptIn);
            }
        }
        let mut patterns: Vec<&str> = Vec::new();
        if config.policy.builtin_deceptive_subjects {
            patterns.extend(BUILTIN_DECEPTIVE_SUBJECTS);
        }
        patterns.extend(config.policy.deceptive_subjects.iter().map(String::as_str));
        patterns.extend(tenant.deceptive_subjects.iter().map(String::as_str));
        let mut unsubscribe_hosts: Vec<String> = tenant
            .unsubscribe_hosts
            .iter()
            .chain(tenant.sender_domains.iter())
            .map(|h| h.to_ascii_lowercase())
            .collect();
        if let Some(host) = config
            .feedback
            .public_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| u.host_str().map(str::to_string))
        {
            unsubscribe_hosts.push(host.to_ascii_lowercase());
        }
        unsubscribe_hosts.push(config.server.hostname.to_ascii_lowercase());
        let mut protected_names: Vec<String> = Vec::new();
        if config.policy.builtin_protected_names {
            protected_names.extend(BUILTIN_PROTECTED_NAMES.iter().map(|n| n.to_string()));
        }
        protected_names.extend(config.policy.protected_names.iter().cloned());
        protected_names.extend(tenant.protected_names.iter().cloned());
        protected_names.extend(
            tenant
                .sender_domains
                .iter()
                .filter_map(|d| d.rsplit('.').nth(1))
                .filter(|label| label.chars().count() >= 3)
                .map(str::to_string),
        );
        TenantPolicy {
            name: name.to_string(),
            sender_domains: tenant
                .sender_domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            unsubscribe_hosts,
            unsubscribe_mode: tenant.unsubscribe,
            default_list: tenant.default_list.clone(),
            allow_transactional: tenant.allow_transactional,
            check_reply_to: tenant.check_reply_to,
            check_sender: tenant.check_sender,
            allowed_consent,
            // Patterns were validated at config load; an invalid one is skipped.
            deceptive_subjects: patterns
                .into_iter()
                .filter_map(|p| Regex::new(p).ok())
                .collect(),
            unsubscribe_link_patterns: tenant
                .unsubscribe_link_patterns
                .iter()
                .filter_map(|p| Regex::new(p).ok())
                .collect(),
            protected_names: confusables::ProtectedNames::new(
                protected_names.iter().map(String::as_str),
            ),
            actions,
        }
    }

    pub fn action(&self, code: &str) -> RuleAction {
        self.actions
            .get(code)
            .copied()
            .unwrap_or(RuleAction::Reject)
    }

    /// The sender domain the message's From address is of (itself or a
    /// subdomain), lower-case.
    pub fn sender_domain_of(&self, view: &MessageView) -> Option<String> {
        let from = view.from.first()?.first()?.address.as_deref()?;
        let domain = crate::values::address::domain_of(from)?;
        self.owner_of(&domain).map(|d| d.to_ascii_lowercase())
    }

    /// Whether `domain` is one of the sender domains or a subdomain of one.
    pub fn owns_domain(&self, domain: &str) -> bool {
        self.owner_of(domain).is_some()
    }

    /// The sender domain that `domain` is, or is a subdomain of.
    fn owner_of(&self, domain: &str) -> Option<&String> {
        let domain = domain.to_ascii_lowercase();
        self.sender_domains
            .iter()
            .find(|d| is_same_or_sub(&domain, d))
    }

    fn reason(&self, code: &'static str, detail: String) -> Option<Reason> {
        match self.action(code) {
            RuleAction::Off => None,
            action => Some(Reason {
                code,
                smtp: "5.7.1",
                detail,
                action,
            }),
        }
    }
}

/// What the daemon's last look-up found of each tenant's sender domains:
/// whether mail from them can authenticate (a DMARC record, the tenant's
/// DKIM key record matching its key, DKIM or SPF aligned with the From
/// domain). Kept up to date by the periodic re-check
/// (`queue::domains::keep_checking`); read by the rule
/// `from.not_authenticated`. A domain not yet looked up, or whose look-up
/// failed (a DNS outage says nothing about the records), is not refused.
#[derive(Debug, Default)]
pub struct SenderAuth {
    /// (tenant, sender domain) → None when clean, else what is missing.
    standing: std::sync::RwLock<std::collections::HashMap<(String, String), Option<String>>>,
}

impl SenderAuth {
    /// Records a look-up's outcome: None when the domain authenticates.
    pub fn set(&self, tenant: &str, domain: &str, problem: Option<String>) {
        let mut map = self.standing.write().unwrap_or_else(|p| p.into_inner());
        map.insert((tenant.to_string(), domain.to_ascii_lowercase()), problem);
    }

    /// What keeps `domain` of `tenant` from authenticating, when the last
    /// look-up found something.
    pub fn problem(&self, tenant: &str, domain: &str) -> Option<String> {
        let map = self.standing.read().unwrap_or_else(|p| p.into_inner());
        map.get(&(tenant.to_string(), domain.to_ascii_lowercase()))
            .cloned()
            .flatten()
    }

    /// Whether `domain` of `tenant` has been looked up.
    pub fn is_known(&self, tenant: &str, domain: &str) -> bool {
        let map = self.standing.read().unwrap_or_else(|p| p.into_inner());
        map.contains_key(&(tenant.to_string(), domain.to_ascii_lowercase()))
    }

    /// Forgets domains no longer in the configuration.
    pub fn retain(&self, keep: impl Fn(&str, &str) -> bool) {
        let mut map = self.standing.write().unwrap_or_else(|p| p.into_inner());
        map.retain(|(t, d), _| keep(t, d));
    }
}

pub fn is_same_or_sub(domain: &str, parent: &str) -> bool {
    domain == parent
        || (domain.len() > parent.len()
            && domain.ends_with(parent)
            && domain.as_bytes()[domain.len() - parent.len() - 1] == b'.')
}

/// The policies of every tenant in a configuration.
pub fn tenant_policies(config: &Config) -> BTreeMap<String, TenantPolicy> {
    config
        .tenants
        .iter()
        .map(|(name, t)| (name.clone(), TenantPolicy::new(name, t, config)))
        .collect()
}

/// The MAIL FROM check: a suspended tenant sends nothing.
pub fn check_tenant(policy: &TenantPolicy, suspended: Option<&str>) -> Option<Reason> {
    suspended.and_then(|why| {
        policy.reason(
            "tenant.suspended",
            format!("account suspended ({why}); contact the postmaster"),
        )
    })
}

/// The RCPT TO check: a suppressed address is never mailed, transactional or not.
pub fn check_recipient(
    policy: &TenantPolicy,
    recipient: &str,
    consent: &dyn ConsentLookup,
) -> Result<Option<Reason>, crate::store::StoreError> {
    let address = normalize_address(recipient);
    Ok(match consent.suppression(&policy.name, &address)? {
        Some(s) => policy.reason(
            "recipient.suppressed",
            format!("<{address}> is on the suppression list ({})", s.reason),
        ),
        None => None,
    })
}

/// The end-of-DATA check: every message rule, then consent of each recipient
/// for the message's list. Without recipients only the message rules run.
pub fn check_message(
    policy: &TenantPolicy,
    message: &MessageView,
    recipients: &[String],
    consent: &dyn ConsentLookup,
    auth: Option<&SenderAuth>,
) -> Result<Verdict, crate::store::StoreError> {
    let mut reasons = Vec::new();
    let mut push = |code: &'static str, detail: Option<String>| {
        if let Some(detail) = detail {
            if let Some(r) = policy.reason(code, detail) {
                reasons.push(r);
            }
        }
    };
    let transactional = policy.allow_transactional && message.is_transactional();
    rules::from::check(policy, message, auth, &mut push);
    rules::subject::check(policy, message, &mut push);
    if !transactional && policy.unsubscribe_mode == UnsubscribeMode::Own {
        rules::unsubscribe::check(policy, message, &mut push);
    }
    if !transactional {
        let list = policy.list_of(message);
        match list {
            None => push(
                "message.list_missing",
                Some(
                    "bulk mail needs a List-Id header (RFC 2919) or a default list for the tenant"
                        .into(),
                ),
            ),
            Some(list) if !recipients.is_empty() => {
                let mut refused = Vec::new();
                for r in recipients {
                    let address = normalize_address(r);
                    let state = consent.state(&policy.name, &list, &address)?;
                    if !policy.allowed_consent.contains(&state) {
                        refused.push(format!("<{address}> is {}", state.as_str()));
                    }
                }
                if !refused.is_empty() {
                    let mut allowed: Vec<&str> =
                        policy.allowed_consent.iter().map(|s| s.as_str()).collect();
                    allowed.sort();
                    push(
                        "recipient.no_consent",
                        Some(format!(
                            "no consent on list {list}: {} (needs {})",
                            refused.join(", "),
                            allowed.join(" or ")
                        )),
                    );
                }
            }
            Some(_) => {}
        }
    }
    Ok(Verdict { reasons })
}

#[cfg(test)]
mod tests;
