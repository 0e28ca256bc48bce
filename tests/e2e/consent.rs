//! The consent registry over HTTP and the CLI: double opt-in by form,
//! confirmation tokens, the admin API and its tenant isolation, imports and
//! quotas.

use std::time::Duration;

use crate::harness::*;

const ACME_TOKEN: &str = "acme-api-token-3f9a1c77e2b44d0c";
const OTHER_TOKEN: &str = "other-api-token-8b2e6d19a0c54f31";

/// A daemon whose tenant acme delivers example.test to `sink`, with API
/// tokens for acme and a second tenant, other.
fn consent_daemon(sink: &Sink, acme_extra: &str) -> Daemon {
    Daemon::start(Options {
        routes: format!("\"example.test\" = \"127.0.0.1:{}\"\n", sink.addr.port()),
        tenant: format!(
            "api_token_sha256 = [\"{}\"]\nform_min_seconds = 0\n{acme_extra}",
            sha256_hex(ACME_TOKEN)
        ),
        extra: format!(
            "[tenants.other]\nsmtp_password_hash = \"{}\"\nsender_domains = [\"other.example\"]\napi_token_sha256 = [\"{}\"]\n",
            password_hash(),
            sha256_hex(OTHER_TOKEN)
        ),
        ..Options::default()
    })
}

/// Sends the acme newsletter (list news.acme.example) to `rcpt`: the reply
/// to RCPT TO when that refuses (suppression), else the one after DATA
/// (consent for the list is judged with the message's List-Id).
async fn rcpt_reply(d: &Daemon, rcpt: &str) -> String {
    let mut c = Raw::login(d.submission).await;
    c.cmd("MAIL FROM:<news@acme.example>").await;
    let r = c.cmd(&format!("RCPT TO:<{rcpt}>")).await;
    if !r.starts_with("250") {
        return r;
    }
    assert!(c.cmd("DATA").await.starts_with("354"));
    let message = newsletter(rcpt, "Consent").replace("\r\n.", "\r\n..");
    c.send(&format!("{message}.\r\n")).await;
    c.reply().await
}

fn confirm_path(mail: &[u8]) -> String {
    let text = String::from_utf8_lossy(mail);
    let start = text.find("/confirm/").expect("confirmation link");
    text[start..].split_whitespace().next().unwrap().to_string()
}

