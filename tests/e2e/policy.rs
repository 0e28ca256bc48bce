//! The policy over SMTP and in `postwarden check`: exact replies.

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_noncompliant_message_gets_one_reply_listing_every_failed_rule() {
    let mut d = Daemon::new(Options::default());
    opt_in(&d.config_path, "jane@example.test");
    d.spawn();
    let mut c = Raw::login(d.submission).await;
    c.cmd("MAIL FROM:<news@acme.example>").await;
    c.cmd("RCPT TO:<jane@example.test>").await;
    assert!(c.cmd("DATA").await.starts_with("354"));
    let msg = newsletter("jane@example.test", "Re: your order")
        .replace("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", "")
        .replace(
            "From: Acme News <news@acme.example>",
            "From: \"service@paypal.com\" <news@acme.example>",
        );
    c.send(&format!("{msg}.\r\n")).await;
    let reply = c.reply().await;
    let lines: Vec<&str> = reply.lines().collect();
    assert_eq!(lines.len(), 3, "{reply}");
    assert!(
        lines[0].starts_with("550-5.7.1 policy: from.display_name_spoof: "),
        "{reply}"
    );
    assert!(
        lines[1].starts_with("550-5.7.1 policy: subject.fake_reply: "),
        "{reply}"
    );
    assert!(
        lines[2].starts_with("550 5.7.1 policy: unsubscribe.one_click_missing: "),
        "{reply}"
    );
    // Nothing was queued; the session goes on.
    assert!(c.cmd("NOOP").await.starts_with("250"));
    let log = d.wait_for_log("reject: END-OF-MESSAGE");
    assert!(
        log.contains("from.display_name_spoof,subject.fake_reply,unsubscribe.one_click_missing"),
        "{log}"
    );
    let out = d.cli(&["queue", "list", "--json"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_and_suppression_are_enforced_at_data_and_rcpt() {
    let mut d = Daemon::new(Options::default());
    opt_in(&d.config_path, "jane@example.test");
    let out = d.cli(&[
        "suppress",
        "add",
        "--tenant",
        "acme",
        "--reason",
        "unsubscribed",
        "gone@example.test",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.spawn();
    let mut c = Raw::login(d.submission).await;
    c.cmd("MAIL FROM:<news@acme.example>").await;
    let r = c.cmd("RCPT TO:<Gone@Example.test>").await;
    assert!(
        r.starts_with("550 5.7.1 policy: recipient.suppressed: <gone@example.test>"),
        "{r}"
    );
    assert!(c
        .cmd("RCPT TO:<stranger@example.test>")
        .await
        .starts_with("250"));
    assert!(c.cmd("DATA").await.starts_with("354"));
    c.send(&format!(
        "{}.\r\n",
        newsletter("stranger@example.test", "Autumn")
    ))
    .await;
    let r = c.reply().await;
    assert!(r.starts_with("550 5.7.1 policy: recipient.no_consent: no consent on list news.acme.example: <stranger@example.test> is none"), "{r}");
    c.cmd("MAIL FROM:<news@acme.example>").await;
    c.cmd("RCPT TO:<jane@example.test>").await;
    c.cmd("DATA").await;
    c.send(&format!(
        "{}.\r\n",
        newsletter("jane@example.test", "Autumn")
    ))
    .await;
    let r = c.reply().await;
    assert!(r.starts_with("250 2.0.0 Ok: queued as"), "{r}");
    // The List-Id as some mail libraries write it (a URL) names the same
    // list: jane's consent is found over SMTP too.
    c.cmd("MAIL FROM:<news@acme.example>").await;
    c.cmd("RCPT TO:<jane@example.test>").await;
    c.cmd("DATA").await;
    c.send(&format!(
        "{}.\r\n",
        newsletter("jane@example.test", "Autumn").replace(
            "List-Id: Acme News <news.acme.example>",
            "List-Id: \"Acme News\" <http://news.acme.example/>"
        )
    ))
    .await;
    let r = c.reply().await;
    assert!(r.starts_with("250 2.0.0 Ok: queued as"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_tenant_is_refused_at_mail_from() {
    let mut d = Daemon::new(Options::default());
    let out = d.cli(&[
        "tenant",
        "suspend",
        "acme",
        "--reason",
        "complaint rate 0.5%",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.spawn();
    let mut c = Raw::login(d.submission).await;
    let r = c.cmd("MAIL FROM:<news@acme.example>").await;
    assert!(r.starts_with("550 5.7.1 policy: tenant.suspended"), "{r}");
}

#[test]
fn postwarden_check_prints_the_verdict_offline() {
    let d = Daemon::new(Options::default());
    let good = d.dir.path().join("good.eml");
    std::fs::write(&good, newsletter("jane@example.test", "Autumn")).unwrap();
    let (status, v) = check_json(&d, &good, &[]);
    assert_eq!(status, Some(0), "{v}");
    assert_eq!(v["verdict"], "accept");
    let bad = d.dir.path().join("bad.eml");
    std::fs::write(
        &bad,
        newsletter("jane@example.test", "Autumn")
            .replace("List-Unsubscribe: <https://acme.example/u/abc>\r\n", ""),
    )
    .unwrap();
    let (status, v) = check_json(&d, &bad, &[]);
    assert_eq!(status, Some(1));
    assert_eq!(v["verdict"], "reject");
    assert_eq!(v["reasons"][0]["code"], "unsubscribe.header_missing");
    assert_eq!(v["reasons"][0]["smtp"], "5.7.1");
    // With recipients, consent is read from the spool.
    let out = d.cli(&[
        "check",
        "--tenant",
        "acme",
        good.to_str().unwrap(),
        "--rcpt",
        "nobody@example.test",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("recipient.no_consent"));
    // A usage error is exit 2.
    let out = d.cli(&["check", "--tenant", "nosuch", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    // The list the message is read as, also from the List-Id forms mail
    // libraries write (a URL, no angle brackets): consent is found.
    opt_in(&d.config_path, "jane@example.test");
    for list_id in [
        "Acme News <news.acme.example>",
        "\"Acme News\" <http://news.acme.example>",
        "news.acme.example",
        "<https://news.acme.example/>",
    ] {
        let path = d.dir.path().join("list.eml");
        std::fs::write(
            &path,
            newsletter("jane@example.test", "Autumn").replace(
                "List-Id: Acme News <news.acme.example>",
                &format!("List-Id: {list_id}"),
            ),
        )
        .unwrap();
        let (status, v) = check_json(&d, &path, &["--rcpt", "jane@example.test"]);
        assert_eq!(v["list"], "news.acme.example", "{list_id}");
        assert_eq!(status, Some(0), "{list_id}: {v}");
        let out = d.cli(&["check", "--tenant", "acme", path.to_str().unwrap()]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("list: news.acme.example (from List-Id)"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// Senders who keep the letter of the honesty and unsubscribe rules and
/// break their spirit: look-alike letters and invisible link text. Each is
/// refused with its code over SMTP and by `postwarden check`, and names in
/// other scripts pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_alike_letters_and_invisible_link_text_are_refused_with_their_codes() {
    let mut d = Daemon::new(Options::default());
    opt_in(&d.config_path, "jane@example.test");
    let from = |name: &str| {
        newsletter("jane@example.test", "Autumn")
            .replace("From: Acme News <", &format!("From: {name} <"))
    };
    let evasions: Vec<(&str, String, &str)> = vec![
        (
            "fullwidth Re:",
            newsletter("jane@example.test", "\u{FF32}\u{FF45}: your order"),
            "subject.fake_reply",
        ),
        (
            "Cyrillic a in a Latin word",
            from("=?utf-8?b?UNCweVBhbCBTdXBwb3J0?="),
            "from.display_name_confusable",
        ),
        (
            "capital I for l",
            from("PaypaI Support"),
            "from.display_name_confusable",
        ),
        (
            "digit 1 for l in the Subject",
            newsletter("jane@example.test", "Your Paypa1 receipt"),
            "subject.confusable",
        ),
        (
            "zero-width link text",
            newsletter("jane@example.test", "Autumn").replace(">Unsubscribe</a>", ">&#8203;</a>"),
            "unsubscribe.body_link_missing",
        ),
    ];
    let honest = [
        from("=?utf-8?q?=C3=86r=C3=B8_B=C3=BCcher?="),
        from("=?utf-8?b?zpXOu867zrfOvc65zrrOrCDOnc6tzrE=?="),
        from("=?utf-8?b?0J3QvtCy0L7RgdGC0Lg=?="),
        from("=?utf-8?b?5p2x5Lqs44OL44Ol44O844K5?="),
    ];
    for (what, message, code) in &evasions {
        let path = d.dir.path().join("evasion.eml");
        std::fs::write(&path, message).unwrap();
        let (status, codes, json) = check_codes(&d, &path);
        assert_eq!(
            (status, codes),
            (Some(1), vec![code.to_string()]),
            "{what}: {json}"
        );
    }
    for message in &honest {
        let path = d.dir.path().join("honest.eml");
        std::fs::write(&path, message).unwrap();
        let out = d.cli(&["check", "--tenant", "acme", path.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    d.spawn();
    let mut c = Raw::login(d.submission).await;
    for (what, message, code) in &evasions {
        c.cmd("MAIL FROM:<news@acme.example>").await;
        c.cmd("RCPT TO:<jane@example.test>").await;
        assert!(c.cmd("DATA").await.starts_with("354"));
        c.send(&format!("{message}.\r\n")).await;
        let reply = c.reply().await;
        assert!(
            reply.starts_with(&format!("550 5.7.1 policy: {code}: ")),
            "{what}: {reply}"
        );
    }
    for message in &honest {
        c.cmd("MAIL FROM:<news@acme.example>").await;
        c.cmd("RCPT TO:<jane@example.test>").await;
        assert!(c.cmd("DATA").await.starts_with("354"));
        c.send(&format!("{message}.\r\n")).await;
        let reply = c.reply().await;
        assert!(reply.starts_with("250 "), "{reply}");
    }
}

/// The `.eml` files of `tests/{dir}`, sorted, with the codes each expects
/// (its `X-Test-Expect` field; none for a compliant newsletter).
fn samples(dir: &str) -> Vec<(String, String, Vec<String>)> {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(dir);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let expect = text
                .lines()
                .find_map(|l| l.strip_prefix("X-Test-Expect: "))
                .map(|codes| codes.split(',').map(|c| c.trim().to_string()).collect())
                .unwrap_or_default();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                text,
                expect,
            )
        })
        .collect();
    out.sort();
    out
}

/// `postwarden check --tenant acme --json PATH [EXTRA...]`: the exit
/// status and the JSON verdict.
fn check_json(
    d: &Daemon,
    path: &std::path::Path,
    extra: &[&str],
) -> (Option<i32>, serde_json::Value) {
    let mut args = vec![
        "check",
        "--tenant",
        "acme",
        "--json",
        path.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = d.cli(&args);
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code(), v)
}

/// The codes `postwarden check --json` gives `path`, and its exit status.
fn check_codes(d: &Daemon, path: &std::path::Path) -> (Option<i32>, Vec<String>, String) {
    let (status, v) = check_json(d, path, &[]);
    let codes = v["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["code"].as_str().map(str::to_string))
        .collect();
    (status, codes, v.to_string())
}

/// Newsletters written in the styles common tools produce (MJML output,
/// table layouts, dark-mode CSS, hidden preheaders, German, French, Spanish
/// and Japanese footers, legacy font tags, quoted-printable and base64) all
/// pass; each way of hiding the unsubscribe link (tests/evasions) is
/// refused with its code, by `postwarden check` and over SMTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compliant_newsletters_pass_and_hidden_unsubscribe_links_are_refused() {
    let mut d = Daemon::new(Options::default());
    opt_in(&d.config_path, "jane@example.test");
    let newsletters = samples("newsletters");
    let evasions = samples("evasions");
    assert!(newsletters.len() >= 30 && evasions.len() >= 25);
    let path = d.dir.path().join("sample.eml");
    for (name, text, _) in &newsletters {
        std::fs::write(&path, text).unwrap();
        let (status, codes, json) = check_codes(&d, &path);
        assert_eq!((status, codes), (Some(0), vec![]), "{name}: {json}");
    }
    for (name, text, expect) in &evasions {
        assert!(!expect.is_empty(), "{name} has no X-Test-Expect");
        std::fs::write(&path, text).unwrap();
        let (status, codes, json) = check_codes(&d, &path);
        assert_eq!((status, &codes), (Some(1), expect), "{name}: {json}");
    }
    d.spawn();
    let mut c = Raw::login(d.submission).await;
    let mut send = async |text: &str| {
        c.cmd("MAIL FROM:<news@acme.example>").await;
        c.cmd("RCPT TO:<jane@example.test>").await;
        assert!(c.cmd("DATA").await.starts_with("354"));
        // Dot-stuffing (RFC 5321 §4.5.2): a body line may start with a dot.
        let stuffed = text.replace("\r\n.", "\r\n..");
        c.send(&format!("{stuffed}\r\n.\r\n")).await;
        c.reply().await
    };
    for (name, text, _) in &newsletters {
        let reply = send(text).await;
        assert!(reply.starts_with("250 "), "{name}: {reply}");
    }
    for (name, text, expect) in &evasions {
        let reply = send(text).await;
        assert!(
            reply.starts_with(&format!("550 5.7.1 policy: {}: ", expect[0])),
            "{name}: {reply}"
        );
    }
}

#[test]
fn config_check_names_key_and_line_of_each_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[server]\nhostname = \"mta.test\"\ncolour = \"blue\"\n[listen]\nsubmission = \"127.0.0.1:99999\"\n[tls]\ncert = \"missing-cert.pem\"\nkey = \"missing-key.pem\"\n[feedback]\ndomain = \"bounces.test\"\n",
    )
    .unwrap();
    let out = cli(&path, &["config", "check"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].contains("line 3: server.colour: unknown key"),
        "{text}"
    );
    assert!(lines[1].contains("line 5: listen.submission: "), "{text}");
    assert!(lines[2].contains("line 7: tls.cert: file "), "{text}");
    assert!(lines[3].contains("line 8: tls.key: file "), "{text}");
    let out = cli(
        &path.with_file_name("nonexistent.toml"),
        &["config", "check"],
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_spool_of_another_schema_version_stops_the_daemon_with_one_line() {
    let d = Daemon::new(Options::default());
    {
        let store = postwarden::store::Store::open(&d.spool()).unwrap();
        store.set_schema_version_for_test("99").unwrap();
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_postwarden"))
        .args(["serve", "--config"])
        .arg(&d.config_path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.starts_with("postwarden: the spool ") && last.contains("schema version 99"),
        "{err}"
    );
}
