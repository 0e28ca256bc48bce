//! The SMTP engine over real sockets: submission with STARTTLS/AUTH and
//! implicit TLS through lettre, pipelining, limits, malformed commands,
//! relay tricks, the inbound listener and crash safety.

use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::harness::*;

pub(crate) fn lettre_transport(port: u16, implicit: bool) -> AsyncSmtpTransport<Tokio1Executor> {
    let tls = TlsParameters::builder("mta.test".into())
        .dangerous_accept_invalid_certs(true)
        .build_rustls()
        .expect("tls parameters");
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .tls(if implicit {
            Tls::Wrapper(tls)
        } else {
            Tls::Required(tls)
        })
        .credentials(Credentials::new("acme".into(), PASSWORD.into()))
        .timeout(Some(Duration::from_secs(30)))
        .build()
}

async fn send_with_lettre(d: &Daemon, implicit: bool, rcpt: &str) -> String {
    let port = if implicit {
        d.submissions.port()
    } else {
        d.submission.port()
    };
    let envelope = Envelope::new(
        Some("news@acme.example".parse().unwrap()),
        vec![rcpt.parse().unwrap()],
    )
    .unwrap();
    let reply = lettre_transport(port, implicit)
        .send_raw(&envelope, newsletter(rcpt, "Autumn news").as_bytes())
        .await
        .expect("lettre send");
    reply.message().collect::<Vec<_>>().join(" ")
}

