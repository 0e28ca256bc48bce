//! Bounce classification as data: a table of rules a postmaster can read and
//! extend, matched in order (KumoMTA's bounce classifier is the model).
//! The status code decides when there is a specific one; the text otherwise.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BounceClass {
    /// The address itself is bad: suppress at the hard limit.
    Hard,
    /// Temporary or not the recipient's fault: counted, suppressed only at the soft limit.
    Soft,
    Complaint,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Classification {
    pub class: BounceClass,
    pub reason: &'static str,
}

/// (enhanced status prefix, class, reason): most specific first.
const STATUS_RULES: &[(&str, BounceClass, &str)] = &[
    ("5.1.10", BounceClass::Hard, "host_unknown"),
    ("5.1.1", BounceClass::Hard, "user_unknown"),
    ("5.1.2", BounceClass::Hard, "host_unknown"),
    ("5.1.3", BounceClass::Hard, "user_unknown"),
    ("5.1.6", BounceClass::Hard, "user_unknown"),
    ("5.2.1", BounceClass::Soft, "mailbox_disabled"),
    ("5.2.2", BounceClass::Soft, "mailbox_full"),
    ("4.2.2", BounceClass::Soft, "mailbox_full"),
    ("5.2.3", BounceClass::Soft, "message_too_large"),
    ("5.3.4", BounceClass::Soft, "message_too_large"),
    ("5.7.26", BounceClass::Soft, "auth_failure"),
    ("5.7.25", BounceClass::Soft, "policy_blocked"),
    ("5.7.23", BounceClass::Soft, "auth_failure"),
    ("5.7.1", BounceClass::Soft, "policy_blocked"),
    ("4.7.", BounceClass::Soft, "rate_limited"),
    ("4.4.7", BounceClass::Soft, "expired"),
    ("4.4.", BounceClass::Soft, "network_error"),
    ("5.4.", BounceClass::Soft, "network_error"),
    ("5.6.", BounceClass::Soft, "content_rejected"),
    ("5.7.", BounceClass::Soft, "policy_blocked"),
];

/// (pattern on the diagnostic text, class, reason): for replies whose status is
/// generic (5.0.0, 5.5.0) or absent.
const TEXT_RULES: &[(&str, BounceClass, &str)] = &[
    (
        r"(?i)(user|mailbox|recipient|address)\s+(unknown|not found|does not exist|doesn't exist|invalid)|no such (user|mailbox|recipient)|unknown (user|recipient)|undeliverable address|user doesn't have|not a valid (mailbox|recipient)|invalid recipient|account does not exist",
        BounceClass::Hard,
        "user_unknown",
    ),
    (
        r"(?i)host (not found|unknown)|domain (not found|does not exist)|no mx|unrouteable",
        BounceClass::Hard,
        "host_unknown",
    ),
    (
        r"(?i)(mailbox|inbox|quota).{0,20}(full|exceeded)|over ?quota|insufficient (storage|space)",
        BounceClass::Soft,
        "mailbox_full",
    ),
    (
        r"(?i)(account|mailbox).{0,20}(disabled|suspended|inactive|deactivated|locked)",
        BounceClass::Soft,
        "mailbox_disabled",
    ),
    (
        r"(?i)(message|mail).{0,20}(too (large|big)|size exceeds)|exceeds.{0,20}size",
        BounceClass::Soft,
        "message_too_large",
    ),
    (
        r"(?i)\bspf\b|\bdkim\b|\bdmarc\b",
        BounceClass::Soft,
        "auth_failure",
    ),
    (
        r"(?i)spam|junk|bulk mail",
        BounceClass::Soft,
        "spam_blocked",
    ),
    (
        r"(?i)blacklist|blocklist|block list|black list|blocked|reputation|\brbl\b|spamhaus|denied|not allowed|relay",
        BounceClass::Soft,
        "policy_blocked",
    ),
    (
        r"(?i)too many (connections|messages|recipients)|rate limit|try (again )?later|throttl",
        BounceClass::Soft,
        "rate_limited",
    ),
    (
        r"(?i)virus|content|malware",
        BounceClass::Soft,
        "content_rejected",
    ),
    (
        r"(?i)timed? ?out|connection (refused|reset|lost)|network",
        BounceClass::Soft,
        "network_error",
    ),
];

static COMPILED_TEXT_RULES: LazyLock<Vec<(Regex, BounceClass, &'static str)>> =
    LazyLock::new(|| {
        TEXT_RULES
            .iter()
            .filter_map(|(p, c, r)| Regex::new(p).ok().map(|re| (re, *c, *r)))
            .collect()
    });

/// Classifies a failure from its enhanced status (e.g. "5.1.1") and text.
pub fn classify(status: Option<&str>, text: &str) -> Classification {
    let status = status.unwrap_or("");
    let specific = !status.is_empty() && !status.ends_with(".0.0") && status != "5.5.0";
    if specific {
        for (prefix, class, reason) in STATUS_RULES {
            let matches = if prefix.ends_with('.') {
                status.starts_with(prefix)
            } else {
                status == *prefix
            };
            if matches {
                return Classification {
                    class: *class,
                    reason,
                };
            }
        }
    }
    for (re, class, reason) in COMPILED_TEXT_RULES.iter() {
        if re.is_match(text) {
            return Classification {
                class: *class,
                reason,
            };
        }
    }
    let class = if status.starts_with('4') || status.starts_with('5') {
        BounceClass::Soft
    } else {
        BounceClass::Unknown
    };
    Classification {
        class,
        reason: "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_decide_when_specific() {
        assert_eq!(classify(Some("5.1.1"), "whatever").class, BounceClass::Hard);
        assert_eq!(classify(Some("5.2.2"), "").reason, "mailbox_full");
        assert_eq!(classify(Some("5.7.1"), "").class, BounceClass::Soft);
        assert_eq!(classify(Some("5.1.10"), "").reason, "host_unknown");
    }

    #[test]
    fn the_text_decides_for_generic_codes() {
        let c = classify(Some("5.0.0"), "550 sorry, no such user here");
        assert_eq!((c.class, c.reason), (BounceClass::Hard, "user_unknown"));
        let c = classify(None, "mailbox is full");
        assert_eq!(c.reason, "mailbox_full");
    }
}
