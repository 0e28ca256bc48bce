//! Traffic shaping as a postmaster meets it: a Google Workspace domain
//! found by its MX hosts, a provider's "slow down" reply that suspends the
//! path (and only it) without counting against anyone, the postmaster's
//! resume, and a rate that paces a mailing into reserved slots.

use std::net::Ipv4Addr;

use crate::delivery::{submit, submit_raw};
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
        // The zone publishes no DMARC for acme.example (see dns.rs for the rule).
        tenant: "rules = { \"from.not_authenticated\" = \"warn\" }\n".into(),
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
    // A crash and restart keeps both suspensions: the provider's word and
    // the postmaster's, with who set them and until when.
    d.kill();
    d.spawn();
    d.wait_for_log("2 path hold(s) of the last run still in force");
    let out = d.cli(&["shaping", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let held = |name: &str| {
        status["paths"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["path"] == name)
            .map(|p| p["suspended_by"].clone())
            .unwrap_or_else(|| panic!("{status}"))
    };
    assert_eq!(held("google"), "google-rate-limited", "{status}");
    assert_eq!(held("microsoft"), "postmaster", "{status}");
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

/// Egress sources on loopback addresses of their own: each connection
/// leaves from its source's address and says its name in EHLO, a tenant's
/// mail rotates over its pool, a source out of rotation gets nothing, and
/// a pool narrowed by SIGHUP takes effect for the next messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_sources_bind_their_address_say_their_name_and_rotate() {
    let sink = Sink::start(Script::new()).await;
    let rcpts: Vec<String> = (0..16).map(|i| format!("r{i}@example.test")).collect();
    let mut d = Daemon::new(Options {
        routes: format!("\"example.test\" = \"127.0.0.1:{}\"\n", sink.addr.port()),
        extra: "[delivery.sources.mta2]\naddress = \"127.0.0.2\"\nehlo = \"mta2.acme.test\"\nwarmup = false\n\
                [delivery.sources.mta3]\naddress = \"127.0.0.3\"\nehlo = \"mta3.acme.test\"\nwarmup = false\n\
                [delivery.sources.mta4]\naddress = \"127.0.0.4\"\nenabled = false\n"
            .into(),
        ..Options::default()
    });
    for r in rcpts.iter().chain(["late@example.test".to_string()].iter()) {
        opt_in(&d.config_path, r);
    }
    d.spawn();
    for r in &rcpts {
        submit(&d, &[r.as_str()], "Autumn").await;
    }
    let got = sink.wait_for(rcpts.len()).await;
    let mut by_peer = std::collections::BTreeMap::new();
    for r in &got {
        let expected = match r.peer.to_string().as_str() {
            "127.0.0.2" => "mta2.acme.test",
            "127.0.0.3" => "mta3.acme.test",
            other => panic!("a connection from {other}, which is no source in rotation"),
        };
        assert_eq!(r.ehlo, expected, "{} from {}", r.rcpt, r.peer);
        *by_peer.entry(r.peer.to_string()).or_insert(0) += 1;
    }
    assert_eq!(by_peer.len(), 2, "both sources in rotation: {by_peer:?}");
    // The status names the sources, the one out of rotation too, and the
    // paths of each with what they sent.
    let out = d.cli(&["shaping", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = status["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mta2", "mta3", "mta4"], "{status}");
    assert_eq!(status["sources"][2]["enabled"], false, "{status}");
    let sent: u64 = status["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sent_last_minute"].as_u64().unwrap())
        .sum();
    assert_eq!(sent, rcpts.len() as u64, "{status}");
    assert!(
        status["paths"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["path"] == "mta3/default:example.test"),
        "{status}"
    );
    // The tenant's pool narrowed to mta3: what comes next leaves from it.
    let config = std::fs::read_to_string(&d.config_path).unwrap();
    std::fs::write(
        &d.config_path,
        config.replace("[tenants.acme]\n", "[tenants.acme]\nsources = [\"mta3\"]\n"),
    )
    .unwrap();
    d.signal("HUP");
    d.wait_for_log("SIGHUP: configuration reloaded");
    submit(&d, &["late@example.test"], "Autumn").await;
    let got = sink.wait_for(rcpts.len() + 1).await;
    let late = got.iter().find(|r| r.rcpt == "late@example.test").unwrap();
    assert_eq!(late.peer.to_string(), "127.0.0.3");
    assert_eq!(late.ehlo, "mta3.acme.test");
    // A pool that names an unknown source is refused by name and line.
    let config = std::fs::read_to_string(&d.config_path).unwrap();
    std::fs::write(
        &d.config_path,
        config.replace("sources = [\"mta3\"]", "sources = [\"mta9\"]"),
    )
    .unwrap();
    let out = d.cli(&["config", "check"]);
    let err =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("tenants.acme.sources") && err.contains("unknown source \"mta9\""),
        "{err}"
    );
}

