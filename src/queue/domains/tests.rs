//! Alignment and organisational domains, without DNS.

use super::*;

#[test]
fn the_organisational_domain_comes_from_the_public_suffix_list() {
    assert_eq!(organisational_domain("news.acme.co.uk"), "acme.co.uk");
    assert_eq!(organisational_domain("Mail.Example.COM."), "example.com");
    assert_eq!(organisational_domain("a.b.acme.example"), "acme.example");
    // A private suffix of the list: each GitHub Pages site is its own.
    assert_eq!(
        organisational_domain("x.alice.github.io"),
        "alice.github.io"
    );
}

fn tenant(dkim_domain: Option<&str>, key: bool) -> crate::config::TenantConfig {
    crate::config::TenantConfig {
        sender_domains: vec!["acme.example".into(), "acme-news.example".into()],
        dkim_domain: dkim_domain.map(str::to_string),
        dkim_key: key.then(|| "k.pem".into()),
        ..Default::default()
    }
}

fn levels(t: &crate::config::TenantConfig, domain: &str, envelope: &str) -> Vec<(Level, String)> {
    let mut out = Vec::new();
    alignment("acme", domain, t, envelope, &mut out);
    out.into_iter().map(|f| (f.level, f.detail)).collect()
}

#[test]
fn dmarc_alignment_is_relaxed_by_organisational_domain() {
    // Signed as acme.example: aligned for it and its subdomains.
    let t = tenant(None, true);
    let got = levels(&t, "news.acme.example", "bounces.mta.test");
    assert_eq!(got[0].0, Level::Ok, "{got:?}");
    assert!(got[0].1.contains("does not align"), "{got:?}");
    // The second sender domain signed with the first's d=: DMARC fails
    // unless the VERP domain is of the same organisation.
    let got = levels(&t, "acme-news.example", "bounces.mta.test");
    assert_eq!(got[0].0, Level::Error, "{got:?}");
    let got = levels(&t, "acme-news.example", "bounces.acme-news.example");
    assert_eq!(got[0].0, Level::Warning, "{got:?}");
    // dkim_domain names the signing domain.
    let t = tenant(Some("mail.acme-news.example"), true);
    assert_eq!(
        levels(&t, "acme-news.example", "bounces.mta.test")[0].0,
        Level::Ok
    );
    // No key at all: the missing key is the DKIM finding's, not this one's.
    let t = tenant(None, false);
    assert!(levels(&t, "acme.example", "bounces.mta.test").is_empty());
}
