//! Traffic shaping as a postmaster meets it: a Google Workspace domain
//! found by its MX hosts, a provider's "slow down" reply that suspends the
//! path (and only it) without counting against anyone, the postmaster's
//! resume, and a rate that paces a mailing into reserved slots.

use std::net::Ipv4Addr;

use crate::delivery::submit;
use crate::dns::{a, mx, TestDns};
use crate::harness::*;

fn queue_entry(d: &Daemon, id: &str) -> serde_json::Value {
    let out = d.cli(&["queue", "show", id, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("queue show --json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_providers_rate_limit_reply_suspends_its_path_only_and_counts_against_no_one() {
    let mut script = Script::new();
    // Google's documented reply: the IP sends too fast. Then, after the
    // postmaster's resume, the same address takes the mail.
    script.insert(
        "ann@workspace.test".into(),
        vec![
            "421 4.7.28 [127.0.0.1] Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited.".into(),
            "250 2.1.5 Ok".into(),
        ],
    );
    let sink = Sink::start(script).await;
    let local = Ipv4Addr::LOCALHOST;
    let dns = TestDns::start(vec![
        // A Workspace customer: its own name, Google's MX hosts.
        ("workspace.test.", mx(1, "aspmx.l.google.com.")),
        ("workspace.test.", mx(5, "alt1.aspmx.l.google.com.")),
        ("aspmx.l.google.com.", a(local)),
        ("alt1.aspmx.l.google.com.", a(local)),
        ("other.test.", mx(10, "mx.other.test.")),
        ("mx.other.test.", a(local)),
    ])
    .await;
    let mut d = Daemon::new(Options {
        delivery: format!(
            "nameservers = [\"{}\"]\nmx_port = {}\nshaping = \"shaping-site.toml\"\n",
            dns.addr,
            sink.addr.port()
        ),
        ..Options::default()
    });
    // The test sink offers no STARTTLS, which Google's path requires: the
    // site file turns that off, key by key over the shipped file.
    std::fs::write(
        d.dir.path().join("shaping-site.toml"),
        "[providers.google]\ntls = \"opportunistic\"\n",
    )
    .unwrap();
    for r in [
        "ann@workspace.test",
        "bob@workspace.test",
        "carl@other.test",
    ] {
        opt_in(&d.config_path, r);
    }
    d.spawn();
    let first = submit(&d, &["ann@workspace.test"], "Autumn").await;
    d.wait_for_log("rule google-rate-limited activated: suspend");
    // The path is held: bob (same provider by MX) waits, carl goes.
    let second = submit(&d, &["bob@workspace.test", "carl@other.test"], "Autumn").await;
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].rcpt, "carl@other.test");
    let log = d.wait_for_log(&format!("{second}: to=<bob@workspace.test>"));
    let line = log
        .lines()
        .find(|l| l.contains(&format!("{second}: to=<bob@workspace.test>")))
        .unwrap();
    assert!(line.contains("status=waiting"), "{line}");
    assert!(line.contains("suspended by google-rate-limited"), "{line}");
    // Neither counts an attempt; both wait for the suspension's end (1800 s).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for id in [&first, &second] {
        let e = queue_entry(&d, id);
        let waiting = e["recipients"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["address"].as_str().unwrap().ends_with("@workspace.test"))
            .unwrap()
            .clone();
        assert_eq!(waiting["attempts"], 0, "{e}");
        assert_ne!(waiting["status"], "deferred", "{e}");
        assert!(e["next_attempt"].as_u64().unwrap() >= now + 1700, "{e}");
    }
    let e = queue_entry(&d, &first);
    assert!(
        e["recipients"][0]["last_reply"]
            .as_str()
            .unwrap()
            .contains("4.7.28"),
        "{e}"
    );
    // The postmaster sees the hold, and the metrics count it.
    let out = d.cli(&["shaping", "status"]);
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{status}");
    assert!(
        status.contains("google")
            && status.contains("suspended=")
            && status.contains("google-rate-limited"),
        "{status}"
    );
    let token = std::fs::read_to_string(d.spool().join("admin.token")).unwrap();
    let auth = format!("Bearer {}", token.trim());
    let (_, metrics) = http(d.http, "GET", "/metrics", &[("Authorization", &auth)], "").await;
    assert!(
        metrics.contains(
            "postwarden_shaping_activations_total{provider=\"google\",rule=\"google-rate-limited\",action=\"suspend\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("postwarden_shaping_suspended_paths{provider=\"google\"} 1"),
        "{metrics}"
    );
    // A provider that is not in the file is refused by name.
    let out = d.cli(&["shaping", "resume", "nosuchprovider"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no provider"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The postmaster pauses another provider until resumed; a source that
    // does not exist is refused by name.
    let out = d.cli(&[
        "shaping",
        "suspend",
        "microsoft",
        "--reason",
        "asked by its desk",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = d.cli(&["shaping", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let microsoft = status["paths"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["path"] == "microsoft")
        .cloned()
        .unwrap_or_else(|| panic!("{status}"));
    assert_eq!(microsoft["suspended_by"], "postmaster", "{status}");
    // With the limits in force: the shipped file's, Google's TLS the site's.
    assert_eq!(microsoft["limits"]["connections"], 10, "{status}");
    let google = status["paths"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["path"] == "google")
        .cloned()
        .unwrap_or_else(|| panic!("{status}"));
    assert_eq!(google["limits"]["tls"], "opportunistic", "{status}");
    assert_eq!(google["limits"]["messages_per_minute"], 600, "{status}");
    let out = d.cli(&[
        "shaping", "suspend", "google", "--source", "ip2", "--reason", "x",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no egress source \"ip2\""));
    // The postmaster resumes; the waiting mail goes once its turn comes.
    let out = d.cli(&["shaping", "resume", "google"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 path(s)"));
    let out = d.cli(&["queue", "flush", "--all"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = sink.wait_for(3).await;
    let mut rcpts: Vec<&str> = got.iter().map(|r| r.rcpt.as_str()).collect();
    rcpts.sort();
    assert_eq!(
        rcpts,
        vec![
            "ann@workspace.test",
            "bob@workspace.test",
            "carl@other.test"
        ]
    );
    // The rate-limit reply never counted as a bounce of ann's.
    let out = d.cli(&[
        "contacts",
        "show",
        "--tenant",
        "acme",
        "ann@workspace.test",
        "--json",
    ]);
    let contact = String::from_utf8_lossy(&out.stdout);
    assert!(!contact.contains("suppressed"), "{contact}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_providers_rate_paces_a_mailing_without_counting_attempts() {
    let sink = Sink::start(Script::new()).await;
    let mut d = Daemon::new(Options {
        delivery: "shaping = \"shaping-site.toml\"\n".into(),
        routes: format!("\"paced.test\" = \"127.0.0.1:{}\"\n", sink.addr.port()),
        ..Options::default()
    });
    // A provider of the site's own, by its domain (mail goes by a route):
    // two a second, none at once above that, one connection.
    std::fs::write(
        d.dir.path().join("shaping-site.toml"),
        "[providers.paced]\ndomains = [\"paced.test\"]\nmessages_per_minute = 120\nburst = 0\nconnections = 1\n",
    )
    .unwrap();
    let rcpts: Vec<String> = (0..5).map(|i| format!("r{i}@paced.test")).collect();
    for r in &rcpts {
        opt_in(&d.config_path, r);
    }
    d.spawn();
    let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let id = submit(&d, &refs, "Paced").await;
    let got = sink.wait_for(5).await;
    assert_eq!(got.len(), 5);
    let log = d.wait_for_log(&format!("{id}: removed"));
    // The first went at once; the others waited for their slots.
    let waits = log
        .lines()
        .filter(|l| l.contains(&format!("{id}: to=<")) && l.contains("status=waiting"))
        .count();
    assert!(waits >= 4, "{log}");
    assert!(log.contains("messages_per_minute 120"), "{log}");
    let sent = log
        .lines()
        .filter(|l| l.contains(&format!("{id}: to=<")) && l.contains("status=sent"))
        .count();
    assert_eq!(sent, 5, "{log}");
    // Waiting is no deferral: no recipient was retried.
    assert!(!log.contains("status=deferred"), "{log}");
}

/// Ten messages at once to a slow receiver whose provider allows two
/// connections: the receiver never sees a third.
async fn most_connections_at_once(connections: u32) -> usize {
    let mut script = Script::new();
    script.insert("DELAY_MS".into(), vec!["150".into()]);
    let sink = Sink::start(script).await;
    let mut d = Daemon::new(Options {
        delivery: "shaping = \"shaping-site.toml\"\n".into(),
        routes: format!("\"narrow.test\" = \"127.0.0.1:{}\"\n", sink.addr.port()),
        ..Options::default()
    });
    std::fs::write(
        d.dir.path().join("shaping-site.toml"),
        format!("[providers.narrow]\ndomains = [\"narrow.test\"]\nconnections = {connections}\n"),
    )
    .unwrap();
    let rcpts: Vec<String> = (0..10).map(|i| format!("r{i}@narrow.test")).collect();
    for r in &rcpts {
        opt_in(&d.config_path, r);
    }
    d.spawn();
    let mut tasks = Vec::new();
    for r in rcpts {
        let (addr, rcpt) = (d.submission, r.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Raw::login(addr).await;
            c.transaction_to("news@acme.example", &[&rcpt], &newsletter(&rcpt, "Narrow"))
                .await
        }));
    }
    for t in tasks {
        let reply = t.await.unwrap();
        assert!(reply.starts_with("250"), "{reply}");
    }
    sink.wait_for(10).await;
    let most = sink.concurrent.lock().unwrap().1;
    most
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_providers_connection_limit_is_never_exceeded_at_the_receiver() {
    assert!(most_connections_at_once(2).await <= 2);
    // The same load without the limit opens more (so the limit is what held).
    assert!(most_connections_at_once(0).await > 2);
}
