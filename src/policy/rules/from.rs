//! Honest sender: one well-formed From in a verified domain, a display name
//! that does not pose as another address, Reply-To and Sender at home.

use std::sync::LazyLock;

use regex::Regex;

use crate::consent::address::domain_of;
use crate::policy::confusables;
use crate::policy::message::{Mailbox, MessageView};
use crate::policy::{is_same_or_sub, SenderAuth, TenantPolicy};

static EMAILISH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[^\s@<>()]+@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)").expect("static regex")
});
static DOMAINISH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b((?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+(?:com|net|org|de|uk|io|info|biz|co|us|eu|fr|it|es|nl|ru|cn|jp|gov|edu|app|bank|xyz|online|shop|[a-z]{2}))\b")
        .expect("static regex")
});

fn valid_address(addr: &str) -> bool {
    match addr.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && local.len() <= 64
                && !local.contains(char::is_whitespace)
                && crate::values::address::is_domain(domain)
                && domain.contains('.')
        }
        None => false,
    }
}

pub fn check(
    policy: &TenantPolicy,
    m: &MessageView,
    auth: Option<&SenderAuth>,
    push: &mut impl FnMut(&'static str, Option<String>),
) {
    let from = match m.from.as_slice() {
        [] => {
            push(
                "from.missing",
                Some("no From header (RFC 5322 §3.6.2)".into()),
            );
            None
        }
        [one] => match one.as_slice() {
            [mailbox] => Some(mailbox),
            [] => {
                push(
                    "from.malformed",
                    Some("the From header holds no mailbox".into()),
                );
                None
            }
            _ => {
                push(
                    "from.multiple",
                    Some(format!(
                        "the From header names {} mailboxes; name one",
                        one.len()
                    )),
                );
                None
            }
        },
        many => {
            push(
                "from.multiple",
                Some(format!("{} From headers; send exactly one", many.len())),
            );
            None
        }
    };
    if let Some(mailbox) = from {
        check_mailbox(policy, mailbox, push);
    }
    if let (Some(auth), Some(domain)) = (auth, policy.sender_domain_of(m)) {
        if let Some(problem) = auth.problem(&policy.name, &domain) {
            push(
                "from.not_authenticated",
                Some(format!(
                    "mail from {domain} cannot authenticate yet: {problem} (postwarden domains check)"
                )),
            );
        }
    }
    if policy.check_reply_to {
        for mb in &m.reply_to {
            if let Some(addr) = &mb.address {
                if !domain_of(addr).is_some_and(|d| policy.owns_domain(&d)) {
                    push(
                        "reply_to.foreign",
                        Some(format!("Reply-To <{addr}> is outside the sender domains")),
                    );
                }
            }
        }
    }
    if policy.check_sender {
        for mb in &m.sender {
            if let Some(addr) = &mb.address {
                if !domain_of(addr).is_some_and(|d| policy.owns_domain(&d)) {
                    push(
                        "sender.foreign",
                        Some(format!("Sender <{addr}> is outside the sender domains")),
                    );
                }
            }
        }
    }
}

fn check_mailbox(
    policy: &TenantPolicy,
    mailbox: &Mailbox,
    push: &mut impl FnMut(&'static str, Option<String>),
) {
    let Some(address) = mailbox.address.as_deref().filter(|a| valid_address(a)) else {
        push(
            "from.malformed",
            Some(format!(
                "the From address {:?} is not a valid mailbox",
                mailbox.address.as_deref().unwrap_or("")
            )),
        );
        return;
    };
    let domain = domain_of(address).unwrap_or_default();
    if !policy.owns_domain(&domain) {
        push(
            "from.domain_not_verified",
            Some(format!(
                "From domain {domain} is not one of this account's sender domains ({})",
                policy.sender_domains.join(", ")
            )),
        );
    }
    if let Some(name) = &mailbox.name {
        // Fullwidth `ｐａｙｐａｌ．ｃｏｍ` shows a domain as much as `paypal.com`.
        let folded = confusables::nfkc(name);
        if let Some(foreign) = foreign_identity(&folded, &domain) {
            push(
                "from.display_name_spoof",
                Some(format!(
                    "the display name {name:?} shows {foreign}, which is not the From address"
                )),
            );
        }
        if let Some(word) = confusables::mixed_script_word(name) {
            push(
                "from.display_name_confusable",
                Some(format!(
                    "the display name {name:?} has the word {word:?}, which mixes scripts (look-alike letters)"
                )),
            );
        } else if let Some((word, brand)) = policy.protected_names.lookalike(name) {
            push(
                "from.display_name_confusable",
                Some(format!(
                    "the display name {name:?} has the word {word:?}, which looks like {brand:?} but is written with other characters"
                )),
            );
        }
    }
}

/// An address or domain in the display name that is not the From's own.
fn foreign_identity(name: &str, from_domain: &str) -> Option<String> {
    let related = |d: &str| {
        let d = d.to_ascii_lowercase();
        is_same_or_sub(&d, from_domain) || is_same_or_sub(from_domain, &d)
    };
    for cap in EMAILISH.captures_iter(name) {
        let domain = cap.get(1).map_or("", |m| m.as_str());
        if !related(domain) {
            return Some(cap[0].to_string());
        }
    }
    for cap in DOMAINISH.captures_iter(name) {
        let domain = &cap[1];
        if !related(domain) {
            return Some(domain.to_string());
        }
    }
    None
}
