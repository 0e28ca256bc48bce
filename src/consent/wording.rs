//! The consent wording a sign-up form shows, and what the evidence keeps of
//! it: the version's name, the language, and the SHA-256 of the exact text.
//!
//! Each text used is also kept in the store under its hash (per tenant and
//! list, for as long as the tenant), so that an evidence export can show the
//! words a person agreed to after the configuration has moved on, and so
//! that a form served before a new version was configured still verifies.

use serde::{Deserialize, Serialize};

use crate::config::{ConsentWording, TenantConfig};
use crate::store::{Op, Store, StoreError};
use crate::values::Lang;

/// The version name of the built-in wording, used when a tenant configured
/// none. Change the built-in texts only together with this name.
pub const BUILTIN_VERSION: &str = "builtin-1";

/// One wording as a form shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wording {
    pub version: String,
    /// The language of `text` (a German page shows the English text when
    /// the wording has no German one, and says so here).
    pub lang: String,
    pub text: String,
    /// Lower-case hex SHA-256 of `text` (UTF-8).
    pub sha256: String,
}

impl Wording {
    fn new(version: &str, lang: Lang, text: String) -> Wording {
        Wording {
            version: version.into(),
            lang: lang.code().into(),
            sha256: crate::token::sha256_hex(&text),
            text,
        }
    }
}

/// The wording in force now for `list` of the tenant, in `lang` if it has
/// that language: the list's own, else the tenant's, else the built-in one.
pub fn current(tenant: &TenantConfig, list: &str, lang: Lang) -> Wording {
    let configured = tenant
        .consent
        .lists
        .get(list)
        .or(Some(&tenant.consent).filter(|w| w.version.is_some()));
    let Some(w) = configured else {
        return builtin(tenant, list, lang);
    };
    let version = w.version.as_deref().unwrap_or(BUILTIN_VERSION);
    match text_in(w, lang) {
        Some((l, text)) => Wording::new(version, l, text.replace("{list}", list)),
        None => builtin(tenant, list, lang),
    }
}

/// The text in `lang`, else in the other language.
fn text_in(w: &ConsentWording, lang: Lang) -> Option<(Lang, &str)> {
    let of = |l: Lang| match l {
        Lang::En => w.en.as_deref(),
        Lang::De => w.de.as_deref(),
    };
    let other = match lang {
        Lang::En => Lang::De,
        Lang::De => Lang::En,
    };
    of(lang)
        .map(|t| (lang, t))
        .or_else(|| of(other).map(|t| (other, t)))
}

/// The built-in wording: the list, who sends it, and how to withdraw.
fn builtin(tenant: &TenantConfig, list: &str, lang: Lang) -> Wording {
    let sender = tenant
        .sender_domains
        .first()
        .map(String::as_str)
        .unwrap_or(list);
    let text = match lang {
        Lang::En => format!(
            "I agree to receive the mailing list \u{201c}{list}\u{201d} from {sender} by email. \
I can withdraw this consent at any time with the unsubscribe link in every mail."
        ),
        Lang::De => format!(
            "Ich willige ein, die Mailingliste \u{201e}{list}\u{201c} von {sender} per E-Mail zu \
erhalten. Ich kann diese Einwilligung jederzeit \u{fc}ber den Abmeldelink in jeder Mail widerrufen."
        ),
    };
    Wording::new(BUILTIN_VERSION, lang, text)
}

/// The wording a form that showed `version` in `lang` agreed to: the one in
/// force now, or one used before under that name (newest first). None: the
/// store never saw it, so the evidence could not say what was shown.
pub fn find(
    store: &Store,
    tenant_name: &str,
    tenant: &TenantConfig,
    list: &str,
    version: &str,
    lang: Lang,
) -> Result<Option<Wording>, StoreError> {
    let now = current(tenant, list, lang);
    if now.version == version {
        return Ok(Some(now));
    }
    let mut known: Vec<Kept> = store
        .consent_texts::<Kept>(tenant_name, list)?
        .into_iter()
        .filter(|k| k.wording.version == version)
        .collect();
    known.sort_by_key(|k| std::cmp::Reverse(k.first_used));
    let pick = known
        .iter()
        .find(|k| k.wording.lang == lang.code())
        .or(known.first());
    Ok(pick.map(|k| k.wording.clone()))
}

