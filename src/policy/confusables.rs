//! Look-alike characters in what a reader takes for a name: words that mix
//! scripts, and words that look like a protected name without being it
//! (UTS #39 §4 "Confusable Detection" and §5 "Mixed-Script Detection", from
//! the `unicode-security` crate), after NFKC folding (UAX #15), so that
//! fullwidth and other compatibility forms read as what they show.

use std::collections::HashMap;

use unicode_normalization::UnicodeNormalization;
use unicode_security::{MixedScript, RestrictionLevel, RestrictionLevelDetection};

/// Characters that take no room and show nothing: zero-width spaces and
/// joiners, bidi controls, the soft hyphen, Hangul fillers, the BOM.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}' | '\u{3164}' | '\u{FEFF}' | '\u{FFA0}')
}

/// Whether a reader sees anything of `s`: a character that is neither
/// white space, nor invisible, nor a control.
pub fn has_visible(s: &str) -> bool {
    s.chars()
        .any(|c| !c.is_whitespace() && !c.is_control() && !is_invisible(c))
}

/// `s` folded with NFKC: `Ｒｅ:` becomes `Re:`, `ﬁ` becomes `fi`.
pub fn nfkc(s: &str) -> String {
    s.nfkc().collect()
}

/// The words of `s`: runs of letters, digits and combining marks.
fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !(c.is_alphanumeric() || is_mark(c)))
        .filter(|w| !w.is_empty())
}

/// Combining marks (U+0300 block and friends) belong to their letter's word.
fn is_mark(c: char) -> bool {
    matches!(c, '\u{0300}'..='\u{036F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}' | '\u{20D0}'..='\u{20FF}' | '\u{FE20}'..='\u{FE2F}')
}

/// The first word of `s` whose letters come from more than one script,
/// beyond what UTS #39 §5.2 calls highly restrictive: `PаyPal` with a
/// Cyrillic `а` is one; a Japanese word of Han and Katakana, Latin with
/// Japanese (`Tシャツ`) or Korean, or an accented Latin word is not.
pub fn mixed_script_word(s: &str) -> Option<&str> {
    words(s).find(|w| {
        !w.is_ascii()
            && !w.is_single_script()
            && !w.check_restriction_level(RestrictionLevel::HighlyRestrictive)
    })
}

/// Names a reader must not be shown look-alikes of (a brand, the tenant's
/// own name), by their UTS #39 skeletons, computed once at config load.
#[derive(Debug, Clone, Default)]
pub struct ProtectedNames {
    by_skeleton: HashMap<String, String>,
}

impl ProtectedNames {
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> ProtectedNames {
        let by_skeleton = names
            .into_iter()
            .filter(|n| !n.trim().is_empty())
            .map(|n| (skeleton(n), n.to_string()))
            .collect();
        ProtectedNames { by_skeleton }
    }

    /// A word of `s` that a reader would take for one of the names but that
    /// is spelled with other characters: its skeleton is the name's, while
    /// the word itself (case and compatibility forms aside) is not.
    /// Returns (the word, the name).
    pub fn lookalike<'a>(&self, s: &'a str) -> Option<(&'a str, &str)> {
        if self.by_skeleton.is_empty() {
            return None;
        }
        for word in words(s) {
            if let Some(name) = self.by_skeleton.get(&skeleton(word)) {
                if nfkc(word).to_lowercase() != name.to_lowercase() {
                    return Some((word, name));
                }
            }
        }
        None
    }
}

/// The UTS #39 skeleton, lower-cased and mapped again (the confusables
/// table maps `I` and `l` alike but keeps most capitals as they are).
fn skeleton(s: &str) -> String {
    let once: String = unicode_security::skeleton(&nfkc(s)).collect();
    unicode_security::skeleton(&once.to_lowercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> ProtectedNames {
        ProtectedNames::new(["PayPal", "Amazon", "acme"])
    }

    fn lookalike<'a>(s: &'a str, names: &ProtectedNames) -> Option<(&'a str, String)> {
        names.lookalike(s).map(|(w, n)| (w, n.to_string()))
    }

    #[test]
    fn fullwidth_and_compatibility_forms_fold_to_what_they_show() {
        assert_eq!(nfkc("Ｒｅ: your order"), "Re: your order");
        assert_eq!(nfkc("ﬁnal oﬀer"), "final offer");
    }

    #[test]
    fn a_word_of_two_scripts_is_found_and_honest_names_are_not() {
        // A Cyrillic а (U+0430) and a Greek ο (U+03BF) in Latin words.
        assert_eq!(
            mixed_script_word("P\u{0430}yPal Support"),
            Some("P\u{0430}yPal")
        );
        assert_eq!(
            mixed_script_word("Micr\u{03BF}soft Billing"),
            Some("Micr\u{03BF}soft")
        );
        for honest in [
            "Ærø Bücher",
            "Ελληνικά Νέα",
            "Новости",
            "東京ニュース",
            "Café Müller & Söhne",
            "O'Brien's Weekly 2026",
            "Łódź Świętokrzyska",
            "Zoë Saldaña",
            "서울 소식",
            "أخبار اليوم",
            "Tシャツ特集",
            "iPhone用ケース",
        ] {
            assert_eq!(mixed_script_word(honest), None, "{honest}");
        }
    }

    #[test]
    fn a_word_shaped_like_a_protected_name_is_found() {
        let names = names();
        // A capital I for the l, "rn" for the m, a digit 1 for the l.
        assert_eq!(
            lookalike("PaypaI Support", &names),
            Some(("PaypaI", "PayPal".into()))
        );
        assert_eq!(
            lookalike("Arnazon deals", &names),
            Some(("Arnazon", "Amazon".into()))
        );
        assert_eq!(
            lookalike("Your Paypa1 receipt", &names),
            Some(("Paypa1", "PayPal".into()))
        );
        // Fullwidth letters in another script are a look-alike too.
        assert_eq!(
            lookalike("\u{0410}cme News", &names),
            Some(("\u{0410}cme", "acme".into()))
        );
    }

    #[test]
    fn the_name_itself_and_other_words_are_not_lookalikes() {
        let names = names();
        for honest in [
            "PayPal Support",
            "PAYPAL",
            "Acme News",
            "Amazonas Reisen",
            "Pay Pal",
            "Ελληνικά Νέα",
            "Новости",
            "東京ニュース",
            "Ærø Bücher",
        ] {
            assert_eq!(lookalike(honest, &names), None, "{honest}");
        }
        assert_eq!(lookalike("PaypaI", &ProtectedNames::default()), None);
    }
}