/// The README's walk-through: subscribe with a form post, the confirmation
/// mail arrives, a GET does not confirm, a POST does, the address can be
/// mailed; one-click unsubscribe stops it at the next RCPT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_opt_in_by_form_then_one_click_unsubscribe() {
    let sink = Sink::start(Script::new()).await;
    let d = consent_daemon(&sink, "");
    let (status, page) = sign_up(d.http, "acme", "news.acme.example", "Jane@Example.TEST").await;
    assert_eq!(status, 202, "{page}");
    assert!(page.contains("check your inbox"), "{page}");
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].rcpt, "jane@example.test");
    let mail = String::from_utf8_lossy(&got[0].data).to_string();
    assert!(mail.contains("From: noreply@acme.example"), "{mail}");
    assert!(mail.contains("Auto-Submitted: auto-generated"), "{mail}");
    let path = confirm_path(&got[0].data);
    // Pending is not consent.
    let r = rcpt_reply(&d, "jane@example.test").await;
    assert!(r.starts_with("550 5.7.1"), "{r}");
    // A link scanner's GET shows the button and changes nothing.
    let (status, page) = http(d.http, "GET", &path, &[], "").await;
    assert_eq!(status, 200);
    assert!(page.contains("<form method=\"post\">"), "{page}");
    assert!(rcpt_reply(&d, "jane@example.test").await.starts_with("550"));
    // A forged token confirms nothing.
    // (The payload's first character changed: the MAC no longer matches.)
    let first = path.as_bytes()["/confirm/".len()];
    let other = if first == b'Z' { 'Y' } else { 'Z' };
    let forged = format!("/confirm/{other}{}", &path["/confirm/".len() + 1..]);
    let (status, _) = http(d.http, "POST", &forged, &[], "").await;
    assert_eq!(status, 404);
    let (status, page) = http(d.http, "POST", &path, &[], "").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("confirmed"), "{page}");
    let r = rcpt_reply(&d, "jane@example.test").await;
    assert!(r.starts_with("250"), "{r}");
    // The evidence shows both steps with the client's IP.
    let (status, body) = http(
        d.http,
        "GET",
        "/api/v1/acme/contacts/jane%40example.test/evidence",
        &[("Authorization", &format!("Bearer {ACME_TOKEN}"))],
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let evidence = &v["report"]["lists"][0]["evidence"];
    assert_eq!(evidence[0]["state"], "double_opt_in_pending");
    assert_eq!(evidence[1]["state"], "double_opt_in_confirmed");
    assert_eq!(evidence[1]["ip"], "127.0.0.1");
    // A second confirmation POST changes nothing and still says yes.
    let (status, _) = http(d.http, "POST", &path, &[], "").await;
    assert_eq!(status, 200);

    // Send to her: the newsletter's own one-click link is the tenant's; use
    // the API's external unsubscribe as the CRM would, then check RCPT.
    let (status, body) = http(
        d.http,
        "POST",
        "/api/v1/acme/unsubscribes",
        &[
            ("Authorization", &format!("Bearer {ACME_TOKEN}")),
            ("Content-Type", "application/json"),
        ],
        r#"{"email":"jane@example.test"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let r = rcpt_reply(&d, "jane@example.test").await;
    assert!(r.contains("suppression list (unsubscribed)"), "{r}");
    // Her old confirmation link cannot undo that.
    let (status, _) = http(d.http, "POST", &path, &[], "").await;
    assert_eq!(status, 410);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmation_mails_are_limited_per_address_and_tokens_expire() {
    let sink = Sink::start(Script::new()).await;
    let d = consent_daemon(
        &sink,
        "confirm_limit_per_address = 2\nconfirm_token_ttl = 1\n",
    );
    let post = |email: &'static str| {
        let addr = d.http;
        async move { sign_up(addr, "acme", "news.acme.example", email).await }
    };
    assert_eq!(post("jo@example.test").await.0, 202);
    assert_eq!(post("jo@example.test").await.0, 202);
    let (status, body) = post("jo@example.test").await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("Too many confirmation mails"), "{body}");
    let (status, body) = post("not an address").await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = http(
        d.http,
        "POST",
        "/subscribe/nosuchtenant/news",
        &[("Content-Type", "application/json")],
        r#"{"email":"a@example.test"}"#,
    )
    .await;
    assert_eq!(status, 404);
    let got = sink.wait_for(2).await;
    let path = confirm_path(&got[0].data);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, page) = http(d.http, "POST", &path, &[], "").await;
    assert_eq!(status, 410, "{page}");
    assert!(rcpt_reply(&d, "jo@example.test").await.starts_with("550"));
}

/// Every API route refuses a request without a token and another tenant's
/// token, and answers the owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_route_keeps_tenants_apart() {
    let sink = Sink::start(Script::new()).await;
    let d = consent_daemon(&sink, "");
    let routes = postwarden::http::api::ROUTES;
    assert!(routes.len() >= 10);
    for (method, path) in routes {
        let path = path
            .replace("{tenant}", "acme")
            .replace("{address}", "jane%40example.test");
        let m = method.to_ascii_uppercase();
        let json = [("Content-Type", "application/json")];
        let (status, body) = http(d.http, &m, &path, &json, "{}").await;
        assert_eq!(status, 401, "{m} {path} without a token: {body}");
        let other = format!("Bearer {OTHER_TOKEN}");
        let (status, body) = http(
            d.http,
            &m,
            &path,
            &[("Authorization", &other), json[0]],
            "{}",
        )
        .await;
        assert_eq!(
            status, 403,
            "{m} {path} with another tenant's token: {body}"
        );
        let own = format!("Bearer {ACME_TOKEN}");
        let (status, body) =
            http(d.http, &m, &path, &[("Authorization", &own), json[0]], "{}").await;
        assert!(
            status != 401 && status != 403 && status != 405,
            "{m} {path} with the owner's token: {status} {body}"
        );
    }
    // A path of a tenant that does not exist looks like one of another tenant.
    let own = format!("Bearer {ACME_TOKEN}");
    let (status, _) = http(
        d.http,
        "GET",
        "/api/v1/nobody/suppression",
        &[("Authorization", &own)],
        "",
    )
    .await;
    assert_eq!(status, 403);
    let (status, doc) = http(d.http, "GET", "/api/v1/openapi.json", &[], "").await;
    assert_eq!(status, 200);
    assert!(doc.contains("\"openapi\""));
}

