//! Honest subject: present, not a fake reply, no hidden or look-alike
//! characters, not on the deceptive pattern list.

use std::sync::LazyLock;

use regex::Regex;

use crate::policy::confusables;
use crate::policy::message::MessageView;
use crate::policy::TenantPolicy;

/// Reply and forward prefixes in the languages mail clients write them.
static REPLY_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*[\[(]?\s*(re|aw|sv|vs|odp|antw|ynt|r|rif|res|wg|fwd?|fw|tr|rv|enc|doorst|vb|vl|pd|i)\s*(\[\d+\]|\(\d+\))?\s*[:：]")
        .expect("static regex")
});

pub fn check(
    policy: &TenantPolicy,
    m: &MessageView,
    push: &mut impl FnMut(&'static str, Option<String>),
) {
    let Some(subject) = m.subjects.first() else {
        push("subject.missing", Some("no Subject header".into()));
        return;
    };
    if subject.trim().is_empty() {
        push("subject.empty", Some("the Subject is empty".into()));
        return;
    }
    // What the reader sees: fullwidth `Ｒｅ:` reads as `Re:` (NFKC).
    let folded = confusables::nfkc(subject);
    if REPLY_PREFIX.is_match(&folded) && !m.has_in_reply_to && !m.has_references {
        push(
            "subject.fake_reply",
            Some(format!("{subject:?} looks like a reply or forward, but there is no In-Reply-To or References")),
        );
    }
    if let Some(what) = hidden_characters(subject) {
        push(
            "subject.hidden_characters",
            Some(format!("the Subject contains {what}")),
        );
    } else if let Some((word, name)) = policy.protected_names.lookalike(subject) {
        push(
            "subject.confusable",
            Some(format!(
                "the word {word:?} looks like {name:?} but is written with other characters (UTS #39)"
            )),
        );
    }
    if let Some(p) = policy
        .deceptive_subjects
        .iter()
        .find(|p| p.is_match(subject) || p.is_match(&folded))
    {
        push(
            "subject.deceptive",
            Some(format!(
                "{subject:?} matches the deceptive pattern {}",
                p.as_str()
            )),
        );
    }
}

/// Zero-width and bidi control characters, and words that mix scripts
/// ("Pаypal" with a Cyrillic а).
pub fn hidden_characters(s: &str) -> Option<String> {
    for c in s.chars() {
        if confusables::is_invisible(c) || (c.is_control() && c != '\t') {
            return Some(format!("the invisible character U+{:04X}", c as u32));
        }
    }
    if let Some(word) = confusables::mixed_script_word(s) {
        return Some(format!(
            "the word {word:?}, which mixes scripts (look-alike letters, UTS #39)"
        ));
    }
    None
}
