//! Security properties not covered elsewhere (issue 10): TLS versions.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::*;

/// A ClientHello offering at most `version` (0x0301 TLS 1.0, 0x0302 TLS 1.1,
/// 0x0303 TLS 1.2) with no supported_versions extension, and ciphers every
/// version knows. Built by hand: no TLS library here will send an old hello.
fn client_hello(version: u16) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&version.to_be_bytes());
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // session id
    let suites: [u16; 6] = [0xc02b, 0xc02c, 0xc02f, 0xc030, 0xc013, 0x002f];
    body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]); // compression: null
                                     // Extensions: supported_groups (x25519, secp256r1), ec_point_formats,
                                     // signature_algorithms (rsa_pkcs1_sha256, ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256).
    let mut ext = Vec::new();
    ext.extend_from_slice(&[0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17]);
    ext.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);
    ext.extend_from_slice(&[
        0x00, 0x0d, 0x00, 0x08, 0x00, 0x06, 0x04, 0x01, 0x04, 0x03, 0x08, 0x04,
    ]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut handshake = vec![1u8]; // ClientHello
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// The first TLS record the server answers with: (content type, first body byte).
async fn first_answer(addr: std::net::SocketAddr, hello: &[u8]) -> Option<(u8, u8, Vec<u8>)> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(hello).await.ok()?;
    let mut head = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut head))
        .await
        .ok()?
        .ok()?;
    let len = u16::from_be_bytes([head[3], head[4]]) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.ok()?;
    Some((head[0], *body.first()?, body))
}

/// No TLS below 1.2 (RFC 8996): a TLS 1.0 or 1.1 hello gets an alert, never
/// a ServerHello; the same hello saying 1.2 gets one (so the probe is sound).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_below_1_2_is_refused() {
    let d = Daemon::start(Options::default());
    for (version, name) in [(0x0301u16, "TLS 1.0"), (0x0302, "TLS 1.1")] {
        let answer = first_answer(d.submissions, &client_hello(version)).await;
        match answer {
            Some((0x15, _, body)) => {
                // Alert: fatal (2), protocol_version (70).
                assert_eq!(body, vec![2, 70], "{name}");
            }
            None => {} // closed without a word: refused too
            Some(other) => panic!("{name} was answered with {other:?}"),
        }
    }
    let answer = first_answer(d.submissions, &client_hello(0x0303)).await;
    assert!(
        matches!(answer, Some((0x16, 2, _))),
        "TLS 1.2 hello not answered with a ServerHello: {answer:?}"
    );
}

/// Sends `message` to `rcpt` as `tenant`: see [`Raw::transaction`].
async fn send_as(d: &Daemon, tenant: &str, from: &str, rcpt: &str, message: &str) -> String {
    Raw::login_as(d.submission, tenant)
        .await
        .transaction(from, rcpt, message)
        .await
}

/// Tenants are apart: acme cannot send as other's domain, and a recipient
/// who unsubscribes from acme's mail is still other's subscriber.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenant_cannot_send_as_or_unsubscribe_for_another() {
    let sink = Sink::start(Script::new()).await;
    let mut d = Daemon::new(Options {
        routes: format!("\"example.test\" = \"127.0.0.1:{}\"\n", sink.addr.port()),
        tenant: "unsubscribe = \"managed\"\n".into(),
        extra: format!(
            "[tenants.other]\nsmtp_password_hash = \"{}\"\nsender_domains = [\"other.example\"]\n",
            password_hash()
        ),
        ..Options::default()
    });
    opt_in(&d.config_path, "jane@example.test");
    let out = cli(
        &d.config_path,
        &[
            "contacts",
            "set",
            "--tenant",
            "other",
            "--list",
            "news.other.example",
            "--state",
            "double_opt_in_confirmed",
            "--source",
            "test",
            "jane@example.test",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.spawn();
    let other_news = |subject: &str| {
        newsletter("jane@example.test", subject)
            .replace("acme.example", "other.example")
            .replace("Acme", "Other")
    };

    // acme with other's From: refused by the policy.
    let r = send_as(
        &d,
        "acme",
        "news@acme.example",
        "jane@example.test",
        &other_news("Spoof"),
    )
    .await;
    assert!(r.starts_with("550"), "{r}");
    assert!(r.contains("from.domain_not_verified"), "{r}");

    // acme's newsletter, with postwarden's own one-click link (managed).
    let msg = newsletter("jane@example.test", "Acme news")
        .replace("List-Unsubscribe: <https://acme.example/u/abc>\r\n", "")
        .replace("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", "");
    let r = send_as(&d, "acme", "news@acme.example", "jane@example.test", &msg).await;
    assert!(r.starts_with("250"), "{r}");
    let got = sink.wait_for(1).await;
    let text = String::from_utf8_lossy(&got[0].data).to_string();
    assert_eq!(one_click_unsubscribe(d.http, &text).await, 200);

    // Unsubscribed from acme ...
    let mut c = Raw::login_as(d.submission, "acme").await;
    c.cmd("MAIL FROM:<news@acme.example>").await;
    let r = c.cmd("RCPT TO:<jane@example.test>").await;
    assert!(
        r.starts_with("550 5.7.1 policy: recipient.suppressed"),
        "{r}"
    );
    // ... and still other's subscriber.
    let r = send_as(
        &d,
        "other",
        "news@other.example",
        "jane@example.test",
        &other_news("Other news"),
    )
    .await;
    assert!(r.starts_with("250"), "{r}");
}

/// NUL bytes in DATA are refused with 554 5.6.0 and the session goes on; a
/// client trickling its DATA a few bytes at a time holds only its own session:
/// another client is served meanwhile, and the slow one gets 421 4.4.2 when
/// `data_timeout` passes without a byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_bytes_are_refused_and_a_slow_client_holds_only_itself() {
    let mut d = Daemon::new(Options {
        limits: "data_timeout = 2\n".into(),
        ..Options::default()
    });
    opt_in(&d.config_path, "jane@example.test");
    d.spawn();
    let mut c = Raw::login(d.submission).await;
    let message =
        newsletter("jane@example.test", "Nul").replace("<p>Hello.</p>", "<p>Hel\0lo.</p>");
    let r = c
        .transaction("news@acme.example", "jane@example.test", &message)
        .await;
    assert!(r.starts_with("554 5.6.0"), "{r}");
    assert!(c.cmd("NOOP").await.starts_with("250"));

    // The slow client: DATA, then a few bytes now and then.
    let mut slow = Raw::login(d.submission).await;
    slow.cmd("MAIL FROM:<news@acme.example>").await;
    slow.cmd("RCPT TO:<jane@example.test>").await;
    assert!(slow.cmd("DATA").await.starts_with("354"));
    for chunk in ["Subj", "ect: ", "slow\r\n"] {
        slow.send(chunk).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    // Meanwhile another client's message is accepted.
    let mut other = Raw::login(d.submission).await;
    other.cmd("MAIL FROM:<news@acme.example>").await;
    other.cmd("RCPT TO:<jane@example.test>").await;
    other.cmd("DATA").await;
    let message = newsletter("jane@example.test", "Quick").replace("\r\n.", "\r\n..");
    other.send(&format!("{message}.\r\n")).await;
    let r = other.reply().await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    // Then the slow one falls silent and is cut off after data_timeout.
    let r = slow.reply().await;
    assert!(r.starts_with("421 4.4.2"), "{r}");
    assert!(slow.eof().await);
}
