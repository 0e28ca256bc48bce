//! One table of test messages per rule group: each case names the codes it
//! must produce (and, by omission, must not).

use std::collections::HashMap;
use std::path::Path;

use super::*;
use crate::consent::Suppression;
use crate::store::StoreError;

const CONFIG: &str = r#"
[server]
hostname = "mta.example.test"
[feedback]
domain = "bounces.example.test"
[tenants.acme]
sender_domains = ["acme.example"]
unsubscribe_hosts = ["links.esp.example"]
default_list = "news.acme.example"
allow_transactional = true
"#;

/// The message rules of `p` on `view`, with no recipients.
fn alone(p: &TenantPolicy, view: &MessageView) -> Verdict {
    check_message(p, view, &[], &Consent(HashMap::new(), HashMap::new()), None).unwrap()
}

/// acme's policy with `line` added under [tenants.acme].
fn policy_with(line: &str) -> TenantPolicy {
    let text = format!("{CONFIG}{line}\n");
    let config = Config::parse(&text, Path::new("/")).expect("test config");
    TenantPolicy::new("acme", &config.tenants["acme"], &config)
}

fn policy() -> TenantPolicy {
    let config = Config::parse(CONFIG, Path::new("/")).expect("test config");
    TenantPolicy::new("acme", &config.tenants["acme"], &config)
}

/// A newsletter that passes every rule; cases change one thing each.
fn good() -> String {
    concat!(
        "From: Acme News <news@acme.example>\r\n",
        "To: jane@example.test\r\n",
        "Subject: Our autumn collection\r\n",
        "Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n",
        "Message-ID: <1@acme.example>\r\n",
        "List-Id: Acme News <news.acme.example>\r\n",
        "List-Unsubscribe: <https://acme.example/u/abc>, <mailto:unsub@acme.example>\r\n",
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
        "MIME-Version: 1.0\r\n",
        "Content-Type: multipart/alternative; boundary=\"b\"\r\n",
        "\r\n",
        "--b\r\n",
        "Content-Type: text/plain; charset=utf-8\r\n\r\n",
        "Hello! Unsubscribe: https://acme.example/u/abc\r\n",
        "--b\r\n",
        "Content-Type: text/html; charset=utf-8\r\n\r\n",
        "<p>Hello!</p><p><a href=\"https://acme.example/u/abc\">Unsubscribe</a></p>\r\n",
        "--b--\r\n"
    )
    .to_string()
}

struct Consent(HashMap<String, ConsentState>, HashMap<String, Suppression>);

impl ConsentLookup for Consent {
    fn state(&self, _: &str, _: &str, address: &str) -> Result<ConsentState, StoreError> {
        Ok(self.0.get(address).copied().unwrap_or(ConsentState::None))
    }
    fn suppression(&self, _: &str, address: &str) -> Result<Option<Suppression>, StoreError> {
        Ok(self.1.get(address).cloned())
    }
}

fn codes(message: &str) -> Vec<&'static str> {
    let view = MessageView::parse(message.as_bytes());
    let consent = Consent(HashMap::new(), HashMap::new());
    let v = check_message(&policy(), &view, &[], &consent, None).unwrap();
    v.reasons.iter().map(|r| r.code).collect()
}

fn replace(from: &str, to: &str) -> String {
    let g = good();
    assert!(g.contains(from), "test case does not apply: {from}");
    g.replacen(from, to, 1)
}

#[test]
fn the_good_newsletter_passes_every_rule() {
    assert_eq!(codes(&good()), Vec::<&str>::new());
}

