//! Delivery to a remote SMTP server on loopback through a static route:
//! VERP, tracking headers, DKIM, per-recipient outcomes, retries, bounces.

use std::collections::HashMap;
use std::time::Duration;

use crate::harness::*;

/// Submits the acme newsletter to `rcpts`; its queue id.
pub(crate) async fn submit(d: &Daemon, rcpts: &[&str], subject: &str) -> String {
    let r = submit_raw(d, rcpts, &newsletter(rcpts[0], subject)).await;
    r.strip_prefix("250 2.0.0 Ok: queued as ")
        .unwrap_or_else(|| panic!("not queued: {r}"))
        .trim()
        .to_string()
}

/// Sends `message` (ending in CRLF) to `rcpts` as acme; the reply to DATA.
pub(crate) async fn submit_raw(d: &Daemon, rcpts: &[&str], message: &str) -> String {
    let mut c = Raw::login(d.submission).await;
    // A client dot-stuffs (RFC 5321 §4.5.2): the line that starts with a dot
    // gets a second one; transaction_to does.
    c.transaction_to("news@acme.example", rcpts, message).await
}

fn daemon_with_route(sink: &Sink, extra_tenant: &str, rcpts: &[&str]) -> Daemon {
    let mut d = Daemon::new(Options {
        routes: format!("\"example.test\" = \"127.0.0.1:{}\"\n", sink.addr.port()),
        tenant: extra_tenant.to_string(),
        ..Options::default()
    });
    for r in rcpts {
        opt_in(&d.config_path, r);
    }
    d.spawn();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitted_message_arrives_at_the_sink_with_verp_and_tracking_headers() {
    let sink = Sink::start(Script::new()).await;
    let d = daemon_with_route(&sink, "", &["jane@example.test", "john@example.test"]);
    let id = submit(&d, &["jane@example.test", "john@example.test"], "Autumn").await;
    let got = sink.wait_for(2).await;
    let mut rcpts: Vec<&str> = got.iter().map(|r| r.rcpt.as_str()).collect();
    rcpts.sort();
    assert_eq!(rcpts, vec!["jane@example.test", "john@example.test"]);
    for r in &got {
        assert!(
            r.mail_from.starts_with(&format!("b-{id}-")),
            "{}",
            r.mail_from
        );
        assert!(r.mail_from.ends_with("@bounces.test"));
        let text = String::from_utf8_lossy(&r.data);
        assert!(
            text.contains("Feedback-ID: news.acme.example:acme:bulk:mta.test\r\n"),
            "{text}"
        );
        assert!(text.contains("X-Postwarden-Tracking: "), "{text}");
        // Dot-stuffing survived the round trip.
        assert!(
            text.contains("\r\n.<p>A line that starts with a dot.</p>\r\n"),
            "{text}"
        );
    }
    // One connection carried both copies.
    assert_eq!(*sink.connections.lock().unwrap(), 1);
    let log = d.wait_for_log(&format!("{id}: removed"));
    let line = log
        .lines()
        .find(|l| l.contains(&format!("{id}: to=<jane@example.test>")))
        .expect("delivery log line");
    assert!(
        line.contains(&format!("relay=127.0.0.1[127.0.0.1]:{}", sink.addr.port())),
        "{line}"
    );
    assert!(
        line.contains("dsn=2.0.0, status=sent (250 2.0.0 Ok: queued)"),
        "{line}"
    );
    assert!(line.contains("delay="), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporary_failure_is_retried_and_then_delivered() {
    let mut script = Script::new();
    script.insert(
        "jane@example.test".into(),
        vec!["451 4.3.0 try again later".into(), "250 2.1.5 Ok".into()],
    );
    let sink = Sink::start(script).await;
    let d = daemon_with_route(&sink, "", &["jane@example.test"]);
    let id = submit(&d, &["jane@example.test"], "Retry").await;
    d.wait_for_log(&format!("{id}: to=<jane@example.test>"));
    let log = d.log();
    assert!(
        log.contains("status=deferred (451 4.3.0 try again later)"),
        "{log}"
    );
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].rcpt, "jane@example.test");
    d.wait_for_log(&format!("{id}: removed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_unknown_at_rcpt_is_a_hard_bounce_that_suppresses_the_address() {
    let mut script = Script::new();
    script.insert(
        "gone@example.test".into(),
        vec!["550 5.1.1 <gone@example.test>: user unknown".into()],
    );
    let sink = Sink::start(script).await;
    let d = daemon_with_route(&sink, "", &["gone@example.test", "jane@example.test"]);
    let id = submit(&d, &["gone@example.test", "jane@example.test"], "Bounce").await;
    let log = d.wait_for_log("suppressed for acme: hard bounce (user_unknown)");
    assert!(
        log.contains(&format!("{id}: to=<gone@example.test>")),
        "{log}"
    );
    assert!(
        log.contains("dsn=5.1.1, status=bounced (550 5.1.1 <gone@example.test>: user unknown)"),
        "{log}"
    );
    assert_eq!(sink.wait_for(1).await[0].rcpt, "jane@example.test");
    // The next RCPT TO for that address is refused.
    let r = rcpt_until(&d, "gone@example.test", "550").await;
    assert!(
        r.starts_with("550 5.7.1 policy: recipient.suppressed"),
        "{r}"
    );
    // And the contact shows why.
    let out = d.cli(&["contacts", "show", "--tenant", "acme", "gone@example.test"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("suppressed: bounce"), "{text}");
    assert!(text.contains("hard bounces 1"), "{text}");
}

/// A tenant with `bounce_notify` gets an RFC 3464 notice (null sender) for a
/// recipient that fails for good, unless the recipient asked for NOTIFY=NEVER.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_recipient_sends_a_dsn_to_bounce_notify() {
    let mut script = Script::new();
    for gone in ["gone@example.test", "quiet@example.test"] {
        script.insert(
            gone.into(),
            vec![format!("550 5.1.1 <{gone}>: user unknown")],
        );
    }
    let sink = Sink::start(script).await;
    let d = daemon_with_route(
        &sink,
        "bounce_notify = \"crm-bounces@example.test\"\n",
        &[
            "gone@example.test",
            "jane@example.test",
            "quiet@example.test",
        ],
    );
    let id = submit(&d, &["gone@example.test", "jane@example.test"], "Bounce").await;
    let received = sink.wait_for(2).await;
    let notice = received
        .iter()
        .find(|m| m.rcpt == "crm-bounces@example.test")
        .unwrap_or_else(|| panic!("no notice among {received:?}"));
    assert_eq!(notice.mail_from, "", "a DSN has the null sender");
    let text = String::from_utf8_lossy(&notice.data);
    for needle in [
        "Content-Type: multipart/report; report-type=delivery-status;",
        "Subject: Undelivered Mail Returned to Sender",
        &format!("X-Postwarden-Queue-ID: {id}"),
        "Final-Recipient: rfc822; gone@example.test",
        "Action: failed",
        "Status: 5.1.1",
        "Diagnostic-Code: smtp; 550 5.1.1 <gone@example.test>: user unknown",
        "Content-Type: text/rfc822-headers",
    ] {
        assert!(text.contains(needle), "{needle:?} missing in\n{text}");
    }
    assert!(!text.contains("jane@example.test>: "), "{text}");
    d.wait_for_log(&format!("{id}: removed"));

    // NOTIFY=NEVER: the recipient still bounces, but no notice is written.
    let mut c = Raw::login(d.submission).await;
    assert!(c
        .cmd("MAIL FROM:<news@acme.example>")
        .await
        .starts_with("250"));
    let r = c.cmd("RCPT TO:<quiet@example.test> NOTIFY=NEVER").await;
    assert!(r.starts_with("250"), "{r}");
    assert!(c.cmd("DATA").await.starts_with("354"));
    let message = newsletter("quiet@example.test", "Quiet").replace("\r\n.", "\r\n..");
    c.send(&format!("{message}.\r\n")).await;
    let r = c.reply().await;
    let quiet = r
        .strip_prefix("250 2.0.0 Ok: queued as ")
        .unwrap_or_else(|| panic!("not queued: {r}"))
        .trim()
        .to_string();
    let log = d.wait_for_log(&format!("{quiet}: removed"));
    assert!(
        log.contains(&format!("{quiet}: to=<quiet@example.test>")),
        "{log}"
    );
    assert!(!log.contains(&format!("notification: {quiet}")), "{log}");
    assert_eq!(sink.received().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_defers_and_a_restart_resumes_delivery() {
    // The route points at a port where nothing listens yet.
    let port = free_port();
    let mut d = Daemon::new(Options {
        routes: format!("\"example.test\" = \"127.0.0.1:{port}\"\n"),
        ..Options::default()
    });
    opt_in(&d.config_path, "jane@example.test");
    d.spawn();
    let id = submit(&d, &["jane@example.test"], "Later").await;
    let log = d.wait_for_log(&format!("{id}: to=<jane@example.test>"));
    assert!(log.contains("status=deferred"), "{log}");
    // The log line comes before the deferral is written: wait for the spool.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = d.cli(&["queue", "list", "--json"]);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if list[0]["recipients"][0]["status"] == "deferred" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never deferred: {list}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    d.kill();
    let out = d.cli(&["queue", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["recipients"][0]["status"], "deferred");
    // Now a server listens there; the restarted daemon delivers.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    drop(listener);
    let sink = Sink::start_on(port, HashMap::new()).await;
    d.spawn();
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].rcpt, "jane@example.test");
    d.wait_for_log(&format!("{id}: removed"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let out = d.cli(&["queue", "list", "--json"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
}

/// Queue changes while the daemon runs go through its admin API: a held
/// message is not delivered when its destination comes back; released, it
/// is; a deleted one is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_hold_release_and_delete_work_while_the_daemon_runs() {
    let port = free_port();
    let mut d = Daemon::new(Options {
        routes: format!("\"example.test\" = \"127.0.0.1:{port}\"\n"),
        ..Options::default()
    });
    opt_in(&d.config_path, "jane@example.test");
    opt_in(&d.config_path, "john@example.test");
    d.spawn();
    let kept = submit(&d, &["jane@example.test"], "Kept").await;
    let gone = submit(&d, &["john@example.test"], "Gone").await;
    d.wait_for_log(&format!("{kept}: to=<jane@example.test>"));
    let out = d.cli(&["queue", "hold", &kept]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{kept}: held")
    );
    let out = d.cli(&["queue", "delete", &gone]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = d.cli(&["queue", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["held"], true);
    // The destination answers now; the held message waits.
    let sink = Sink::start_on(port, HashMap::new()).await;
    let out = d.cli(&["queue", "flush", "--all"]);
    assert!(out.status.success());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(sink.received().is_empty());
    let out = d.cli(&["queue", "release", &kept]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{kept}: released")
    );
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].rcpt, "jane@example.test");
    d.wait_for_log(&format!("{kept}: removed"));
    // Unknown ids are named.
    let out = d.cli(&["queue", "hold", "0NOSUCHID00"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no message 0NOSUCHID00"));
}

/// A DSN sent back to the VERP address suppresses the address; one with a
/// forged token changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dsn_to_the_verp_address_suppresses_and_a_forged_one_does_not() {
    let sink = Sink::start(Script::new()).await;
    let d = daemon_with_route(&sink, "", &["jane@example.test", "john@example.test"]);
    submit(&d, &["jane@example.test", "john@example.test"], "Autumn").await;
    let got = sink.wait_for(2).await;
    let jane = got.iter().find(|r| r.rcpt == "jane@example.test").unwrap();
    let john = got.iter().find(|r| r.rcpt == "john@example.test").unwrap();
    let dsn = |to: &str, rcpt: &str| {
        format!(
            "From: MAILER-DAEMON@mx.example.test\r\nTo: {to}\r\nSubject: Undelivered Mail Returned to Sender\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
--B\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n\
--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.test\r\n\r\n\
Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n--B--\r\n"
        )
    };
    let forged = john.mail_from.replace("-1-", "-0-");
    for (to, rcpt) in [
        (jane.mail_from.as_str(), "jane@example.test"),
        (forged.as_str(), "john@example.test"),
    ] {
        let mut c = Raw::greeted(d.inbound).await;
        c.cmd("EHLO mx.example.test").await;
        assert!(c.cmd("MAIL FROM:<>").await.starts_with("250"));
        let r = c.cmd(&format!("RCPT TO:<{to}>")).await;
        assert!(r.starts_with("250"), "{to}: {r}");
        c.cmd("DATA").await;
        c.send(&format!("{}.\r\n", dsn(to, rcpt))).await;
        assert!(c.reply().await.starts_with("250"));
    }
    let log = d.wait_for_log("does not verify");
    d.wait_for_log("(suppressed)");
    assert!(log.contains("VERP token that does not verify"), "{log}");
    assert!(rcpt_until(&d, "jane@example.test", "550")
        .await
        .starts_with("550 5.7.1 policy: recipient.suppressed"));
    let mut c = Raw::login(d.submission).await;
    c.cmd("MAIL FROM:<news@acme.example>").await;
    assert!(c
        .cmd("RCPT TO:<john@example.test>")
        .await
        .starts_with("250"));
}

/// An ARF complaint naming the tracking header suppresses the address tenant-wide.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arf_complaint_suppresses_the_address_even_when_redacted() {
    let sink = Sink::start(Script::new()).await;
    let d = daemon_with_route(&sink, "", &["jane@example.test"]);
    submit(&d, &["jane@example.test"], "Autumn").await;
    let got = sink.wait_for(1).await;
    let original =
        String::from_utf8_lossy(&got[0].data).replace("jane@example.test", "redacted@example.test");
    send_arf(&d, &original).await;
    d.wait_for_log("complaint (abuse)");
    let r = rcpt_until(&d, "jane@example.test", "550").await;
    assert!(r.starts_with("550 5.7.1 policy: recipient.suppressed: <jane@example.test> is on the suppression list (complaint)"), "{r}");
    // A person's forward without our tracking header: nobody is suppressed,
    // but the abuse desk keeps it like the ARF report.
    let mut c = Raw::greeted(d.inbound).await;
    c.cmd("EHLO mail.example.org").await;
    c.cmd("MAIL FROM:<someone@example.org>").await;
    assert!(c
        .cmd("RCPT TO:<abuse@bounces.test>")
        .await
        .starts_with("250"));
    c.cmd("DATA").await;
    c.send("From: someone@example.org\r\nTo: abuse@bounces.test\r\nSubject: Fwd: spam\r\n\r\nThis is spam.\r\n.\r\n")
        .await;
    assert!(c.reply().await.starts_with("250"));
    d.wait_for_log("abuse report without a tracking header");
    // The log line comes before the write: wait for the spool.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let cases = loop {
        let out = d.cli(&["abuse", "list", "--json"]);
        let cases: serde_json::Value = serde_json::from_slice(&out.stdout).expect("abuse cases");
        if cases.as_array().map(Vec::len) == Some(2) {
            break cases;
        }
        assert!(std::time::Instant::now() < deadline, "{cases}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(cases[0]["mailbox"], "fbl");
    assert_eq!(cases[0]["tenant"], "acme");
    assert_eq!(cases[0]["recipient"], "jane@example.test");
    assert_eq!(cases[1]["mailbox"], "abuse");
    assert!(cases[1].get("tenant").is_none(), "{cases}");
    let id = cases[1]["id"].as_str().unwrap();
    let out = d.cli(&["abuse", "show", id]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("This is spam."));
}

/// Sends an RFC 3464 hard bounce for `rcpt` to the VERP address `verp`,
/// with the returned copy's headers (`original`, up to its body).
pub(crate) async fn send_dsn(d: &Daemon, verp: &str, rcpt: &str, original: &str) {
    let headers = original.split("\r\n\r\n").next().unwrap_or("");
    let dsn = format!(
        "From: MAILER-DAEMON@mx.example.test\r\nTo: {verp}\r\nSubject: Undelivered Mail Returned to Sender\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
--B\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n\
--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.test\r\n\r\n\
Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n\
--B\r\nContent-Type: text/rfc822-headers\r\n\r\n{headers}\r\n\r\n--B--\r\n"
    );
    let mut c = Raw::greeted(d.inbound).await;
    c.cmd("EHLO mx.example.test").await;
    assert!(c.cmd("MAIL FROM:<>").await.starts_with("250"));
    assert!(c.cmd(&format!("RCPT TO:<{verp}>")).await.starts_with("250"));
    c.cmd("DATA").await;
    c.send(&format!("{}.\r\n", dsn.replace("\r\n.", "\r\n..")))
        .await;
    assert!(c.reply().await.starts_with("250"));
}

/// Sends a provider's ARF abuse report about `original` to fbl@.
pub(crate) async fn send_arf(d: &Daemon, original: &str) {
    let arf = format!(
        "From: fbl@provider.test\r\nTo: fbl@bounces.test\r\nSubject: complaint\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=feedback-report; boundary=\"A\"\r\n\r\n\
--A\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n\
--A\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: test/1.0\r\nVersion: 1\r\n\r\n\
--A\r\nContent-Type: message/rfc822\r\n\r\n{original}\r\n--A--\r\n"
    );
    let mut c = Raw::greeted(d.inbound).await;
    c.cmd("EHLO fbl.provider.test").await;
    c.cmd("MAIL FROM:<fbl@provider.test>").await;
    assert!(c.cmd("RCPT TO:<fbl@bounces.test>").await.starts_with("250"));
    c.cmd("DATA").await;
    c.send(&format!("{arf}.\r\n")).await;
    assert!(c.reply().await.starts_with("250"));
}

/// Complaints over the tenant's limit suspend it: 550 at MAIL FROM until the
/// postmaster resumes it (through the admin API while the daemon runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complaint_rate_over_the_limit_suspends_the_tenant() {
    let sink = Sink::start(Script::new()).await;
    let d = daemon_with_route(
        &sink,
        "complaint_min_deliveries = 2\ncomplaint_rate_limit = 0.3\n",
        &["jane@example.test", "john@example.test"],
    );
    submit(&d, &["jane@example.test", "john@example.test"], "Autumn").await;
    let got = sink.wait_for(2).await;
    let original = String::from_utf8_lossy(&got[0].data).to_string();
    send_arf(&d, &original).await;
    d.wait_for_log("tenant acme: suspended: complaint rate 50.00%");
    let mut c = Raw::login(d.submission).await;
    let r = c.cmd("MAIL FROM:<news@acme.example>").await;
    assert!(r.starts_with("550 5.7.1"), "{r}");
    assert!(r.contains("suspended"), "{r}");
    let out = d.cli(&["tenant", "stats", "acme", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stats json");
    assert_eq!(stats["complaints"], 1, "{stats}");
    assert_eq!(stats["delivered"], 2, "{stats}");
    assert_eq!(stats["window"]["complaints"], 1, "{stats}");
    assert!(stats["suspended"]
        .as_str()
        .unwrap()
        .contains("complaint rate"));
    // The postmaster lifts it while the daemon runs.
    let out = d.cli(&["tenant", "resume", "acme"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut c = Raw::login(d.submission).await;
    let r = c.cmd("MAIL FROM:<news@acme.example>").await;
    assert!(r.starts_with("250"), "{r}");
}

/// Managed mode: postwarden writes the one-click header; a POST to it
/// unsubscribes at once, a GET (what link scanners do) does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_unsubscribe_one_click_takes_effect_at_the_next_rcpt() {
    let sink = Sink::start(Script::new()).await;
    let d = daemon_with_route(&sink, "unsubscribe = \"managed\"\n", &["jane@example.test"]);
    let mut c = Raw::login(d.submission).await;
    c.cmd("MAIL FROM:<news@acme.example>").await;
    c.cmd("RCPT TO:<jane@example.test>").await;
    c.cmd("DATA").await;
    let msg = newsletter("jane@example.test", "Managed")
        .replace("List-Unsubscribe: <https://acme.example/u/abc>\r\n", "")
        .replace("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", "");
    c.send(&format!("{msg}.\r\n")).await;
    assert!(c.reply().await.starts_with("250"));
    let got = sink.wait_for(1).await;
    let text = String::from_utf8_lossy(&got[0].data).to_string();
    assert!(
        text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"),
        "{text}"
    );
    let url = managed_unsubscribe_url(&text, d.http);
    let path = unsubscribe_path(&url);
    assert!(text.contains("<mailto:unsubscribe+"), "{text}");
    // The footer with the same link is in the body.
    let parsed = mail_parser::MessageParser::default()
        .parse(&got[0].data)
        .expect("a message");
    let html = parsed.body_html(0).expect("an html body");
    assert!(
        html.contains(&format!("<a href=\"{url}\">unsubscribe</a>")),
        "{html}"
    );
    assert!(html.contains("<p>Hello.</p>"), "{html}");
    // A GET shows a page and changes nothing.
    let (status, page) = http(d.http, "GET", path, &[], "").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<form method=\"post\">"));
    let mut c = Raw::login(d.submission).await;
    c.cmd("MAIL FROM:<news@acme.example>").await;
    assert!(c
        .cmd("RCPT TO:<jane@example.test>")
        .await
        .starts_with("250"));
    // A forged token is refused.
    let (status, forged) = http(
        d.http,
        "POST",
        &format!("{}x", &path[..path.len() - 1]),
        &[FORM],
        "List-Unsubscribe=One-Click",
    )
    .await;
    assert_eq!(status, 404, "{forged}");
    // The one-click POST takes effect at once.
    let (status, done) = http(d.http, "POST", path, &[FORM], "List-Unsubscribe=One-Click").await;
    assert_eq!(status, 200, "{done}");
    let mut c = Raw::login(d.submission).await;
    c.cmd("MAIL FROM:<news@acme.example>").await;
    let r = c.cmd("RCPT TO:<jane@example.test>").await;
    assert!(r.starts_with("550 5.7.1 policy: recipient.suppressed: <jane@example.test> is on the suppression list (unsubscribed)"), "{r}");
}

/// mail-auth verifies `message`'s DKIM signature against `record` published
/// at `name` (no network: a cache holds the one record).
pub(crate) async fn assert_dkim_passes(message: &[u8], name: &str, record: &str) {
    use mail_auth::common::parse::TxtRecordParser;
    let domain_key = mail_auth::common::verify::DomainKey::parse(record.as_bytes()).unwrap();
    let mut records = std::collections::HashMap::new();
    records.insert(
        name.to_string(),
        mail_auth::Txt::DomainKey(std::sync::Arc::new(domain_key)),
    );
    let cache = KeyRecords(records);
    let verifier = mail_auth::MessageAuthenticator::new_system_conf()
        .or_else(|_| mail_auth::MessageAuthenticator::new_cloudflare())
        .unwrap();
    let message = mail_auth::AuthenticatedMessage::parse(message).unwrap();
    let results = verifier
        .verify_dkim(mail_auth::Parameters::new(&message).with_txt_cache(&cache))
        .await;
    assert!(
        results
            .iter()
            .any(|r| r.result() == &mail_auth::DkimResult::Pass),
        "{:?}",
        results
            .iter()
            .map(|r| r.result().clone())
            .collect::<Vec<_>>()
    );
}

/// `postwarden dkim keygen` writes a key (0600) and prints the record and
/// config lines; with those lines the daemon's signature verifies against
/// that record, for RSA and Ed25519.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_from_dkim_keygen_signs_mail_that_verifies_against_its_printed_record() {
    use std::os::unix::fs::PermissionsExt;
    for algorithm in ["rsa-sha256", "ed25519-sha256"] {
        let sink = Sink::start(Script::new()).await;
        let mut d = Daemon::new(Options {
            routes: format!("\"example.test\" = \"127.0.0.1:{}\"\n", sink.addr.port()),
            ..Options::default()
        });
        let Keygen { printed, strings } = dkim_keygen(&d, "s2", algorithm);
        let key_file = d.dir.path().join("s2.acme.example.dkim.pem");
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{printed}");
        // Never over an existing key.
        let again = d.cli(&["dkim", "keygen", "--tenant", "acme", "--selector", "s2"]);
        assert!(!again.status.success());
        // The zone line's strings, joined, are the record.
        assert!(strings.iter().all(|s| s.len() <= 255), "{printed}");
        let record = strings.concat();
        assert!(
            printed.contains(&format!("dkim_algorithm = \"{algorithm}\"")),
            "{printed}"
        );
        opt_in(&d.config_path, "jane@example.test");
        d.spawn();
        submit(&d, &["jane@example.test"], "Signed").await;
        let got = sink.wait_for(1).await;
        assert_dkim_passes(&got[0].data, "s2._domainkey.acme.example.", &record).await;
        d.stop();
    }
}

/// A TXT "DNS" for mail-auth's verifier: the test's DKIM key record, no network.
struct KeyRecords(std::collections::HashMap<String, mail_auth::Txt>);

impl mail_auth::ResolverCache<Box<str>, mail_auth::Txt> for KeyRecords {
    fn get<Q>(&self, name: &Q) -> Option<mail_auth::Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.0
            .iter()
            .find(|(k, _)| {
                let key: Box<str> = k.as_str().into();
                std::borrow::Borrow::<Q>::borrow(&key) == name
            })
            .map(|(_, v)| v.clone())
    }
    fn remove<Q>(&self, name: &Q) -> Option<mail_auth::Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.get(name)
    }
    fn insert(&self, _: Box<str>, _: mail_auth::Txt, _: std::time::Instant) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_mail_carries_a_dkim_signature_that_verifies() {
    use base64::Engine;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let sink = Sink::start(Script::new()).await;
    let mut d = Daemon::new(Options {
        routes: format!("\"example.test\" = \"127.0.0.1:{}\"\n", sink.addr.port()),
        tenant:
            "dkim_selector = \"s1\"\ndkim_key = \"dkim.pem\"\ndkim_algorithm = \"ed25519-sha256\"\n"
                .into(),
        ..Options::default()
    });
    std::fs::write(d.dir.path().join("dkim.pem"), key.serialize_pem()).unwrap();
    opt_in(&d.config_path, "jane@example.test");
    d.spawn();
    // A UTF-8 Subject (RFC 6532): the signature covers it as sent.
    submit(&d, &["jane@example.test"], "Signiert: Bücher für Jörg").await;
    let got = sink.wait_for(1).await;
    let text = String::from_utf8_lossy(&got[0].data).to_string();
    assert!(text.starts_with("DKIM-Signature: "), "{text}");
    assert!(
        text.contains("\r\nSubject: Signiert: Bücher für Jörg\r\n"),
        "{text}"
    );
    let record = format!(
        "v=DKIM1; k=ed25519; p={}",
        base64::engine::general_purpose::STANDARD.encode(key.public_key_raw())
    );
    assert_dkim_passes(&got[0].data, "s1._domainkey.acme.example.", &record).await;
    // RFC 8058 §4: the unsubscribe headers must be covered by the signature.
    let mut lines = text.split("\r\n");
    let mut signature = lines.next().unwrap().to_string();
    for l in lines.take_while(|l| l.starts_with(' ') || l.starts_with('\t')) {
        signature.push_str(l.trim());
    }
    let h = signature
        .split(';')
        .map(str::trim)
        .find(|t| t.starts_with("h="))
        .unwrap()
        .to_ascii_lowercase();
    let signed: Vec<&str> = h[2..].split(':').map(str::trim).collect();
    for name in [
        "from",
        "subject",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "feedback-id",
        "list-id",
        "message-id",
    ] {
        assert!(signed.contains(&name), "h= misses {name}: {h}");
    }
}

/// Prometheus metrics count what happened; they need a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_acceptance_delivery_and_rejections() {
    let sink = Sink::start(Script::new()).await;
    let d = daemon_with_route(&sink, "", &["jane@example.test"]);
    submit(&d, &["jane@example.test"], "Counted").await;
    sink.wait_for(1).await;
    d.wait_for_log("status=sent");
    // A policy rejection: no List-Unsubscribe-Post.
    let mut c = Raw::login(d.submission).await;
    c.cmd("MAIL FROM:<news@acme.example>").await;
    c.cmd("RCPT TO:<jane@example.test>").await;
    c.cmd("DATA").await;
    let msg = newsletter("jane@example.test", "Bad")
        .replace("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", "")
        .replace("\r\n.", "\r\n..");
    c.send(&format!("{msg}.\r\n")).await;
    assert!(c.reply().await.starts_with("550"));
    let (status, _) = http(d.http, "GET", "/metrics", &[], "").await;
    assert_eq!(status, 401);
    let token = std::fs::read_to_string(d.spool().join("admin.token")).unwrap();
    let auth = format!("Bearer {}", token.trim());
    let (status, text) = http(d.http, "GET", "/metrics", &[("Authorization", &auth)], "").await;
    assert_eq!(status, 200, "{text}");
    for line in [
        "postwarden_messages_accepted_total{listener=\"submission\"} 1",
        "postwarden_deliveries_total{status=\"sent\"} 1",
        "postwarden_messages_rejected_total{reason=\"unsubscribe.one_click_missing\"} 1",
        "postwarden_acceptance_seconds_count 1",
        "postwarden_store_up{backend=\"rocksdb\"} 1",
        "postwarden_consent_cache_lookups{result=\"miss\"}",
    ] {
        assert!(text.contains(line), "{line} missing in:\n{text}");
    }
    assert!(
        text.contains("postwarden_queue_messages{state=\"queued\"}"),
        "{text}"
    );
    // Group commit: at least one sync, and never more syncs than commits.
    let gauge = |kind: &str| -> u64 {
        let prefix = format!("postwarden_spool_writes{{kind=\"{kind}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{prefix} missing in:\n{text}"))
    };
    let (commits, syncs) = (gauge("commits"), gauge("syncs"));
    assert!(
        syncs >= 1 && syncs <= commits,
        "{commits} commits, {syncs} syncs"
    );
    // Memory by part: the daemon's resident set, and RocksDB's parts
    // within it (the message just written sits in a memtable).
    let memory = |part: &str| -> u64 {
        let prefix = format!("postwarden_memory_bytes{{part=\"{part}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{prefix} missing in:\n{text}"))
    };
    let (rss, peak) = (memory("rss"), memory("peak_rss"));
    assert!(rss > 0 && peak >= rss, "rss {rss}, peak {peak}");
    let memtables = memory("memtables");
    assert!(memtables > 0 && memtables < rss, "memtables {memtables}");
    memory("block_cache");
    memory("table_readers");
    // The resident set split: anonymous memory and mapped files, read at
    // the same moment as the whole.
    let (anon, file) = (memory("rss_anon"), memory("rss_file"));
    assert!(
        anon > 0 && anon + file <= rss,
        "anon {anon}, file {file}, rss {rss}"
    );
    let threads: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("postwarden_threads "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("postwarden_threads missing in:\n{text}"));
    assert!(threads > 1, "{threads} threads");
}

/// SIGHUP reads the configuration again: a new route takes effect for the
/// next message; a broken file is refused and the running one kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_routes_and_refuses_a_broken_file() {
    let first = Sink::start(Script::new()).await;
    let second = Sink::start(Script::new()).await;
    let d = daemon_with_route(&first, "", &["jane@example.test"]);
    submit(&d, &["jane@example.test"], "One").await;
    first.wait_for(1).await;
    let text = std::fs::read_to_string(&d.config_path).unwrap();
    let moved = text.replace(
        &format!("127.0.0.1:{}", first.addr.port()),
        &format!("127.0.0.1:{}", second.addr.port()),
    );
    assert_ne!(text, moved);
    std::fs::write(&d.config_path, &moved).unwrap();
    d.signal("HUP");
    d.wait_for_log("SIGHUP: configuration reloaded");
    submit(&d, &["jane@example.test"], "Two").await;
    let got = second.wait_for(1).await;
    assert!(String::from_utf8_lossy(&got[0].data).contains("Subject: Two"));
    // A key that does not exist: refused, named with its line; mail still flows.
    std::fs::write(&d.config_path, format!("{moved}\nno_such_key = 1\n")).unwrap();
    d.signal("HUP");
    let log = d.wait_for_log("SIGHUP: configuration refused");
    assert!(log.contains("no_such_key"), "{log}");
    submit(&d, &["jane@example.test"], "Three").await;
    second.wait_for(2).await;
}

/// Anyone can send us a bounce or a complaint. Reports that cannot prove whom
/// they are about (a tracking token that does not verify, or none) suppress
/// nobody and count nothing; a genuine report sent again (a provider's
/// duplicate, or a replay meant to push the tenant over its complaint limit)
/// counts once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_replayed_feedback_changes_nothing() {
    let sink = Sink::start(Script::new()).await;
    let d = daemon_with_route(
        &sink,
        "complaint_min_deliveries = 2\ncomplaint_rate_limit = 0.6\nsoft_bounce_limit = 2\n",
        &["jane@example.test", "john@example.test"],
    );
    submit(&d, &["jane@example.test", "john@example.test"], "Autumn").await;
    let got = sink.wait_for(2).await;
    let jane = got.iter().find(|r| r.rcpt == "jane@example.test").unwrap();
    let john = got.iter().find(|r| r.rcpt == "john@example.test").unwrap();
    let jane_original = String::from_utf8_lossy(&jane.data).to_string();
    let john_original = String::from_utf8_lossy(&john.data).to_string();

    // Jane's complaint, three times: one complaint (50 % of 2 deliveries,
    // under the 60 % limit); counted thrice it would suspend the tenant.
    for _ in 0..3 {
        send_arf(&d, &jane_original).await;
    }
    // About John: a tracking token with a changed MAC, and no token at all.
    let token_line = john_original
        .lines()
        .find(|l| l.starts_with("X-Postwarden-Tracking: "))
        .expect("tracking header")
        .to_string();
    // Tokens are read case-insensitively (VERP local parts get case-folded),
    // so the forgery changes the last character to another one, not its case.
    let mut forged_token = token_line.clone();
    let last = forged_token.pop().expect("a token");
    forged_token.push(if last.eq_ignore_ascii_case(&'0') {
        '1'
    } else {
        '0'
    });
    send_arf(&d, &john_original.replace(&token_line, &forged_token)).await;
    send_arf(&d, &john_original.replace(&format!("{token_line}\r\n"), "")).await;
    // A soft bounce about John, three times (soft_bounce_limit = 2).
    for _ in 0..3 {
        send_full_mailbox_dsn(&d, &john.mail_from).await;
    }
    let log = d.wait_for_log("was counted before: ignored");
    for needle in [
        "tracking token that does not verify",
        "report without a tracking header",
    ] {
        assert!(log.contains(needle), "{needle:?} missing:\n{log}");
    }
    // Wait until every report went through the processor.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while d.log().matches("was counted before").count() < 4 {
        assert!(std::time::Instant::now() < deadline, "{}", d.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = d.cli(&["tenant", "stats", "acme", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stats json");
    assert_eq!(stats["complaints"], 1, "{stats}");
    assert_eq!(stats["bounced"], 1, "{stats}");
    assert!(stats["suspended"].is_null(), "{stats}");
    let mut c = Raw::login(d.submission).await;
    assert!(c
        .cmd("MAIL FROM:<news@acme.example>")
        .await
        .starts_with("250"));
    let r = c.cmd("RCPT TO:<john@example.test>").await;
    assert!(
        r.starts_with("250"),
        "John is suppressed by forged or repeated reports: {r}"
    );
    let r = c.cmd("RCPT TO:<jane@example.test>").await;
    assert!(r.starts_with("550 5.7.1"), "{r}");
}

/// Sends the inbound listener a DSN to the VERP address `to`: John's
/// mailbox is full (a soft bounce).
async fn send_full_mailbox_dsn(d: &Daemon, to: &str) {
    let dsn = format!(
        "From: MAILER-DAEMON@mx.example.test\r\nTo: {to}\r\nSubject: Undelivered Mail\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
--B\r\nContent-Type: text/plain\r\n\r\nMailbox full.\r\n\
--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.test\r\n\r\n\
Final-Recipient: rfc822; john@example.test\r\nAction: failed\r\nStatus: 5.2.2\r\nDiagnostic-Code: smtp; 552 5.2.2 mailbox full\r\n\r\n--B--\r\n",
    );
    let mut c = Raw::greeted(d.inbound).await;
    c.cmd("EHLO mx.example.test").await;
    assert!(c.cmd("MAIL FROM:<>").await.starts_with("250"));
    assert!(c.cmd(&format!("RCPT TO:<{to}>")).await.starts_with("250"));
    c.cmd("DATA").await;
    c.send(&format!("{dsn}.\r\n")).await;
    assert!(c.reply().await.starts_with("250"));
}

/// The soft bounce count of a contact on the newsletter list, as
/// `contacts show` prints it.
fn soft_bounces(d: &Daemon, address: &str) -> String {
    let out = d.cli(&["contacts", "show", "--tenant", "acme", address]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines()
        .find(|l| l.contains("list news.acme.example"))
        .and_then(|l| l.split("soft bounces ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no soft bounce count in:\n{text}"))
        .to_string()
}

/// A mailing restricted by bounce level skips the recipients at that level
/// (and refuses itself when that is everyone); a delivery clears the count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailing_restricted_by_bounce_level_skips_soft_bounced_recipients() {
    let sink = Sink::start(Script::new()).await;
    let d = daemon_with_route(&sink, "", &["jane@example.test", "john@example.test"]);
    submit(&d, &["john@example.test"], "Autumn").await;
    let got = sink.wait_for(1).await;
    // John's mailbox is full: one soft bounce, under the limit of 5.
    send_full_mailbox_dsn(&d, &got[0].mail_from).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while soft_bounces(&d, "john@example.test") != "1" {
        assert!(std::time::Instant::now() < deadline, "{}", d.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A mailing that skips one soft bounce or more: Jane gets it, John not.
    let restricted = |subject: &str, level: &str| {
        newsletter("jane@example.test", subject).replacen(
            "List-Id:",
            &format!("X-Postwarden-Skip-Soft-Bounces: {level}\r\nList-Id:"),
            1,
        )
    };
    let r = submit_raw(
        &d,
        &["jane@example.test", "john@example.test"],
        &restricted("Winter", "1"),
    )
    .await;
    assert!(r.starts_with("250"), "{r}");
    d.wait_for_log("skipped <john@example.test>: 1 soft bounce(s)");
    let got = sink.wait_for(2).await;
    assert_eq!(got[1].rcpt, "jane@example.test");
    let text = String::from_utf8_lossy(&got[1].data);
    assert!(!text.contains("X-Postwarden-Skip-Soft-Bounces"), "{text}");
    // With John alone there is no one left to mail: refused.
    let r = submit_raw(&d, &["john@example.test"], &restricted("Spring", "1")).await;
    assert!(
        r.starts_with("550 5.7.1 policy: recipient.bounce_level"),
        "{r}"
    );
    // A level the mailing does not reach, or nonsense.
    let r = submit_raw(&d, &["john@example.test"], &restricted("Spring", "2")).await;
    assert!(r.starts_with("250"), "{r}");
    let r = submit_raw(&d, &["john@example.test"], &restricted("Spring", "none")).await;
    assert!(r.starts_with("554 5.6.0"), "{r}");
    // That delivery to John forgave his soft bounce.
    d.wait_for_log("<john@example.test>: soft bounces cleared by the delivery");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while soft_bounces(&d, "john@example.test") != "0" {
        assert!(std::time::Instant::now() < deadline, "{}", d.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sink.wait_for(3).await.len(), 3);
}
