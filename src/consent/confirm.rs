//! Double opt-in: the signed confirmation token and the confirmation mail.
//!
//! The token binds tenant, list, address, an expiry time and the hash of
//! the consent wording agreed to with the site secret, so it cannot be
//! forged, moved to another address or tenant, or used after it expired,
//! and its confirmation names the same wording as the sign-up.

use crate::config::TenantConfig;
use crate::token;
use crate::values::Lang;

const PURPOSE: &str = "confirm";

/// What a confirmation token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmToken {
    pub tenant: String,
    pub list: String,
    pub address: String,
    /// Unix seconds after which the token is refused.
    pub expires: u64,
    /// SHA-256 of the consent wording of the sign-up (None in tokens made
    /// before wordings were recorded).
    pub consent: Option<String>,
}

/// Why a token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    /// Bad signature or layout: forged or mangled.
    Invalid,
    Expired,
}

impl ConfirmToken {
    pub fn sign(&self, secret: &[u8]) -> String {
        // NUL cannot occur in any of the parts (addresses and names are
        // checked before a token is made).
        let mut payload = format!(
            "{}\0{}\0{}\0{}",
            self.tenant, self.list, self.address, self.expires
        );
        if let Some(hash) = &self.consent {
            payload.push('\0');
            payload.push_str(hash);
        }
        token::sign(secret, PURPOSE, &payload)
    }

    pub fn verify(secret: &[u8], token: &str, now: u64) -> Result<ConfirmToken, TokenProblem> {
        let payload = token::verify(secret, PURPOSE, token).ok_or(TokenProblem::Invalid)?;
        let mut parts = payload.split('\0');
        let (Some(tenant), Some(list), Some(address), Some(expires), consent, None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(TokenProblem::Invalid);
        };
        let expires: u64 = expires.parse().map_err(|_| TokenProblem::Invalid)?;
        if now > expires {
            return Err(TokenProblem::Expired);
        }
        Ok(ConfirmToken {
            tenant: tenant.into(),
            list: list.into(),
            address: address.into(),
            expires,
            consent: consent.map(str::to_string),
        })
    }
}

/// The sender of a tenant's confirmation mails: `confirm_from`, or
/// `noreply@` its first sender domain.
pub fn confirm_from(tenant: &TenantConfig) -> Option<String> {
    tenant.confirm_from.clone().or_else(|| {
        tenant
            .sender_domains
            .first()
            .map(|d| format!("noreply@{d}"))
    })
}

/// The fields of one confirmation mail.
#[derive(Debug, Clone, Copy)]
pub struct MailParts<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub list: &'a str,
    pub url: &'a str,
    pub message_id: &'a str,
    pub date: &'a str,
    /// The consent wording agreed to, named in the mail.
    pub consent: &'a crate::consent::wording::Wording,
}

/// The confirmation mail (headers and body, CRLF line ends, without the
/// Received/Message-ID headers the queue adds). A tenant's `confirm_template`
/// (a text file read at start into `template`) replaces the built-in text;
/// `{url}`, `{list}`, `{address}`, `{consent}` and `{consent_version}` are
/// filled in. A template without `{consent}` gets the wording appended, so
/// that every confirmation mail names what was agreed to.
pub fn confirmation_mail(
    tenant: &TenantConfig,
    template: Option<&str>,
    lang: Lang,
    m: &MailParts,
) -> Vec<u8> {
    let MailParts {
        from,
        to,
        list,
        url,
        message_id,
        date,
        consent,
    } = *m;
    let subject = tenant.confirm_subject.clone().unwrap_or_else(|| {
        match lang {
            Lang::En => "Please confirm your subscription",
            Lang::De => "Bitte bestätigen Sie Ihre Anmeldung",
        }
        .into()
    });
    let agreed = match lang {
        Lang::En => "What you agreed to (version {consent_version}):\n\"{consent}\"\n",
        Lang::De => "Ihre Einwilligung (Fassung {consent_version}):\n\u{201e}{consent}\u{201c}\n",
    };
    let body = match template {
        Some(t) if t.contains("{consent}") => t.to_string(),
        Some(t) => format!("{}\n\n{agreed}", t.trim_end()),
        None => match lang {
            Lang::En => format!("Hello,\n\nsomeone (hopefully you) asked to receive the list \"{{list}}\" at {{address}}.\n\n{agreed}\nTo confirm, open this link and press the button:\n{{url}}\n\nIf it was not you, ignore this mail: without confirmation you will get nothing from us.\n"),
            Lang::De => format!("Hallo,\n\njemand (hoffentlich Sie) hat die Liste \"{{list}}\" für {{address}} bestellt.\n\n{agreed}\nZur Bestätigung öffnen Sie diesen Link und drücken Sie den Knopf:\n{{url}}\n\nWaren Sie es nicht, ignorieren Sie diese Mail: Ohne Bestätigung erhalten Sie nichts von uns.\n"),
        },
    };
    // The wording is filled in last: a `{url}` inside a tenant's text stays text.
    let body = body
        .replace("{url}", url)
        .replace("{list}", list)
        .replace("{address}", to)
        .replace("{consent_version}", &consent.version)
        .replace("{consent}", &consent.text)
        .replace("\r\n", "\n")
        .replace('\n', "\r\n");
    let subject = encode_header_text(&subject);
    format!(
        "From: {from}\r\nTo: <{to}>\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: {message_id}\r\n\
Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\r\n{body}"
    )
    .into_bytes()
}

