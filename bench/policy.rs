//! The full submission policy check of a 50 KB HTML newsletter (parse, every
//! message rule, the consent look-up of one recipient), and its parts.
//!
//! `cargo bench --profile dev --bench policy`; see README "Benchmarks".

use std::collections::HashMap;

use criterion::{criterion_group, criterion_main, Criterion};
use postwarden::config::Config;
use postwarden::consent::{ConsentLookup, ConsentState, Suppression};
use postwarden::policy::{check_message, MessageView, TenantPolicy};
use postwarden::store::StoreError;

/// Consent from memory: the benchmark measures the rules, not RocksDB
/// (bench/consent.rs measures the look-ups).
struct Consent(HashMap<String, ConsentState>);

impl ConsentLookup for Consent {
    fn state(&self, _: &str, _: &str, address: &str) -> Result<ConsentState, StoreError> {
        Ok(self.0.get(address).copied().unwrap_or(ConsentState::None))
    }
    fn suppression(&self, _: &str, _: &str) -> Result<Option<Suppression>, StoreError> {
        Ok(None)
    }
}

/// A realistic newsletter of about 50 KB: headers, text and HTML parts,
/// many links and paragraphs, one unsubscribe link.
fn newsletter() -> Vec<u8> {
    let mut html = String::from("<html><body><h1>Autumn news</h1>");
    let mut text = String::from("Autumn news\n\n");
    let mut i = 0;
    while html.len() < 34_000 {
        html.push_str(&format!(
            "<p>Item {i}: our <b>new</b> collection &amp; more. <a href=\"https://demo.example/p/{i}?utm=news\">See product {i}</a></p>\n"
        ));
        text.push_str(&format!(
            "Item {i}: our new collection. https://demo.example/p/{i}\n"
        ));
        i += 1;
    }
    html.push_str("<p><a href=\"https://demo.example/u/abc\">Unsubscribe</a></p></body></html>");
    text.push_str("Unsubscribe: https://demo.example/u/abc\n");
    format!(
        "From: Demo News <news@demo.example>\r\nTo: jane@example.test\r\nSubject: Our autumn collection\r\n\
Date: Tue, 24 Nov 2026 10:00:00 +0000\r\nMessage-ID: <bench@demo.example>\r\nList-Id: Demo News <news.demo.example>\r\n\
List-Unsubscribe: <https://demo.example/u/abc>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{}\r\n--b--\r\n",
        text.replace('\n', "\r\n"),
        html.replace('\n', "\r\n")
    )
    .into_bytes()
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir();
    let config = Config::embedded_default(&dir).expect("the embedded config");
    let tenant = config.tenant("demo").expect("the demo tenant");
    let policy = TenantPolicy::new("demo", tenant, &config);
    let raw = newsletter();
    let consent = Consent(HashMap::from([(
        "jane@example.test".to_string(),
        ConsentState::DoubleOptInConfirmed,
    )]));
    let rcpt = vec!["jane@example.test".to_string()];
    // The message must pass, or the benchmark measures an early exit.
    let verdict = check_message(&policy, &MessageView::parse(&raw), &rcpt, &consent, None)
        .expect("a verdict");
    assert!(!verdict.is_reject(), "{}", verdict.smtp_reply());
    println!("policy: message of {} bytes", raw.len());
    c.bench_function("policy: parse + full check, 50 KB HTML newsletter", |b| {
        b.iter(|| {
            let view = MessageView::parse(std::hint::black_box(&raw));
            check_message(&policy, &view, &rcpt, &consent, None)
        })
    });
    let view = MessageView::parse(&raw);
    c.bench_function("policy: rules only (parsed message)", |b| {
        b.iter(|| check_message(&policy, std::hint::black_box(&view), &rcpt, &consent, None))
    });
    c.bench_function("policy: parse only", |b| {
        b.iter(|| MessageView::parse(std::hint::black_box(&raw)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