async fn api(d: &Daemon, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let own = format!("Bearer {ACME_TOKEN}");
    let (status, text) = http(
        d.http,
        method,
        path,
        &[
            ("Authorization", &own),
            ("Content-Type", "application/json"),
        ],
        body,
    )
    .await;
    let v = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, v)
}

/// Contacts, consent changes, suppression with force, erasure and the quota
/// through the API, as a CRM uses them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_records_consent_with_evidence_and_honours_every_no() {
    let sink = Sink::start(Script::new()).await;
    let d = consent_daemon(&sink, "max_contacts = 3\n");
    // Opt-in without evidence is refused.
    let (s, v) = api(&d, "POST", "/api/v1/acme/contacts",
        r#"{"email":"ann@example.test","list":"news.acme.example","state":"double_opt_in_confirmed"}"#).await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"], "missing_evidence");
    let (s, v) = api(&d, "POST", "/api/v1/acme/contacts",
        r#"{"email":"ann@example.test","list":"news.acme.example","state":"double_opt_in_confirmed","ip":"198.51.100.7","detail":"signup form"}"#).await;
    assert_eq!(s, 201, "{v}");
    assert!(rcpt_reply(&d, "ann@example.test").await.starts_with("250"));
    // Invalid input names the problem.
    let (s, v) = api(
        &d,
        "POST",
        "/api/v1/acme/contacts",
        r#"{"email":"nobody","list":"news.acme.example","state":"none"}"#,
    )
    .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"], "invalid_address");
    let (s, v) = api(
        &d,
        "PUT",
        "/api/v1/acme/contacts/ann%40example.test/consent",
        r#"{"list":"news.acme.example","state":"opted_in_maybe"}"#,
    )
    .await;
    assert_eq!(s, 422, "{v}");
    // A consent change appends evidence.
    let (s, v) = api(
        &d,
        "PUT",
        "/api/v1/acme/contacts/ann%40example.test/consent",
        r#"{"list":"news.acme.example","state":"unsubscribed","detail":"phone call"}"#,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["evidence"].as_array().unwrap().len(), 2);
    assert!(rcpt_reply(&d, "ann@example.test").await.starts_with("550"));
    // Paging: three contacts, pages of two.
    for e in ["bob@example.test", "cy@example.test"] {
        let (s, v) = api(&d, "POST", "/api/v1/acme/contacts",
            &format!(r#"{{"email":"{e}","list":"news.acme.example","state":"double_opt_in_confirmed","detail":"shop"}}"#)).await;
        assert_eq!(s, 201, "{v}");
    }
    let (s, v) = api(&d, "GET", "/api/v1/acme/contacts?limit=2", "").await;
    assert_eq!(s, 200);
    assert_eq!(v["contacts"].as_array().unwrap().len(), 2);
    let next = v["next"].as_str().expect("a next cursor").to_string();
    let (_, v) = api(
        &d,
        "GET",
        &format!("/api/v1/acme/contacts?limit=2&after={}", urlenc(&next)),
        "",
    )
    .await;
    assert_eq!(v["contacts"].as_array().unwrap().len(), 1, "{v}");
    assert!(v["next"].is_null());
    // The quota: a fourth contact is refused.
    let (s, v) = api(&d, "POST", "/api/v1/acme/contacts",
        r#"{"email":"dee@example.test","list":"news.acme.example","state":"single_opt_in","detail":"shop"}"#).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"], "quota_exceeded");
    // A complaint suppression needs force to go.
    let (s, _) = api(
        &d,
        "POST",
        "/api/v1/acme/suppression",
        r#"{"email":"bob@example.test","reason":"complaint"}"#,
    )
    .await;
    assert_eq!(s, 201);
    assert!(rcpt_reply(&d, "bob@example.test").await.starts_with("550"));
    let (s, v) = api(
        &d,
        "DELETE",
        "/api/v1/acme/suppression/bob%40example.test?reason=asked",
        "",
    )
    .await;
    assert_eq!(s, 409, "{v}");
    let (s, v) = api(
        &d,
        "DELETE",
        "/api/v1/acme/suppression/bob%40example.test",
        "",
    )
    .await;
    assert_eq!(s, 422, "{v}");
    let (s, v) = api(
        &d,
        "DELETE",
        "/api/v1/acme/suppression/bob%40example.test?reason=wrote%20to%20us&force=true",
        "",
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(rcpt_reply(&d, "bob@example.test").await.starts_with("250"));
    // Erasure: the records go, a hash stays suppressed, and the address
    // cannot come back by API.
    let (s, v) = api(
        &d,
        "POST",
        "/api/v1/acme/contacts/cy%40example.test/erase",
        "",
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["erased"], 1);
    let (s, v) = api(&d, "GET", "/api/v1/acme/contacts/cy%40example.test", "").await;
    assert_eq!(s, 200, "{v}");
    assert!(v["lists"].as_array().unwrap().is_empty());
    assert_eq!(v["suppression"]["reason"], "erasure");
    assert!(
        !v.to_string().contains("shop"),
        "evidence must be gone: {v}"
    );
    assert!(rcpt_reply(&d, "cy@example.test").await.starts_with("550"));
    let (s, v) = api(&d, "POST", "/api/v1/acme/contacts",
        r#"{"email":"cy@example.test","list":"news.acme.example","state":"single_opt_in","detail":"shop"}"#).await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"], "erased");
    // Deleting frees quota.
    let (s, _) = api(&d, "DELETE", "/api/v1/acme/contacts/ann%40example.test", "").await;
    assert_eq!(s, 200);
    let (s, v) = api(&d, "POST", "/api/v1/acme/contacts",
        r#"{"email":"dee@example.test","list":"news.acme.example","state":"single_opt_in","detail":"shop"}"#).await;
    assert_eq!(s, 201, "{v}");
}

fn urlenc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// An import reports every refused row with its line and imports nothing,
/// both with the daemon stopped and (through its admin API) while it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_report_refused_rows_and_are_all_or_nothing() {
    let sink = Sink::start(Script::new()).await;
    let mut d = consent_daemon(&sink, "max_contacts = 4\n");
    let csv = d.dir.path().join("contacts.csv");
    std::fs::write(
        &csv,
        "email,state,opted_in_at,opted_in_ip,confirmed_at\n\
ann@example.test,double_opt_in_confirmed,2025-03-01T10:00:00Z,198.51.100.7,2025-03-01T10:05:00Z\n\
postmaster@example.test,single_opt_in,2025-03-01T10:00:00Z,,\n\
not-an-address,single_opt_in,2025-03-01T10:00:00Z,,\n\
bob@example.test,single_opt_in,,,\n\
Ann@Example.test,single_opt_in,2025-03-02T10:00:00Z,,\n\
cy@example.test,double_opt_in_confirmed,2025-03-01T10:00:00Z,,\n",
    )
    .unwrap();
    let csv_arg = csv.to_str().unwrap();
    let import = |extra: &[&str]| {
        let mut args = vec![
            "contacts",
            "import",
            "--tenant",
            "acme",
            "--list",
            "news.acme.example",
            "--source",
            "shop checkout 2025",
            "--attest",
            "--json",
        ];
        args.extend_from_slice(extra);
        args.push(csv_arg);
        d.cli(&args)
    };
    // While the daemon runs: through the API.
    let out = import(&[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    let refused: Vec<(u64, String)> = report["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let lines: Vec<u64> = refused.iter().map(|r| r.0).collect();
    assert_eq!(lines, vec![3, 4, 5, 6, 7], "{refused:?}");
    assert!(refused[0].1.contains("role account"));
    assert!(refused[1].1.contains("invalid address"));
    assert!(refused[2].1.contains("no consent evidence"));
    assert!(refused[3].1.contains("duplicate of line 2"));
    assert!(refused[4].1.contains("confirmed_at"));
    assert_eq!(report["committed"], false);
    assert!(rcpt_reply(&d, "ann@example.test").await.starts_with("550"));
    // Skipping the refused rows imports the one good row, with its evidence.
    let out = import(&["--skip-refused"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(rcpt_reply(&d, "ann@example.test").await.starts_with("250"));
    let out = d.cli(&[
        "contacts",
        "show",
        "--tenant",
        "acme",
        "--json",
        "ann@example.test",
    ]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("shop checkout 2025"), "{shown}");
    assert!(shown.contains("198.51.100.7"), "{shown}");
    // With the daemon stopped: the spool directly; the quota refuses a file
    // that would pass it.
    assert!(d.stop());
    let big = d.dir.path().join("big.csv");
    let rows: String = (0..5)
        .map(|i| format!("p{i}@example.test,none,,,\n"))
        .collect();
    std::fs::write(&big, rows).unwrap();
    let out = d.cli(&[
        "contacts",
        "import",
        "--tenant",
        "acme",
        "--list",
        "news.acme.example",
        "--source",
        "old list",
        big.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("quota"), "{err}");
    let out = d.cli(&["contacts", "list", "--tenant", "acme", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    // Suppression by CLI, with the daemon stopped, in JSON.
    let out = d.cli(&[
        "suppress",
        "add",
        "--tenant",
        "acme",
        "--reason",
        "complaint",
        "--json",
        "ann@example.test",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["suppression"]["reason"], "complaint");
    let out = d.cli(&[
        "suppress",
        "remove",
        "--tenant",
        "acme",
        "--reason",
        "asked by phone",
        "ann@example.test",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs force"));
    let out = d.cli(&[
        "suppress",
        "remove",
        "--tenant",
        "acme",
        "--reason",
        "asked by phone",
        "--force",
        "--json",
        "ann@example.test",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["was"]["reason"], "complaint");
}

/// A tenant's own page template replaces the built-in one; German when the
/// browser asks for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_page_template_and_german_texts_are_used() {
    let sink = Sink::start(Script::new()).await;
    let pages = tempfile::tempdir().unwrap();
    std::fs::write(
        pages.path().join("confirm.de.html"),
        "<html><body class=\"acme\"><h1>{title}</h1>{body}</body></html>",
    )
    .unwrap();
    let d = consent_daemon(
        &sink,
        &format!("pages_dir = \"{}\"\n", pages.path().display()),
    );
    let (status, _) = sign_up(d.http, "acme", "news.acme.example", "hans@example.test").await;
    assert_eq!(status, 202);
    let got = sink.wait_for(1).await;
    let path = confirm_path(&got[0].data);
    let (status, page) = http(
        d.http,
        "GET",
        &path,
        &[("Accept-Language", "de-DE,de;q=0.9,en;q=0.5")],
        "",
    )
    .await;
    assert_eq!(status, 200);
    assert!(page.starts_with("<html><body class=\"acme\">"), "{page}");
    assert!(page.contains("Anmeldung bestätigen"), "{page}");
    // English has no template of its own: the built-in page.
    let (_, page) = http(d.http, "GET", &path, &[("Accept-Language", "en")], "").await;
    assert!(page.contains("Confirm your subscription"), "{page}");
    assert!(!page.contains("class=\"acme\""), "{page}");
}