/// RFC 2047 encoded-word for non-ASCII header text; ASCII passes unchanged.
fn encode_header_text(text: &str) -> String {
    if text.is_ascii() {
        return text.to_string();
    }
    use base64::Engine;
    format!(
        "=?utf-8?b?{}?=",
        base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> ConfirmToken {
        ConfirmToken {
            tenant: "acme".into(),
            list: "news".into(),
            address: "a@b.test".into(),
            expires: 1000,
            consent: Some("ab12".into()),
        }
    }

    #[test]
    fn a_token_verifies_until_it_expires() {
        let t = token().sign(b"k");
        assert_eq!(ConfirmToken::verify(b"k", &t, 999), Ok(token()));
        assert_eq!(ConfirmToken::verify(b"k", &t, 1000), Ok(token()));
        assert_eq!(
            ConfirmToken::verify(b"k", &t, 1001),
            Err(TokenProblem::Expired)
        );
    }

    #[test]
    fn a_token_made_before_wordings_were_recorded_still_verifies() {
        let old = crate::token::sign(b"k", "confirm", "acme\0news\0a@b.test\x001000");
        let t = ConfirmToken::verify(b"k", &old, 0).unwrap();
        assert_eq!(t.consent, None);
        assert_eq!(t.address, "a@b.test");
    }

    #[test]
    fn a_token_cannot_be_forged_or_moved() {
        let t = token().sign(b"k");
        assert_eq!(
            ConfirmToken::verify(b"other", &t, 0),
            Err(TokenProblem::Invalid)
        );
        // Another address or tenant with the first token's MAC.
        let mut moved = token();
        moved.address = "victim@b.test".into();
        let forged = format!(
            "{}.{}",
            moved.sign(b"attacker").split('.').next().unwrap(),
            t.split('.').nth(1).unwrap()
        );
        assert_eq!(
            ConfirmToken::verify(b"k", &forged, 0),
            Err(TokenProblem::Invalid)
        );
        // An unsubscribe token is not a confirmation token.
        let other = crate::token::sign(b"k", "unsubscribe", "acme\0news\0a@b.test\x001000");
        assert_eq!(
            ConfirmToken::verify(b"k", &other, 0),
            Err(TokenProblem::Invalid)
        );
    }

    #[test]
    fn the_mail_carries_the_link_and_encodes_a_german_subject() {
        let tenant = TenantConfig {
            sender_domains: vec!["acme.example".into()],
            ..TenantConfig::default()
        };
        let from = confirm_from(&tenant).unwrap();
        assert_eq!(from, "noreply@acme.example");
        let mail = confirmation_mail(
            &tenant,
            None,
            Lang::De,
            &MailParts {
                from: &from,
                to: "a@b.test",
                list: "news",
                url: "https://x.test/confirm/T",
                message_id: "<1@x>",
                date: "Sat, 28 Nov 2026 00:00:00 +0000",
                consent: &crate::consent::wording::current(&tenant, "news", Lang::De),
            },
        );
        let text = String::from_utf8(mail).unwrap();
        assert!(text.contains("Subject: =?utf-8?b?"));
        assert!(text.contains("https://x.test/confirm/T\r\n"));
        assert!(!text.replace("\r\n", "").contains('\n'));
        // The mail names what was agreed to.
        assert!(
            text.contains("Ihre Einwilligung (Fassung builtin-1):\r\n\u{201e}Ich willige ein"),
            "{text}"
        );
        let parsed = mail_parser::MessageParser::default()
            .parse(text.as_bytes())
            .unwrap();
        assert_eq!(
            parsed.subject(),
            Some("Bitte bestätigen Sie Ihre Anmeldung")
        );
    }
}