fn queued_id(reply: &str) -> String {
    reply
        .split("queued as ")
        .nth(1)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| panic!("no queue id in {reply:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crm_submits_over_starttls_and_implicit_tls_with_auth() {
    let mut d = Daemon::new(Options::default());
    opt_in(&d.config_path, "jane@example.test");
    d.spawn();
    let a = send_with_lettre(&d, false, "jane@example.test").await;
    let b = send_with_lettre(&d, true, "jane@example.test").await;
    let (a, b) = (queued_id(&a), queued_id(&b));
    assert_ne!(a, b);
    let log = d.wait_for_log(&format!("{b}: from=<news@acme.example>"));
    assert!(
        log.contains(&format!("{a}: from=<news@acme.example>, size=")),
        "{log}"
    );
    assert!(log.contains("sasl_method=PLAIN, sasl_username=acme"));
    // The queue is readable while the daemon runs.
    let out = d.cli(&["queue", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert!(
        ids.contains(&a.as_str()) && ids.contains(&b.as_str()),
        "{ids:?}"
    );
    let show = d.cli(&["queue", "show", &a]);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(text.contains("Received: from "), "{text}");
    assert!(text.contains("with ESMTPSA id"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_commands_in_one_write_get_their_replies_in_order() {
    let mut d = Daemon::new(Options::default());
    opt_in(&d.config_path, "jane@example.test");
    d.spawn();
    let mut c = Raw::login(d.submission).await;
    let msg = newsletter("jane@example.test", "Pipelined");
    c.send(
        "MAIL FROM:<news@acme.example>\r\nRCPT TO:<jane@example.test>\r\nRCPT TO:<bad%trick@example.test>\r\nDATA\r\n",
    )
    .await;
    assert!(c.reply().await.starts_with("250 2.1.0"));
    assert!(c.reply().await.starts_with("250 2.1.5"));
    assert!(c.reply().await.starts_with("550 5.7.1"));
    assert!(c.reply().await.starts_with("354 "));
    c.send(&format!("{msg}.\r\nNOOP\r\n")).await;
    let r = c.reply().await;
    assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
    assert!(c.reply().await.starts_with("250 2.0.0"));
    assert!(c.cmd("QUIT").await.starts_with("221 2.0.0"));
    let log = d.wait_for_log("ehlo=1 auth=1 mail=1 rcpt=2 data=1 noop=1 quit=1 commands=8");
    assert!(log.contains("disconnect from [127.0.0.1]"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_out_of_order_commands_get_5xx_and_the_session_goes_on() {
    let d = Daemon::start(Options::default());
    let mut c = Raw::greeted(d.submission).await;
    assert!(c
        .cmd("MAIL FROM:<a@acme.example>")
        .await
        .starts_with("503 5.5.1"));
    assert!(c.cmd("FOO bar").await.starts_with("500 5.5.1"));
    assert!(c.cmd("EHLO").await.starts_with("501 5.5.2"));
    assert!(c.cmd("EHLO client.test").await.starts_with("250-mta.test"));
    assert!(c
        .cmd("RCPT TO:<x@example.test>")
        .await
        .starts_with("503 5.5.1"));
    assert!(c.cmd("DATA").await.starts_with("503 5.5.1"));
    assert!(c
        .cmd("MAIL FROM:<a@acme.example>")
        .await
        .starts_with("530 5.7.0"));
    assert!(c
        .cmd("MAIL FROM:a@acme.example")
        .await
        .starts_with("501 5.5.2"));
    assert!(c.cmd("VRFY someone").await.starts_with("252 2.5.2"));
    assert!(c.cmd("HELP").await.starts_with("214 2.0.0"));
    assert!(c.cmd("NOOP").await.starts_with("250 2.0.0"));
    assert!(c.cmd("RSET").await.starts_with("250 2.0.0"));
    assert!(c.cmd("QUIT").await.starts_with("221 2.0.0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_limit_answers_with_its_code() {
    let d = Daemon::start(Options {
        limits: "max_line_length = 600\nmax_message_size = 2000\nmax_recipients = 2\nmax_errors = 4\nidle_timeout = 2\nmax_connections_per_ip = 3\n".into(),
        ..Options::default()
    });
    // Line length (RFC 5321 §4.5.3.1.4): 500, and the session goes on.
    let mut c = Raw::login(d.submission).await;
    let long = format!("NOOP {}", "x".repeat(700));
    assert!(c.cmd(&long).await.starts_with("500 5.5.2"));
    assert!(c.cmd("NOOP").await.starts_with("250"));
    // SIZE declared too big, then recipients.
    assert!(c
        .cmd("MAIL FROM:<n@acme.example> SIZE=5000")
        .await
        .starts_with("552 5.3.4"));
    assert!(c.cmd("MAIL FROM:<n@acme.example>").await.starts_with("250"));
    assert!(c.cmd("RCPT TO:<a@example.test>").await.starts_with("250"));
    assert!(c.cmd("RCPT TO:<b@example.test>").await.starts_with("250"));
    assert!(c
        .cmd("RCPT TO:<c@example.test>")
        .await
        .starts_with("452 4.5.3"));
    // Message too big: read whole, then refused.
    assert!(c.cmd("DATA").await.starts_with("354"));
    c.send(&format!(
        "Subject: big\r\n\r\n{}\r\n.\r\n",
        "y".repeat(3000)
    ))
    .await;
    assert!(c.reply().await.starts_with("552 5.3.4"));
    assert!(c.cmd("NOOP").await.starts_with("250"));
    // Bad commands: after max_errors, 421 and close.
    for _ in 0..3 {
        assert!(c.cmd("BOGUS").await.starts_with("500"));
    }
    let last = c.cmd("BOGUS").await;
    assert!(last.contains("421 4.7.0"), "{last}");
    assert!(c.eof().await);
    // Idle timeout (§4.5.3.2): 421 4.4.2 and close.
    let mut idle = Raw::greeted(d.submission).await;
    let r = idle.reply().await;
    assert!(r.starts_with("421 4.4.2"), "{r}");
    // Connections per IP: the fourth is refused, the others still served.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(Raw::greeted(d.submission).await);
    }
    let mut extra = Raw::connect(d.submission).await;
    let r = extra.reply().await;
    assert!(r.starts_with("421 4.7.0"), "{r}");
    assert!(held[0].cmd("NOOP").await.starts_with("250"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_failures_are_throttled_then_refused() {
    let d = Daemon::start(Options {
        limits: "max_auth_failures = 3\nauth_lockout = 60\nmax_errors = 50\n".into(),
        ..Options::default()
    });
    let mut c = Raw::greeted(d.submission).await;
    c.cmd("EHLO client.test").await;
    for _ in 0..3 {
        let r = c
            .cmd(&format!("AUTH PLAIN {}", base64_plain("acme", "wrong")))
            .await;
        assert!(r.starts_with("535 5.7.8"), "{r}");
    }
    let r = c
        .cmd(&format!("AUTH PLAIN {}", base64_plain("acme", PASSWORD)))
        .await;
    assert!(r.starts_with("454 4.7.0"), "{r}");
    assert!(d.log().contains("SASL PLAIN authentication failed"));
    // AUTH LOGIN works step by step (from another address it would not be locked).
    let d2 = Daemon::start(Options::default());
    let mut c = Raw::greeted(d2.submission).await;
    c.cmd("EHLO client.test").await;
    assert!(c.cmd("AUTH LOGIN").await.starts_with("334 VXNlcm5hbWU6"));
    assert!(c.cmd("YWNtZQ==").await.starts_with("334 UGFzc3dvcmQ6"));
    use base64::Engine;
    let pw = base64::engine::general_purpose::STANDARD.encode(PASSWORD);
    assert!(c.cmd(&pw).await.starts_with("235 2.7.0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_needs_tls_unless_loopback_is_allowed() {
    let d = Daemon::start(Options {
        limits: "allow_plaintext_auth_on_loopback = false\n".into(),
        ..Options::default()
    });
    let mut c = Raw::greeted(d.submission).await;
    let ehlo = c.cmd("EHLO client.test").await;
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    let r = c
        .cmd(&format!("AUTH PLAIN {}", base64_plain("acme", PASSWORD)))
        .await;
    assert!(r.starts_with("538 5.7.11"), "{r}");
    c.cmd("QUIT").await;
    // Over STARTTLS it works (lettre requires TLS).
    let mut d = d;
    assert!(d.stop(), "clean exit");
    let mut d = Daemon::new(Options {
        limits: "allow_plaintext_auth_on_loopback = false\n".into(),
        ..Options::default()
    });
    opt_in(&d.config_path, "jane@example.test");
    d.spawn();
    queued_id(&send_with_lettre(&d, false, "jane@example.test").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_relay_tricks_on_any_listener() {
    let d = Daemon::start(Options::default());
    let tricks = [
        "user%other.example@bounces.test",
        "@a.example:user@bounces.test",
        "\"user@other\"@bounces.test",
        "user@other.example@bounces.test",
        "other.example!user@bounces.test",
    ];
    let mut sub = Raw::login(d.submission).await;
    assert!(sub
        .cmd("MAIL FROM:<news@acme.example>")
        .await
        .starts_with("250"));
    let mut inb = Raw::greeted(d.inbound).await;
    inb.cmd("EHLO mx.other.test").await;
    assert!(inb.cmd("MAIL FROM:<>").await.starts_with("250"));
    // The submissions listener (implicit TLS, port 465).
    let mut subs = Raw::connect_tls(d.submissions).await;
    assert!(subs.reply().await.starts_with("220 "));
    subs.cmd("EHLO client.test").await;
    let a = subs
        .cmd(&format!("AUTH PLAIN {}", base64_plain("acme", PASSWORD)))
        .await;
    assert!(a.starts_with("235"), "{a}");
    assert!(subs
        .cmd("MAIL FROM:<news@acme.example>")
        .await
        .starts_with("250"));
    for t in tricks {
        let r = sub.cmd(&format!("RCPT TO:<{t}>")).await;
        assert!(r.starts_with("5"), "submission accepted {t}: {r}");
        let r = subs.cmd(&format!("RCPT TO:<{t}>")).await;
        assert!(r.starts_with("5"), "submissions accepted {t}: {r}");
        let r = inb.cmd(&format!("RCPT TO:<{t}>")).await;
        assert!(r.starts_with("5"), "inbound accepted {t}: {r}");
    }
    // The inbound listener takes only the feedback domain's mailboxes.
    assert!(inb
        .cmd("RCPT TO:<someone@example.test>")
        .await
        .starts_with("550 5.7.1"));
    assert!(inb
        .cmd("RCPT TO:<nobody@bounces.test>")
        .await
        .starts_with("550 5.1.1"));
    assert!(inb
        .cmd("RCPT TO:<fbl@bounces.test>")
        .await
        .starts_with("250"));
    // No AUTH on the inbound listener.
    assert!(inb
        .cmd("AUTH PLAIN AGFjbWUAeA==")
        .await
        .starts_with("503 5.5.1"));
    // An unauthenticated client on the submission port relays nothing.
    let mut anon = Raw::greeted(d.submission).await;
    anon.cmd("EHLO client.test").await;
    assert!(anon
        .cmd("MAIL FROM:<news@acme.example>")
        .await
        .starts_with("530 5.7.0"));
    assert!(anon
        .cmd("RCPT TO:<x@example.test>")
        .await
        .starts_with("503"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_feedback_is_stored_durably() {
    let d = Daemon::start(Options::default());
    let mut c = Raw::greeted(d.inbound).await;
    c.cmd("EHLO mx.provider.test").await;
    assert!(c.cmd("MAIL FROM:<>").await.starts_with("250"));
    assert!(c.cmd("RCPT TO:<fbl@bounces.test>").await.starts_with("250"));
    assert!(c.cmd("DATA").await.starts_with("354"));
    c.send("From: fbl@provider.test\r\nSubject: complaint\r\n\r\nreport\r\n.\r\n")
        .await;
    let r = c.reply().await;
    assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
    d.wait_for_log("(inbound feedback)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bdat_chunks_make_one_message() {
    let mut d = Daemon::new(Options::default());
    opt_in(&d.config_path, "jane@example.test");
    d.spawn();
    let mut c = Raw::login(d.submission).await;
    c.cmd("MAIL FROM:<news@acme.example>").await;
    c.cmd("RCPT TO:<jane@example.test>").await;
    let msg = newsletter("jane@example.test", "Chunked");
    let (a, b) = msg.split_at(100);
    c.send(&format!("BDAT {}\r\n{a}", a.len())).await;
    assert!(c.reply().await.starts_with("250 2.0.0 100 octets"));
    c.send(&format!("BDAT {} LAST\r\n{b}", b.len())).await;
    let r = c.reply().await;
    assert!(r.starts_with("250 2.0.0 Ok: queued as"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggled_end_of_data_does_not_inject_a_second_message() {
    let mut d = Daemon::new(Options::default());
    opt_in(&d.config_path, "jane@example.test");
    d.spawn();
    let mut c = Raw::login(d.submission).await;
    c.cmd("MAIL FROM:<news@acme.example>").await;
    c.cmd("RCPT TO:<jane@example.test>").await;
    assert!(c.cmd("DATA").await.starts_with("354"));
    let msg = newsletter("jane@example.test", "Smuggle");
    let smuggled =
        "\n.\nMAIL FROM:<x@acme.example>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\nevil\r\n\r.\n";
    c.send(&format!("{msg}{smuggled}\r\n.\r\n")).await;
    let r = c.reply().await;
    // One reply for one message; nothing else is answered.
    assert!(
        r.starts_with("250 2.0.0 Ok: queued as") || r.starts_with("550"),
        "{r}"
    );
    assert!(c.cmd("NOOP").await.starts_with("250 2.0.0 Ok"));
    let out = d.cli(&["queue", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rcpts: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| {
            e["recipients"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["address"].as_str().unwrap().to_string())
        })
        .collect();
    assert!(!rcpts.iter().any(|r| r.contains("victim")), "{rcpts:?}");
}

/// Several clients send while the daemon is killed with SIGKILL; after a
/// restart every message acknowledged with 250 is in the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_loses_no_acknowledged_message() {
    let mut d = Daemon::new(Options::default());
    opt_in(&d.config_path, "jane@example.test");
    d.spawn();
    let addr = d.submission;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
                return acked;
            };
            drop(stream);
            let mut c = Raw::login(addr).await;
            for i in 0..1000 {
                let msg = newsletter("jane@example.test", &format!("Crash {i}"));
                c.send("MAIL FROM:<news@acme.example>\r\nRCPT TO:<jane@example.test>\r\nDATA\r\n")
                    .await;
                let a = c.reply().await;
                let b = c.reply().await;
                let d = c.reply().await;
                if !(a.starts_with("250") && b.starts_with("250") && d.starts_with("354")) {
                    break;
                }
                c.send(&format!("{msg}.\r\n")).await;
                let r = c.reply().await;
                match r.strip_prefix("250 2.0.0 Ok: queued as ") {
                    Some(id) => acked.push(id.trim().to_string()),
                    None => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    d.kill();
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert!(
        acked.len() > 10,
        "too few messages acknowledged before the kill: {}",
        acked.len()
    );
    let out = d.cli(&["queue", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: std::collections::HashSet<String> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["id"].as_str().map(str::to_string))
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|id| !ids.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged messages lost: {lost:?}",
        lost.len(),
        acked.len()
    );
    // Nothing half-written: every queue entry has its message.
    for id in ids.iter().take(5) {
        let show = d.cli(&["queue", "show", id]);
        assert!(
            String::from_utf8_lossy(&show.stdout).contains("Received: from"),
            "{id}"
        );
    }
    eprintln!(
        "crash test: {} acknowledged, 0 lost, {} in queue",
        acked.len(),
        ids.len()
    );
    d.spawn();
}

/// SIGTERM: no new connections, a session under way finishes its message
/// (250, in the spool), then the daemon exits cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_session_under_way_finish() {
    let mut d = Daemon::new(Options::default());
    opt_in(&d.config_path, "jane@example.test");
    d.spawn();
    let mut c = Raw::login(d.submission).await;
    assert!(c
        .cmd("MAIL FROM:<news@acme.example>")
        .await
        .starts_with("250"));
    assert!(c
        .cmd("RCPT TO:<jane@example.test>")
        .await
        .starts_with("250"));
    d.signal("TERM");
    d.wait_for_log("stopping: waiting up to");
    // The listener is closed: a new client cannot connect.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while tokio::net::TcpStream::connect(d.submission).await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "still accepting");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(c.cmd("DATA").await.starts_with("354"));
    let msg = newsletter("jane@example.test", "Last one").replace("\r\n.", "\r\n..");
    c.send(&format!("{msg}.\r\n")).await;
    let r = c.reply().await;
    assert!(r.starts_with("250 2.0.0 Ok: queued as "), "{r}");
    let id = r.trim().rsplit(' ').next().unwrap().to_string();
    c.cmd("QUIT").await;
    assert!(d.stop(), "clean exit: {}", d.log());
    assert!(d.log().contains("postwarden stopped"));
    let out = d.cli(&["queue", "show", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
