//! A sign-up form's post: its fields, the signed token that says when the
//! form was served, and the checks that keep bots from using the form to
//! flood a victim's inbox with confirmation mails ("subscription bombing").
//! Every check here refuses before anything is written or sent.

use crate::token;

const PURPOSE: &str = "form";

/// The field a person leaves empty: postwarden's form hides it from people
/// (and from screen readers and the tab order); bots fill in every field.
pub const HONEYPOT_FIELD: &str = "website";

/// When and for which list a form was served, signed with the site secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormToken {
    pub tenant: String,
    pub list: String,
    /// Unix milliseconds.
    pub served_ms: u64,
}

impl FormToken {
    pub fn sign(&self, secret: &[u8]) -> String {
        let payload = format!("{}\0{}\0{}", self.tenant, self.list, self.served_ms);
        token::sign(secret, PURPOSE, &payload)
    }

    /// The token's contents, if the site secret signed it.
    pub fn verify(secret: &[u8], text: &str) -> Option<FormToken> {
        let payload = token::verify(secret, PURPOSE, text)?;
        let mut parts = payload.split('\0');
        let (Some(tenant), Some(list), Some(served), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        Some(FormToken {
            tenant: tenant.into(),
            list: list.into(),
            served_ms: served.parse().ok()?,
        })
    }
}

/// Why a sign-up post is refused; `code` is its name in answers, events and
/// the `postwarden_subscribe_refused_total` metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The hidden field was filled in.
    Honeypot,
    /// No form token, though the tenant requires one.
    TokenMissing,
    /// Forged, or another tenant's or list's form.
    TokenInvalid,
    /// Posted sooner after the form was served than a person can fill it in.
    TooFast,
    /// Posted after `form_max_age`: the page should be loaded again.
    Stale,
    /// The consent field was not sent set.
    ConsentMissing,
    /// The version of the wording the form showed is not known.
    VersionUnknown,
    /// The CAPTCHA or proof-of-work verifier said no.
    HumanCheck,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Refusal::Honeypot => "honeypot",
            Refusal::TokenMissing => "form_token_missing",
            Refusal::TokenInvalid => "form_token_invalid",
            Refusal::TooFast => "too_fast",
            Refusal::Stale => "form_expired",
            Refusal::ConsentMissing => "consent_missing",
            Refusal::VersionUnknown => "consent_version_unknown",
            Refusal::HumanCheck => "human_check_failed",
        }
    }
}

/// The time check of a verified token at `now_ms`: not sooner than
/// `min_seconds` after the form was served, not later than `max_age`.
pub fn check_timing(
    t: &FormToken,
    now_ms: u64,
    min_seconds: u64,
    max_age: u64,
) -> Result<(), Refusal> {
    let waited = now_ms.saturating_sub(t.served_ms);
    if t.served_ms > now_ms || waited < min_seconds.saturating_mul(1000) {
        return Err(Refusal::TooFast);
    }
    if waited > max_age.saturating_mul(1000) {
        return Err(Refusal::Stale);
    }
    Ok(())
}

/// Whether a consent field's value says yes: what a checkbox sends (`on`
/// without a value attribute), `yes`, `true` or `1`. Anything else, an
/// empty value included, is no.
pub fn consent_given(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "yes" | "on" | "true" | "1"
    )
}

/// The fields of a sign-up post, from a form or a JSON object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    pub email: Option<String>,
    /// Set only when the post said yes ([`consent_given`]).
    pub consent: bool,
    pub consent_version: Option<String>,
    /// `en` or `de`: the language of the wording the form showed.
    pub lang: Option<String>,
    /// The page the form is on, as the form says.
    pub source: Option<String>,
    pub form_token: Option<String>,
    /// The honeypot's value, if the post had one that is not empty.
    pub honeypot: Option<String>,
    /// The human check's response (the tenant's `human_check_field`).
    pub human: Option<String>,
}