/// A wording as the store keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Kept {
    #[serde(flatten)]
    pub wording: Wording,
    /// Unix seconds of the first sign-up that agreed to it.
    pub first_used: u64,
}

/// The write that keeps `wording` for the evidence, or None when the store
/// has it already (the first use's time stays).
pub fn keep_op(
    store: &Store,
    tenant: &str,
    list: &str,
    wording: &Wording,
    now: u64,
) -> Result<Option<Op>, StoreError> {
    if store
        .consent_text::<Kept>(tenant, list, &wording.sha256)?
        .is_some()
    {
        return Ok(None);
    }
    Ok(Some(Store::put_consent_text_op(
        tenant,
        list,
        &wording.sha256,
        &Kept {
            wording: wording.clone(),
            first_used: now,
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantConfig {
        TenantConfig {
            sender_domains: vec!["acme.example".into()],
            ..TenantConfig::default()
        }
    }

    #[test]
    fn without_a_configured_text_the_builtin_names_list_and_sender() {
        let w = current(&tenant(), "news.acme.example", Lang::De);
        assert_eq!(w.version, BUILTIN_VERSION);
        assert_eq!(w.lang, "de");
        assert!(w
            .text
            .contains("\u{201e}news.acme.example\u{201c} von acme.example"));
        assert_eq!(w.sha256, crate::token::sha256_hex(&w.text));
    }

    #[test]
    fn a_list_wording_wins_and_a_missing_language_falls_back() {
        let mut t = tenant();
        t.consent = ConsentWording {
            version: Some("2026-11".into()),
            en: Some("Send me {list}.".into()),
            ..ConsentWording::default()
        };
        t.consent.lists.insert(
            "offers".into(),
            ConsentWording {
                version: Some("offers-2".into()),
                de: Some("Angebote bitte.".into()),
                ..ConsentWording::default()
            },
        );
        let w = current(&t, "news", Lang::De);
        assert_eq!((w.version.as_str(), w.lang.as_str()), ("2026-11", "en"));
        assert_eq!(w.text, "Send me news.");
        let w = current(&t, "offers", Lang::En);
        assert_eq!((w.version.as_str(), w.lang.as_str()), ("offers-2", "de"));
        // One changed character is another hash.
        assert_ne!(
            current(&t, "news", Lang::En).sha256,
            current(&t, "newz", Lang::En).sha256
        );
    }

    #[test]
    fn a_form_served_before_a_new_version_still_names_its_own_wording() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut t = tenant();
        t.consent = ConsentWording {
            version: Some("v1".into()),
            en: Some("Old words.".into()),
            ..ConsentWording::default()
        };
        let old = current(&t, "news", Lang::En);
        let op = keep_op(&store, "acme", "news", &old, 100).unwrap().unwrap();
        store.commit_blocking(vec![op]).unwrap();
        // Kept once: a second use writes nothing and the first time stays.
        assert!(keep_op(&store, "acme", "news", &old, 200)
            .unwrap()
            .is_none());
        // The wording changes under a new version.
        t.consent.version = Some("v2".into());
        t.consent.en = Some("New words.".into());
        let find = |v: &str, list: &str| find(&store, "acme", &t, list, v, Lang::En).unwrap();
        assert_eq!(find("v2", "news").unwrap().text, "New words.");
        let before = find("v1", "news").unwrap();
        assert_eq!(
            (before.text.as_str(), before.sha256),
            ("Old words.", old.sha256)
        );
        // Unknown versions, and another list's old wording, are not found.
        assert_eq!(find("v0", "news"), None);
        assert_eq!(find("v1", "offers"), None);
        // A German page asking for v1 gets the English words v1 had.
        let de = super::find(&store, "acme", &t, "news", "v1", Lang::De).unwrap();
        assert_eq!(de.unwrap().lang, "en");
    }
}