#[test]
fn from_rules() {
    let cases: Vec<(String, &[&str])> = vec![
        (
            replace("From: Acme News <news@acme.example>\r\n", ""),
            &["from.missing"],
        ),
        (
            replace("To:", "From: other@acme.example\r\nTo:"),
            &["from.multiple"],
        ),
        (
            replace("<news@acme.example>", "<news@acme.example>, b@acme.example"),
            &["from.multiple"],
        ),
        (
            replace("<news@acme.example>", "<news-at-acme>"),
            &["from.malformed"],
        ),
        (replace("news@acme.example", "news@mail.acme.example"), &[]),
        (
            replace("news@acme.example", "news@evil.example"),
            &["from.domain_not_verified"],
        ),
        (
            replace("Acme News", "\"service@paypal.com\""),
            &["from.display_name_spoof"],
        ),
        (replace("Acme News", "PayPal Support"), &[]),
        // Look-alike letters (UTS #39): a Cyrillic а in a Latin word, a
        // capital I for an l, fullwidth letters showing a foreign domain.
        (
            replace("Acme News", "P\u{0430}yPal Support"),
            &["from.display_name_confusable"],
        ),
        (
            replace("Acme News", "PaypaI Support"),
            &["from.display_name_confusable"],
        ),
        (
            replace("Acme News", "\u{0410}cme News"),
            &["from.display_name_confusable"],
        ),
        (
            replace("Acme News", "=?utf-8?b?UNCweVBhbCBTdXBwb3J0?="),
            &["from.display_name_confusable"],
        ),
        (
            replace("Acme News", "Billing at \u{FF50}\u{FF41}\u{FF59}\u{FF50}\u{FF41}\u{FF4C}\u{FF0E}\u{FF43}\u{FF4F}\u{FF4D}"),
            &["from.display_name_spoof"],
        ),
        (replace("Acme News", "Ærø Bücher"), &[]),
        (replace("Acme News", "Ελληνικά Νέα"), &[]),
        (replace("Acme News", "Новости"), &[]),
        (replace("Acme News", "東京ニュース"), &[]),
        (replace("Acme News", "Acme.example Team"), &[]),
        (
            replace("Acme News", "Billing at paypal.com"),
            &["from.display_name_spoof"],
        ),
        (
            replace("Acme News", "=?utf-8?q?service=40paypal=2Ecom?="),
            &["from.display_name_spoof"],
        ),
        (
            replace("To:", "Reply-To: x@gmail.example\r\nTo:"),
            &["reply_to.foreign"],
        ),
        (replace("To:", "Reply-To: help@acme.example\r\nTo:"), &[]),
        (
            replace("To:", "Sender: x@other.example\r\nTo:"),
            &["sender.foreign"],
        ),
    ];
    for (message, expected) in cases {
        assert_eq!(
            codes(&message),
            expected.to_vec(),
            "{}",
            message.lines().next().unwrap_or("")
        );
    }
}

#[test]
fn subject_rules() {
    let s = |subject: &str| {
        replace(
            "Subject: Our autumn collection",
            &format!("Subject: {subject}"),
        )
    };
    let cases: Vec<(String, &[&str])> = vec![
        (
            replace("Subject: Our autumn collection\r\n", ""),
            &["subject.missing"],
        ),
        (s("   "), &["subject.empty"]),
        (s("Re: your order"), &["subject.fake_reply"]),
        (s("RE:your order"), &["subject.fake_reply"]),
        (s("Fwd: deal"), &["subject.fake_reply"]),
        (s("AW: Ihre Anfrage"), &["subject.fake_reply"]),
        (s("SV: tilbud"), &["subject.fake_reply"]),
        (
            s("=?utf-8?b?UmU6IHlvdXIgb3JkZXI=?="),
            &["subject.fake_reply"],
        ),
        (s("Re:\r\n your order"), &["subject.fake_reply"]),
        (s("Recipes for autumn"), &[]),
        (s("Free\u{200B}gift"), &["subject.hidden_characters"]),
        (
            s("=?utf-8?q?Free=E2=80=8Bgift?="),
            &["subject.hidden_characters"],
        ),
        (s("P\u{0430}yPal news"), &["subject.hidden_characters"]),
        (s("Новости недели"), &[]),
        // Fullwidth "Ｒｅ:" reads as "Re:" (NFKC) and is a fake reply too.
        (s("\u{FF32}\u{FF45}: your order"), &["subject.fake_reply"]),
        (
            s("\u{FF32}\u{FF45}\u{FF1A} your order"),
            &["subject.fake_reply"],
        ),
        (s("Your Paypa1 receipt"), &["subject.confusable"]),
        (s("Your PayPal receipt"), &[]),
        (s("Ελληνικά Νέα: η εβδομάδα"), &[]),
        (s("東京ニュース 12月号"), &[]),
        (s("Ærø Bücher: Neuerscheinungen"), &[]),
        (s("Your account has been suspended"), &["subject.deceptive"]),
        (s("Urgent action required"), &["subject.deceptive"]),
    ];
    for (message, expected) in cases {
        let subject = message
            .lines()
            .find(|l| l.starts_with("Subject"))
            .unwrap_or("(none)")
            .to_string();
        assert_eq!(codes(&message), expected.to_vec(), "{subject}");
    }
    let reply = replace(
        "Subject: Our autumn collection",
        "Subject: Re: your question\r\nIn-Reply-To: <0@x.example>",
    );
    assert_eq!(codes(&reply), Vec::<&str>::new());
}