impl Fields {
    /// Reads a form (`application/x-www-form-urlencoded`) or, with `json`,
    /// a JSON object; None when the JSON does not parse as an object.
    pub fn parse(body: &[u8], json: bool, human_field: &str) -> Option<Fields> {
        let pairs: Vec<(String, String)> = if json {
            let v: serde_json::Value = serde_json::from_slice(body).ok()?;
            v.as_object()?
                .iter()
                .filter_map(|(k, v)| {
                    let text = match v {
                        serde_json::Value::String(s) => s.clone(),
                        serde_json::Value::Bool(b) => b.to_string(),
                        serde_json::Value::Number(n) => n.to_string(),
                        _ => return None,
                    };
                    Some((k.clone(), text))
                })
                .collect()
        } else {
            url::form_urlencoded::parse(body).into_owned().collect()
        };
        let mut f = Fields::default();
        for (k, v) in pairs {
            let keep = || Some(v.clone()).filter(|v| !v.is_empty());
            match k.as_str() {
                "email" => f.email = Some(v),
                // One "yes" among repeated fields is consent; a hidden
                // "no" before a checkbox does not undo it.
                "consent" => f.consent |= consent_given(&v),
                "consent_version" => f.consent_version = keep(),
                "lang" => f.lang = keep(),
                "source" => f.source = keep(),
                "form_token" => f.form_token = keep(),
                HONEYPOT_FIELD => f.honeypot = keep().filter(|v| !v.trim().is_empty()),
                k if k == human_field => f.human = keep(),
                _ => {}
            }
        }
        Some(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(served_ms: u64) -> FormToken {
        FormToken {
            tenant: "acme".into(),
            list: "news".into(),
            served_ms,
        }
    }

    #[test]
    fn a_token_is_bound_to_its_secret_tenant_and_list() {
        let signed = t(1_000).sign(b"k");
        assert_eq!(FormToken::verify(b"k", &signed), Some(t(1_000)));
        assert_eq!(FormToken::verify(b"other", &signed), None);
        // A confirmation token is not a form token.
        let other = token::sign(b"k", "confirm", "acme\0news\x001000");
        assert_eq!(FormToken::verify(b"k", &other), None);
    }

    #[test]
    fn timing_refuses_the_too_fast_and_the_stale() {
        let served = t(10_000);
        assert_eq!(check_timing(&served, 12_999, 3, 60), Err(Refusal::TooFast));
        assert_eq!(check_timing(&served, 13_000, 3, 60), Ok(()));
        assert_eq!(check_timing(&served, 70_000, 3, 60), Ok(()));
        assert_eq!(check_timing(&served, 70_001, 3, 60), Err(Refusal::Stale));
        // A token from the future (a clock step back) is not "waited long".
        assert_eq!(check_timing(&served, 9_000, 0, 60), Err(Refusal::TooFast));
    }

    #[test]
    fn consent_must_be_said_and_a_filled_honeypot_is_seen() {
        let f = Fields::parse(b"email=a%40b.test&consent=&website=", false, "x").unwrap();
        assert!(!f.consent);
        assert_eq!(f.honeypot, None);
        let f = Fields::parse(
            b"consent=no&consent=on&website=http%3A%2F%2Fspam",
            false,
            "x",
        )
        .unwrap();
        assert!(f.consent);
        assert_eq!(f.honeypot.as_deref(), Some("http://spam"));
        let f = Fields::parse(
            br#"{"email":"a@b.test","consent":true,"consent_version":"v1","x":"r"}"#,
            true,
            "x",
        )
        .unwrap();
        assert!(f.consent);
        assert_eq!(f.consent_version.as_deref(), Some("v1"));
        assert_eq!(f.human.as_deref(), Some("r"));
        assert!(
            !Fields::parse(br#"{"consent":"false"}"#, true, "x")
                .unwrap()
                .consent
        );
        assert_eq!(Fields::parse(b"[1]", true, "x"), None);
    }
}