/// A new source on warm-up sends a provider its day's cap and no more: the
/// rest waits for the next day, with no attempt and nothing counted against
/// the recipients, and the postmaster sees the day, the count and the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_up_cap_sends_that_many_and_holds_the_rest_for_the_next_day() {
    let sink = Sink::start(Script::new()).await;
    let rcpts: Vec<String> = (0..5).map(|i| format!("w{i}@example.test")).collect();
    let mut d = Daemon::new(Options {
        routes: format!("\"example.test\" = \"127.0.0.1:{}\"\n", sink.addr.port()),
        delivery: "shaping = \"shaping-site.toml\"\n".into(),
        extra: "[delivery.sources.fresh]\naddress = \"127.0.0.2\"\nehlo = \"fresh.acme.test\"\n"
            .into(),
        ..Options::default()
    });
    std::fs::write(
        d.dir.path().join("shaping-site.toml"),
        "[warmup]\nschedule = [3, 10]\n",
    )
    .unwrap();
    for r in &rcpts {
        opt_in(&d.config_path, r);
    }
    d.spawn();
    let mut ids = Vec::new();
    for r in &rcpts {
        ids.push(submit(&d, &[r.as_str()], "Autumn").await);
    }
    sink.wait_for(3).await;
    // Every message has had its turn: three sent, two waiting.
    for id in &ids {
        d.wait_for_log(&format!("{id}: to=<"));
    }
    let got = sink.received();
    assert_eq!(got.len(), 3, "the day's cap is 3");
    assert!(got.iter().all(|r| r.peer.to_string() == "127.0.0.2"));
    let log = d.log();
    assert!(
        log.contains("warm-up of source fresh: day 1 cap of 3 to default reached"),
        "{log}"
    );
    let midnight = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 86_400
        + 1)
        * 86_400;
    let mut waiting = 0;
    for id in &ids {
        // A delivered message has left the queue.
        let out = d.cli(&["queue", "show", id, "--json"]);
        if !out.status.success() {
            continue;
        }
        let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        waiting += 1;
        assert_eq!(e["recipients"][0]["attempts"], 0, "{e}");
        assert!(e["next_attempt"].as_u64().unwrap() >= midnight, "{e}");
        let address = e["recipients"][0]["address"].as_str().unwrap();
        let out = d.cli(&["contacts", "show", "--tenant", "acme", address]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("soft bounces 0"), "{text}");
        assert!(text.contains("not suppressed"), "{text}");
    }
    assert_eq!(waiting, 2);
    let out = d.cli(&["shaping", "status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("warm-up of source fresh\tday 1 of 2 today=default:3/3"),
        "{text}"
    );
    assert!(text.contains("warmup=day 1:3/3"), "{text}");
    let token = std::fs::read_to_string(d.spool().join("admin.token")).unwrap();
    let auth = format!("Bearer {}", token.trim());
    let (_, metrics) = http(d.http, "GET", "/metrics", &[("Authorization", &auth)], "").await;
    assert!(
        metrics.contains("postwarden_warmup_capped_total{provider=\"default\"} 2"),
        "{metrics}"
    );
    // A complaint about a copy counts for the source's day, by the signed
    // source mark in the tracking header; an edited mark counts nothing.
    // Each report's abuse case is written after its counts.
    let copies = sink.received();
    let copy = |i: usize| String::from_utf8_lossy(&copies[i].data).to_string();
    assert!(copy(0).contains(" source=fresh."), "{}", copy(0));
    let complained = |cases: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let out = d.cli(&["abuse", "list", "--json"]);
            let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            if list.as_array().map(Vec::len) == Some(cases) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{list}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let out = d.cli(&["shaping", "status", "--json"]);
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        status["warmups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == "fresh")
            .map(|w| w["complained"].clone())
            .unwrap_or_else(|| panic!("{status}"))
    };
    crate::delivery::send_arf(&d, &copy(1).replace(" source=fresh.", " source=other.")).await;
    assert_eq!(complained(1), 0);
    crate::delivery::send_arf(&d, &copy(0)).await;
    assert_eq!(complained(2), 1);
    // A bounce that comes back as a DSN counts for the day too, for the
    // source (its mark in the returned headers) and the sender domain.
    crate::delivery::send_dsn(&d, &copies[2].mail_from, &copies[2].rcpt, &copy(2)).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = d.cli(&["shaping", "status", "--json"]);
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let bounced = |name: &str| {
            status["warmups"]
                .as_array()
                .and_then(|a| a.iter().find(|w| w["name"] == name))
                .map(|w| w["bounced"].clone())
        };
        if bounced("fresh") == Some(serde_json::json!(1)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{status}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(d
        .log()
        .contains(&format!("to=<{}>, class=Hard", copies[2].rcpt)));
    // The count survives a restart: made due again, nothing more goes today.
    d.kill();
    d.spawn();
    let before = d.log().matches("status=waiting").count();
    let out = d.cli(&["queue", "flush", "--all"]);
    assert!(out.status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while d.log().matches("status=waiting").count() < before + 2 {
        assert!(std::time::Instant::now() < deadline, "{}", d.log());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(sink.received().len(), 3);
}

/// A sender domain added after postwarden first started is new: its mail
/// warms up, while the domains it started with are warm and go unhindered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_sender_domain_warms_up_and_the_first_ones_do_not() {
    let sink = Sink::start(Script::new()).await;
    let fresh: Vec<String> = (0..4).map(|i| format!("f{i}@example.test")).collect();
    let warm: Vec<String> = (0..3).map(|i| format!("a{i}@example.test")).collect();
    let mut d = Daemon::new(Options {
        routes: format!("\"example.test\" = \"127.0.0.1:{}\"\n", sink.addr.port()),
        delivery: "shaping = \"shaping-site.toml\"\n".into(),
        ..Options::default()
    });
    std::fs::write(
        d.dir.path().join("shaping-site.toml"),
        "[warmup]\nschedule = [2, 4]\n",
    )
    .unwrap();
    for r in fresh.iter().chain(&warm) {
        opt_in(&d.config_path, r);
    }
    d.spawn();
    let config = std::fs::read_to_string(&d.config_path).unwrap();
    std::fs::write(
        &d.config_path,
        config.replace(
            "sender_domains = [\"acme.example\"]",
            "sender_domains = [\"acme.example\", \"fresh.example\"]",
        ),
    )
    .unwrap();
    d.signal("HUP");
    d.wait_for_log("SIGHUP: configuration reloaded");
    let mut ids = Vec::new();
    for r in &fresh {
        let message = newsletter(r, "Hello").replace(
            "From: Acme News <news@acme.example>",
            "From: Acme News <news@fresh.example>",
        );
        let reply = submit_raw(&d, &[r.as_str()], &message).await;
        let id = reply
            .strip_prefix("250 2.0.0 Ok: queued as ")
            .unwrap_or_else(|| panic!("not queued: {reply}"))
            .trim()
            .to_string();
        ids.push(id);
    }
    for r in &warm {
        ids.push(submit(&d, &[r.as_str()], "Hello").await);
    }
    sink.wait_for(5).await;
    for id in &ids {
        d.wait_for_log(&format!("{id}: to=<"));
    }
    let got = sink.received();
    let from_fresh = got.iter().filter(|r| r.rcpt.starts_with('f')).count();
    let from_warm = got.iter().filter(|r| r.rcpt.starts_with('a')).count();
    assert_eq!(
        (from_fresh, from_warm),
        (2, 3),
        "{:?}",
        got.iter().map(|r| &r.rcpt).collect::<Vec<_>>()
    );
    assert!(
        d.log().contains(
            "warm-up of sender domain fresh.example of acme: day 1 cap of 2 to default reached"
        ),
        "{}",
        d.log()
    );
    let out = d.cli(&["shaping", "status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let w = &status["warmups"][0];
    assert_eq!(w["kind"], "domain", "{status}");
    assert_eq!(w["name"], "acme/fresh.example", "{status}");
    assert_eq!(w["today"]["default"], serde_json::json!([2, 2]), "{status}");
    assert_eq!(status["warmups"].as_array().unwrap().len(), 1, "{status}");
}
