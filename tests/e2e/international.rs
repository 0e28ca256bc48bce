//! Internationalised addresses (RFC 6531/6532, UTS 46): a U-label domain and
//! its A-label are one address for consent, suppression and delivery; a
//! UTF-8 local part needs SMTPUTF8, and fails with its reason toward a server
//! that does not offer it; a malformed address is told what is wrong.

use crate::harness::*;

const API_TOKEN: &str = "acme-idn-api-token-7c1e0b2a";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_u_label_and_its_a_label_are_one_address() {
    let mut script = Script::new();
    script.insert(
        "weg@xn--bcher-kva.example".into(),
        vec!["550 5.1.1 <weg@xn--bcher-kva.example>: user unknown".into()],
    );
    let modern = Sink::start(script).await;
    let mut plain = Script::new();
    plain.insert(
        "EHLO".into(),
        vec!["250-old.test\r\n250-PIPELINING\r\n250 8BITMIME".into()],
    );
    let old = Sink::start(plain).await;
    let mut d = Daemon::new(Options {
        routes: format!(
            "\"xn--bcher-kva.example\" = \"127.0.0.1:{}\"\n\"example.test\" = \"127.0.0.1:{}\"\n\"xn--mnchen-3ya.example\" = \"127.0.0.1:{}\"\n",
            modern.addr.port(),
            old.addr.port(),
            old.addr.port()
        ),
        // postwarden writes the List-Unsubscribe link (a token per recipient).
        tenant: format!(
            "unsubscribe = \"managed\"\napi_token_sha256 = [\"{}\"]\n",
            postwarden::token::sha256_hex(API_TOKEN)
        ),
        ..Options::default()
    });
    // One opted in by the A-label, one by the U-label, one with a UTF-8 local part.
    opt_in(&d.config_path, "joerg@xn--bcher-kva.example");
    opt_in(&d.config_path, "anna@bücher.example");
    opt_in(&d.config_path, "jörg@example.test");
    opt_in(&d.config_path, "weg@bücher.example");
    opt_in(&d.config_path, "hans@münchen.example");
    d.spawn();

    let mut c = Raw::login(d.submission).await;
    let r = c.cmd("MAIL FROM:<news@acme.example> SMTPUTF8").await;
    assert!(r.starts_with("250"), "{r}");
    let r = c.cmd("RCPT TO:<joerg@bücher.example>").await;
    assert!(
        r.starts_with("250"),
        "U-label, opted in by the A-label: {r}"
    );
    let r = c.cmd("RCPT TO:<anna@xn--bcher-kva.example>").await;
    assert!(
        r.starts_with("250"),
        "A-label, opted in by the U-label: {r}"
    );
    let r = c.cmd("RCPT TO:<weg@bücher.example>").await;
    assert!(r.starts_with("250"), "{r}");
    assert!(c.cmd("DATA").await.starts_with("354"));
    let message = newsletter("joerg@bücher.example", "Neue Bücher im Dezember")
        .replace("List-Unsubscribe: <https://acme.example/u/abc>\r\n", "")
        .replace("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", "");
    c.send(&format!("{}.\r\n", message.replace("\r\n.", "\r\n..")))
        .await;
    let r = c.reply().await;
    assert!(r.starts_with("250"), "{r}");
    // Delivered by the A-label: its route (and MX) and RCPT TO.
    let got = modern.wait_for(2).await;
    let mut rcpts: Vec<String> = got.iter().map(|r| r.rcpt.clone()).collect();
    rcpts.sort();
    assert_eq!(
        rcpts,
        ["anna@xn--bcher-kva.example", "joerg@xn--bcher-kva.example"]
    );

    // The hard bounce of the A-label suppresses the U-label.
    let r = rcpt_until(&d, "weg@bücher.example", "550").await;
    assert!(
        r.starts_with("550 5.7.1 policy: recipient.suppressed"),
        "{r}"
    );

    // Unsubscribed by the one-click link of joerg's copy (its token names
    // the queued A-label): refused as the U-label (at the end of DATA,
    // where consent is checked).
    let copy = got
        .iter()
        .find(|r| r.rcpt == "joerg@xn--bcher-kva.example")
        .expect("joerg's copy");
    let text = String::from_utf8_lossy(&copy.data).to_string();
    assert_eq!(one_click_unsubscribe(d.http, &text).await, 200);
    let mut c = Raw::login(d.submission).await;
    let r = c
        .transaction(
            "news@acme.example",
            "joerg@bücher.example",
            &newsletter("joerg@bücher.example", "Noch mehr Bücher"),
        )
        .await;
    assert!(r.starts_with("550"), "{r}");
    assert!(r.contains("recipient."), "{r}");
    // Suppressed as the U-label: refused as the A-label, at RCPT.
    let out = d.cli(&["suppress", "add", "--tenant", "acme", "anna@bücher.example"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = rcpt_until(&d, "anna@xn--bcher-kva.example", "550").await;
    assert!(
        r.starts_with("550 5.7.1 policy: recipient.suppressed"),
        "{r}"
    );

    // Erased (GDPR) as the A-label: a new opt-in of the U-label is refused,
    // since the hash that stays is of the one address.
    let out = d.cli(&[
        "contacts",
        "erase",
        "--tenant",
        "acme",
        "anna@xn--bcher-kva.example",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = try_set_state(
        &d.config_path,
        "anna@bücher.example",
        "double_opt_in_confirmed",
    );
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("was erased"), "{said}");

    // An import holding both forms: the second is a duplicate of the first.
    let csv = d.dir.path().join("contacts.csv");
    std::fs::write(
        &csv,
        "email,state,opted_in_at,opted_in_ip,confirmed_at\n\
leser@bücher.example,double_opt_in_confirmed,2025-03-01T10:00:00Z,198.51.100.7,2025-03-01T10:05:00Z\n\
leser@xn--bcher-kva.example,double_opt_in_confirmed,2025-03-01T10:00:00Z,198.51.100.7,2025-03-01T10:05:00Z\n",
    )
    .unwrap();
    let out = d.cli(&[
        "contacts",
        "import",
        "--tenant",
        "acme",
        "--list",
        "news.acme.example",
        "--source",
        "fair 2025",
        "--attest",
        "--json",
        "--skip-refused",
        csv.to_str().unwrap(),
    ]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("duplicate of line 2"), "{report}");
    // The API finds the contact by either form.
    for form in [
        "leser%40b%C3%BCcher.example",
        "leser%40xn--bcher-kva.example",
    ] {
        let (status, body) = http(
            d.http,
            "GET",
            &format!("/api/v1/acme/contacts/{form}/evidence"),
            &[("Authorization", &format!("Bearer {API_TOKEN}"))],
            "",
        )
        .await;
        assert_eq!(status, 200, "{form}: {body}");
        assert!(body.contains("fair 2025"), "{form}: {body}");
    }

    // A UTF-8 local part without SMTPUTF8: refused, saying why.
    let mut c = Raw::login(d.submission).await;
    assert!(c
        .cmd("MAIL FROM:<news@acme.example>")
        .await
        .starts_with("250"));
    let r = c.cmd("RCPT TO:<jörg@example.test>").await;
    assert!(r.starts_with("553 5.6.7"), "{r}");
    assert!(r.contains("SMTPUTF8"), "{r}");
    // A malformed domain: what is wrong with it, not "relaying denied".
    let r = c.cmd("RCPT TO:<jane@-bad-.test>").await;
    assert!(r.starts_with("501 5.1.2"), "{r}");
    assert!(r.contains("not a valid domain name"), "{r}");
    assert!(!r.contains("relaying"), "{r}");
    // The session goes on.
    assert!(c.cmd("NOOP").await.starts_with("250"));

    // With SMTPUTF8 it is taken, and toward a server without SMTPUTF8 it
    // fails for good with the reason (RFC 6531 §3.4); nothing reaches it.
    let mut c = Raw::login(d.submission).await;
    assert!(c
        .cmd("MAIL FROM:<news@acme.example> SMTPUTF8")
        .await
        .starts_with("250"));
    let r = c.cmd("RCPT TO:<jörg@example.test>").await;
    assert!(r.starts_with("250"), "{r}");
    assert!(c.cmd("DATA").await.starts_with("354"));
    let message = newsletter("jörg@example.test", "Dezember");
    c.send(&format!("{}.\r\n", message.replace("\r\n.", "\r\n..")))
        .await;
    let r = c.reply().await;
    let id = r
        .strip_prefix("250 2.0.0 Ok: queued as ")
        .unwrap_or_else(|| panic!("{r}"))
        .trim()
        .to_string();
    let log = d.wait_for_log(&format!("{id}: removed"));
    let line = log
        .lines()
        .find(|l| l.contains(&format!("{id}: to=<jörg@example.test>")))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("status=bounced (553 5.6.7"), "{line}");
    assert!(line.contains("does not support SMTPUTF8"), "{line}");
    assert!(old.received().is_empty());
    // An ASCII local part at a U-label domain goes to that server as the
    // A-label, without SMTPUTF8.
    let mut c = Raw::login(d.submission).await;
    let r = c
        .transaction(
            "news@acme.example",
            "hans@münchen.example",
            &newsletter("hans@münchen.example", "Dezember"),
        )
        .await;
    assert!(r.starts_with("250"), "{r}");
    let got = old.wait_for(1).await;
    assert_eq!(got[0].rcpt, "hans@xn--mnchen-3ya.example");
}
