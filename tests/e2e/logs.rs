//! The log as Postfix's log tools read it: `--log-format postfix` lines fed
//! to Debian's pflogsumm (installed by .ci/setup), and one message's story
//! by its queue id.

use std::collections::HashMap;

use crate::harness::*;

/// pflogsumm's count on a line of its summary ("      2   received").
fn count(summary: &str, what: &str) -> u64 {
    summary
        .lines()
        .find_map(|l| {
            let mut words = l.split_whitespace();
            let n = words.next()?.parse().ok()?;
            (words.next()? == what).then_some(n)
        })
        .unwrap_or_else(|| panic!("no {what} line in:\n{summary}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pflogsumm_counts_what_happened_and_a_queue_id_tells_the_story() {
    let mut script = Script::new();
    script.insert(
        "gone@example.test".into(),
        vec!["550 5.1.1 <gone@example.test>: user unknown".into()],
    );
    script.insert(
        "slow@example.test".into(),
        vec!["451 4.3.0 try again later".into()],
    );
    let sink = Sink::start(script).await;
    let mut d = Daemon::new(Options {
        routes: format!("\"example.test\" = \"127.0.0.1:{}\"\n", sink.addr.port()),
        args: vec!["--log-format".into(), "postfix".into()],
        ..Options::default()
    });
    for r in [
        "jane@example.test",
        "gone@example.test",
        "slow@example.test",
    ] {
        opt_in(&d.config_path, r);
    }
    d.spawn();

    // Received and delivered, and bounced, in one message; deferred in another.
    let mut c = Raw::login(d.submission).await;
    let rcpts = ["jane@example.test", "gone@example.test"];
    let reply = c
        .transaction_to(
            "news@acme.example",
            &rcpts,
            &newsletter(rcpts[0], "December"),
        )
        .await;
    let story_id = reply
        .strip_prefix("250 2.0.0 Ok: queued as ")
        .unwrap_or_else(|| panic!("{reply}"))
        .trim()
        .to_string();
    let reply = c
        .transaction_to(
            "news@acme.example",
            &["slow@example.test"],
            &newsletter("slow@example.test", "December"),
        )
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    // Rejected: a message without its unsubscribe header at the end of
    // DATA, and (below) the bounced address at RCPT.
    let broken = newsletter("jane@example.test", "December")
        .replace("List-Unsubscribe: <https://acme.example/u/abc>\r\n", "")
        .replace("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", "");
    let reply = c
        .transaction_to("news@acme.example", &["jane@example.test"], &broken)
        .await;
    assert!(reply.starts_with("550"), "{reply}");

    d.wait_for_log("status=deferred");
    d.wait_for_log(&format!("{story_id}: removed"));
    let r = rcpt_until(&d, "gone@example.test", "550").await;
    assert!(
        r.starts_with("550 5.7.1 policy: recipient.suppressed"),
        "{r}"
    );
    let log = d.wait_for_log("NOQUEUE: reject: RCPT from");
    let file = d.dir.path().join("mail.log");
    std::fs::write(&file, &log).unwrap();

    // Every line is Postfix's: `Mmm dd hh:mm:ss HOST postwarden/SERVICE[PID]: `.
    for line in log.lines() {
        let rest = line.get(16..).unwrap_or_else(|| panic!("{line}"));
        let (_host, rest) = rest.split_once(' ').unwrap_or_else(|| panic!("{line}"));
        assert!(rest.starts_with("postwarden/"), "{line}");
        assert!(rest.contains("]: "), "{line}");
    }

    let out = std::process::Command::new("pflogsumm")
        .args(["--syslog-name=postwarden", "--problems-first"])
        .arg(&file)
        .output()
        .expect("pflogsumm (Debian's package, installed by .ci/setup)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    let counts: HashMap<&str, u64> = ["received", "delivered", "deferred", "bounced", "rejected"]
        .into_iter()
        .map(|w| (w, count(&summary, w)))
        .collect();
    assert_eq!(counts["received"], 2, "{summary}\n{log}");
    assert_eq!(counts["delivered"], 1, "{summary}\n{log}");
    assert_eq!(counts["deferred"], 1, "{summary}\n{log}");
    assert_eq!(counts["bounced"], 1, "{summary}\n{log}");
    assert_eq!(counts["rejected"], 2, "{summary}\n{log}");

    // grep the queue id: the message's whole story, each step under the
    // service Postfix would log it from, in order.
    let story: Vec<&str> = log.lines().filter(|l| l.contains(&story_id)).collect();
    let steps = [
        ("postwarden/smtpd[", ": client=["),
        ("postwarden/cleanup[", ": message-id=<"),
        ("postwarden/qmgr[", ": from=<news@acme.example>, size="),
        ("postwarden/smtp[", ""),
        ("postwarden/smtp[", ""),
        ("postwarden/qmgr[", ": removed"),
    ];
    let mut at = 0;
    for (service, text) in steps {
        let found = story[at..]
            .iter()
            .position(|l| l.contains(service) && l.contains(text))
            .unwrap_or_else(|| {
                panic!("{service}…{text} after line {at} of:\n{}", story.join("\n"))
            });
        at += found + 1;
    }
    let delivered = story
        .iter()
        .find(|l| l.contains("to=<jane@example.test>"))
        .expect("jane's line");
    assert!(delivered.contains("postwarden/smtp["), "{delivered}");
    assert!(delivered.contains("status=sent"), "{delivered}");
    let bounced = story
        .iter()
        .find(|l| l.contains("to=<gone@example.test>"))
        .expect("gone's line");
    assert!(bounced.contains("status=bounced"), "{bounced}");
    d.stop();
}

/// `--log-to syslog`: each event is one datagram on the syslog socket,
/// facility mail with the event's severity, in the form the local socket
/// takes (`<PRI>Mmm dd hh:mm:ss postwarden/SERVICE[PID]: ...`, the host
/// added by the syslog daemon). A line the socket cannot take at once (its
/// queue full) goes to standard error instead of stalling the daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_gets_one_datagram_per_event_under_facility_mail() {
    let sock_dir = tempfile::tempdir().unwrap();
    let path = sock_dir.path().join("log");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    // Read as the syslog daemon would, from the start.
    let datagrams = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = datagrams.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = socket.recv(&mut buf) {
            sink.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    let mut d = syslog_daemon(&path);
    let pid = format!("[{}]: ", d.pid().expect("running"));
    let mut c = Raw::login(d.submission).await;
    let reply = c.cmd("MAIL FROM:<news@acme.example>").await;
    assert!(reply.starts_with("250"), "{reply}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let got = loop {
        let got = datagrams.lock().unwrap().clone();
        if got.iter().any(|g| g.contains("sasl_username=acme")) {
            break got;
        }
        assert!(std::time::Instant::now() < deadline, "{got:?}\n{}", d.log());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    d.stop();
    assert!(got.len() >= 3, "{got:?}");
    for g in &got {
        // <PRI>: facility mail (2) × 8 + severity 6 (info) or 4 (warning).
        assert!(g.starts_with("<22>") || g.starts_with("<20>"), "{g}");
        let line = &g[4..];
        assert_eq!(&line[3..4], " ", "{g}");
        assert!(line[16..].starts_with("postwarden/"), "{g}");
        assert!(line.contains(&pid), "{g}");
        assert!(!g.ends_with('\n'), "{g:?}");
    }
    let auth = got
        .iter()
        .find(|g| g.contains("sasl_username=acme"))
        .expect("the AUTH line");
    assert!(auth.contains("postwarden/smtpd["), "{auth}");
    // Whatever went to stderr instead is the same line without <PRI>.
    for line in d.log().lines() {
        assert!(line[16..].starts_with("postwarden/"), "{line}");
    }
}

/// A syslog daemon that reads nothing (its socket's queue full) does not
/// stall mail: the daemon answers, and the lines it could not send are on
/// standard error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_syslog_daemon_does_not_stall_mail() {
    let sock_dir = tempfile::tempdir().unwrap();
    let path = sock_dir.path().join("log");
    let _socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    let d = syslog_daemon(&path);
    for _ in 0..3 {
        let mut c = Raw::login(d.submission).await;
        let reply = c.cmd("MAIL FROM:<news@acme.example>").await;
        assert!(reply.starts_with("250"), "{reply}");
    }
    let log = d.wait_for_log("sasl_username=acme");
    assert!(log.contains("postwarden/smtpd["), "{log}");
}

/// A daemon that logs to the syslog socket at `path`.
fn syslog_daemon(path: &std::path::Path) -> Daemon {
    let mut d = Daemon::new(Options {
        args: vec![
            "--log-to".into(),
            "syslog".into(),
            "--syslog-socket".into(),
            path.display().to_string(),
        ],
        ..Options::default()
    });
    d.spawn();
    d
}