#[test]
fn unsubscribe_rules() {
    let long_text =
        "Click here if you no longer wish to receive these wonderful newsletters from us";
    let cases: Vec<(String, &[&str])> = vec![
        (
            replace(
                "List-Unsubscribe: <https://acme.example/u/abc>, <mailto:unsub@acme.example>\r\n",
                "",
            ),
            &["unsubscribe.header_missing"],
        ),
        (
            replace(
                "<https://acme.example/u/abc>, <mailto:unsub@acme.example>",
                "<mailto:unsub@acme.example>",
            ),
            &["unsubscribe.no_https"],
        ),
        (
            replace("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", ""),
            &["unsubscribe.one_click_missing"],
        ),
        (
            good().replace(
                "https://acme.example/u/abc",
                "https://tracker.evil.example/u/abc",
            ),
            &["unsubscribe.url_invalid"],
        ),
        (
            good().replace(
                "https://acme.example/u/abc",
                "https://links.esp.example/u/abc",
            ),
            &[],
        ),
        (
            good().replace(
                "https://acme.example/u/abc",
                "https://x.links.esp.example/u/abc",
            ),
            &[],
        ),
        (
            replace(
                "<https://acme.example/u/abc>,",
                "<https://acme.example/u/abc>, <http://acme.example/u/abc>,",
            ),
            &["unsubscribe.url_invalid"],
        ),
        (
            replace(
                "<a href=\"https://acme.example/u/abc\">Unsubscribe</a>",
                "Unsubscribe",
            ),
            &["unsubscribe.body_link_missing"],
        ),
        (
            replace(
                "Unsubscribe: https://acme.example/u/abc",
                "Unsubscribe on our site",
            ),
            &["unsubscribe.body_link_missing"],
        ),
        // Link text that shows nothing: a zero-width space, a soft hyphen
        // and a non-breaking space, or nothing but an image without alt.
        (
            replace(
                "\"https://acme.example/u/abc\">Unsubscribe",
                "\"https://acme.example/u/abc\">\u{200B}",
            ),
            &["unsubscribe.body_link_missing"],
        ),
        (
            replace(
                "\"https://acme.example/u/abc\">Unsubscribe",
                "\"https://acme.example/u/abc\">&shy;&nbsp;&#8203;",
            ),
            &["unsubscribe.body_link_missing"],
        ),
        (
            replace(
                "\"https://acme.example/u/abc\">Unsubscribe",
                &format!("\"https://acme.example/u/abc\">{long_text}"),
            ),
            &["unsubscribe.link_text_too_long"],
        ),
        (
            replace(
                "\"https://acme.example/u/abc\">Unsubscribe",
                "'https://acme.example/u/abc' class=x>Un&shy;subscribe",
            ),
            &[],
        ),
        (
            replace(
                "List-Unsubscribe: <https://acme.example/u/abc>,",
                "List-Unsubscribe:\r\n <https://acme.example/u/abc>,\r\n",
            ),
            &[],
        ),
    ];
    for (i, (message, expected)) in cases.into_iter().enumerate() {
        assert_eq!(codes(&message), expected.to_vec(), "case {i}");
    }
}

#[test]
fn link_text_with_entities_is_measured_as_shown() {
    // 68 visible characters written with entities: allowed.
    let text = "&auml;".repeat(68);
    let m = replace(
        "\"https://acme.example/u/abc\">Unsubscribe",
        &format!("\"https://acme.example/u/abc\">{text}"),
    );
    assert_eq!(codes(&m), Vec::<&str>::new());
    let text = "&auml;".repeat(69);
    let m = replace(
        "\"https://acme.example/u/abc\">Unsubscribe",
        &format!("\"https://acme.example/u/abc\">{text}"),
    );
    assert_eq!(codes(&m), vec!["unsubscribe.link_text_too_long"]);
}

#[test]
fn transactional_mail_skips_consent_and_unsubscribe_but_not_honesty() {
    let m = replace(
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
        "X-Postwarden-Class: transactional\r\n",
    )
    .replace(
        "List-Unsubscribe: <https://acme.example/u/abc>, <mailto:unsub@acme.example>\r\n",
        "",
    );
    assert_eq!(codes(&m), Vec::<&str>::new());
    let m = m.replace("Our autumn collection", "Re: your receipt");
    assert_eq!(codes(&m), vec!["subject.fake_reply"]);
}

#[test]
fn consent_is_checked_per_recipient_for_the_list() {
    let view = MessageView::parse(good().as_bytes());
    let mut states = HashMap::new();
    states.insert(
        "ok@example.test".to_string(),
        ConsentState::DoubleOptInConfirmed,
    );
    states.insert("single@example.test".to_string(), ConsentState::SingleOptIn);
    let consent = Consent(states, HashMap::new());
    let p = policy();
    let v = check_message(&p, &view, &["OK@Example.test".into()], &consent, None).unwrap();
    assert!(!v.is_reject(), "{v:?}");
    let v = check_message(
        &p,
        &view,
        &["ok@example.test".into(), "single@example.test".into()],
        &consent,
        None,
    )
    .unwrap();
    assert_eq!(
        v.reasons.iter().map(|r| r.code).collect::<Vec<_>>(),
        vec!["recipient.no_consent"]
    );
    assert!(v.reasons[0].detail.contains("single@example.test"));
    assert!(!v.reasons[0].detail.contains("ok@example.test"));
}

