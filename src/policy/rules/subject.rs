//! Honest subject: present, not a fake reply, no hidden or look-alike
//! characters, not on the deceptive pattern list.

use std::sync::LazyLock;

use regex::Regex;

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
    if REPLY_PREFIX.is_match(subject) && !m.has_in_reply_to && !m.has_references {
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
    }
    if let Some(p) = policy
        .deceptive_subjects
        .iter()
        .find(|p| p.is_match(subject))
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

/// Zero-width and bidi control characters, and words that mix Latin letters
/// with Cyrillic or Greek look-alikes ("Pаypal" with a Cyrillic а).
pub fn hidden_characters(s: &str) -> Option<String> {
    for c in s.chars() {
        let hidden = matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
            | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}' | '\u{3164}' | '\u{FEFF}' | '\u{FFA0}')
            || (c.is_control() && c != '\t');
        if hidden {
            return Some(format!("the invisible character U+{:04X}", c as u32));
        }
    }
    for word in s.split(|c: char| !c.is_alphanumeric()) {
        let latin = word
            .chars()
            .any(|c| c.is_ascii_alphabetic() || ('\u{00C0}'..='\u{024F}').contains(&c));
        let cyrillic = word.chars().any(|c| ('\u{0400}'..='\u{04FF}').contains(&c));
        let greek = word.chars().any(|c| ('\u{0370}'..='\u{03FF}').contains(&c));
        if latin && (cyrillic || greek) {
            return Some(format!(
                "the word {word:?}, which mixes Latin with {} look-alikes",
                if cyrillic { "Cyrillic" } else { "Greek" }
            ));
        }
    }
    None
}