#[test]
fn a_bulk_message_needs_a_list() {
    let config = Config::parse(
        &CONFIG.replace("default_list = \"news.acme.example\"\n", ""),
        Path::new("/"),
    )
    .unwrap();
    let p = TenantPolicy::new("acme", &config.tenants["acme"], &config);
    let m = good().replace("List-Id: Acme News <news.acme.example>\r\n", "");
    let view = MessageView::parse(m.as_bytes());
    let v = alone(&p, &view);
    assert_eq!(
        v.reasons.iter().map(|r| r.code).collect::<Vec<_>>(),
        vec!["message.list_missing"]
    );
}

#[test]
fn rule_overrides_turn_rejections_into_warnings_or_nothing() {
    let text = CONFIG.to_string()
        + "rules = { \"subject.fake_reply\" = \"warn\", \"subject.deceptive\" = \"off\" }\n";
    let config = Config::parse(&text, Path::new("/")).unwrap();
    let p = TenantPolicy::new("acme", &config.tenants["acme"], &config);
    let m = good().replace("Our autumn collection", "Re: Urgent action required");
    let view = MessageView::parse(m.as_bytes());
    let v = alone(&p, &view);
    assert!(!v.is_reject());
    assert_eq!(
        v.warnings().map(|r| r.code).collect::<Vec<_>>(),
        vec!["subject.fake_reply"]
    );
}

#[test]
fn the_reply_lists_every_failed_rule() {
    let m = good()
        .replace("Our autumn collection", "Re: hello")
        .replace("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", "");
    let view = MessageView::parse(m.as_bytes());
    let v = check_message(
        &policy(),
        &view,
        &[],
        &Consent(HashMap::new(), HashMap::new()),
        None,
    )
    .unwrap();
    let reply = v.smtp_reply();
    let lines: Vec<&str> = reply.lines().collect();
    assert_eq!(lines.len(), 2, "{reply}");
    assert!(lines[0].starts_with("550-5.7.1 policy: subject.fake_reply: "));
    assert!(lines[1].starts_with("550 5.7.1 policy: unsubscribe.one_click_missing: "));
    assert_eq!(v.to_json()["verdict"], "reject");
}

/// from.not_authenticated: what the daemon's last look-up found decides; a
/// domain not looked up yet (or whose look-up failed) is not refused; a
/// subdomain of a sender domain counts as that domain; `standard` warns
/// and `strict` refuses.
#[test]
fn a_sender_domain_that_cannot_authenticate_is_warned_or_refused() {
    let auth = SenderAuth::default();
    let consent = Consent(HashMap::new(), HashMap::new());
    let view = MessageView::parse(good().as_bytes());
    let strict = policy_with("policy = \"strict\"");
    let standard = policy_with("policy = \"standard\"");
    let verdict = |p: &TenantPolicy, m: &MessageView, auth: &SenderAuth| {
        check_message(p, m, &[], &consent, Some(auth)).unwrap()
    };
    let fired = |v: &Verdict| {
        v.reasons
            .iter()
            .find(|r| r.code == "from.not_authenticated")
            .cloned()
    };
    assert!(fired(&verdict(&strict, &view, &auth)).is_none());
    auth.set(
        "acme",
        "ACME.example",
        Some("DMARC _dmarc.acme.example: no DMARC record".into()),
    );
    let refused = verdict(&strict, &view, &auth);
    let reason = fired(&refused).expect("fires");
    assert_eq!(reason.action, RuleAction::Reject);
    assert!(reason.detail.contains("_dmarc.acme.example"), "{reason:?}");
    assert!(refused.is_reject());
    let warned = verdict(&standard, &view, &auth);
    assert_eq!(fired(&warned).expect("fires").action, RuleAction::Warn);
    assert!(!warned.is_reject(), "{warned:?}");
    // Another tenant's standing is not acme's.
    let other = SenderAuth::default();
    other.set("globex", "acme.example", Some("no DMARC".into()));
    assert!(fired(&verdict(&strict, &view, &other)).is_none());
    // From a subdomain: the sender domain's standing.
    let sub = good().replace("news@acme.example", "news@mail.acme.example");
    let sub = MessageView::parse(sub.as_bytes());
    assert!(fired(&verdict(&strict, &sub, &auth)).is_some());
    // Once clean, nothing.
    auth.set("acme", "acme.example", None);
    assert!(fired(&verdict(&strict, &view, &auth)).is_none());
    // Without the daemon's look-ups (the offline `policy check`), nothing.
    assert!(check_message(&strict, &view, &[], &consent, None)
        .unwrap()
        .reasons
        .iter()
        .all(|r| r.code != "from.not_authenticated"));
}
