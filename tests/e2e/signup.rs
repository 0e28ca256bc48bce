//! Sign-up forms that prove consent: the form page, the explicit consent
//! field, the wording kept as evidence, the bot checks, CORS, and the API's
//! double opt-in for a CRM's own form.

use std::time::Duration;

use crate::harness::*;

const TOKEN: &str = "acme-api-token-5b1f0e2d7c9a4e36";
const LIST: &str = "news.acme.example";
const EN: &str =
    "Yes, send me the Acme newsletter (one mail a week). I can unsubscribe at any time.";
const DE: &str =
    "Ja, schickt mir den Acme-Newsletter (eine Mail pro Woche). Ich kann mich jederzeit abmelden.";

/// acme with a versioned wording in two languages, a privacy page, one
/// allowed origin and an API token; `more` goes under `[tenants.acme]`.
fn daemon(sink: &Sink, more: &str) -> Daemon {
    Daemon::start(Options {
        routes: format!("\"example.test\" = \"127.0.0.1:{}\"\n", sink.addr.port()),
        tenant: format!(
            "api_token_sha256 = [\"{}\"]\nprivacy_url = \"https://acme.example/privacy\"\n\
form_origins = [\"https://www.acme.example\"]\n{more}",
            sha256_hex(TOKEN)
        ),
        extra: format!(
            "[tenants.acme.consent]\nversion = \"2026-11\"\nen = \"{EN}\"\nde = \"{DE}\"\n"
        ),
        ..Options::default()
    })
}

/// The form page's fields, as a browser would post them (the checkbox and
/// the honeypot left out).
fn hidden_fields(page: &str) -> Vec<(String, String)> {
    let doc = scraper::Html::parse_document(page);
    let sel = scraper::Selector::parse("form input[type=hidden]").unwrap();
    doc.select(&sel)
        .map(|i| {
            let a = |n| i.value().attr(n).unwrap_or("").to_string();
            (a("name"), a("value"))
        })
        .collect()
}

fn encode(pairs: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

async fn post_form(d: &Daemon, path: &str, pairs: &[(String, String)]) -> (u16, String) {
    http(
        d.http,
        "POST",
        path,
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Referer", "https://www.acme.example/newsletter"),
        ],
        &encode(pairs),
    )
    .await
}

async fn metrics(d: &Daemon) -> String {
    let token = std::fs::read_to_string(d.spool().join("admin.token")).unwrap();
    let auth = format!("Bearer {}", token.trim());
    let (status, text) = http(d.http, "GET", "/metrics", &[("Authorization", &auth)], "").await;
    assert_eq!(status, 200, "{text}");
    text
}

async fn evidence(d: &Daemon, address: &str) -> serde_json::Value {
    let (status, body) = http(
        d.http,
        "GET",
        &format!("/api/v1/acme/contacts/{address}/evidence"),
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The page a person sees: accessible fields, the configured German
/// wording on an unticked box, a hidden honeypot; posting it without the
/// tick sends nothing, with the tick sends a mail that names the wording,
/// and the evidence (pending and confirmed) holds version, hash and page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_form_asks_for_consent_and_the_evidence_keeps_what_was_agreed_to() {
    let sink = Sink::start(Script::new()).await;
    let d = daemon(&sink, "form_min_seconds = 0\n");
    let path =
        format!("/subscribe/acme/{LIST}/form?source=https%3A%2F%2Fwww.acme.example%2Fnewsletter");
    let (status, head, page) = fetch(
        d.http,
        "GET",
        &path,
        &[("Accept-Language", "de-DE,de;q=0.9")],
        "",
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let csp = head["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(
        csp.contains("frame-ancestors 'self' https://www.acme.example"),
        "{csp}"
    );
    assert_eq!(head["cache-control"], "no-store");
    {
        let doc = scraper::Html::parse_document(&page);
        let one = |css: &str| {
            let sel = scraper::Selector::parse(css).unwrap();
            doc.select(&sel)
                .next()
                .unwrap_or_else(|| panic!("no {css} in {page}"))
        };
        assert_eq!(one("html").value().attr("lang"), Some("de"));
        let email = one("input[name=email]");
        assert_eq!(email.value().attr("type"), Some("email"));
        assert!(email.value().attr("required").is_some());
        assert!(one("label[for=pw-email]")
            .text()
            .collect::<String>()
            .contains("E-Mail"));
        let boxed = one("input[name=consent]");
        assert_eq!(boxed.value().attr("type"), Some("checkbox"));
        assert!(boxed.value().attr("checked").is_none(), "never pre-ticked");
        assert!(boxed.value().attr("required").is_some());
        assert_eq!(one("label[for=pw-consent]").text().collect::<String>(), DE);
        let trap = one("div[aria-hidden=true] input[name=website]");
        assert_eq!(trap.value().attr("tabindex"), Some("-1"));
        assert_eq!(
            one("a[href='https://acme.example/privacy']")
                .text()
                .collect::<String>(),
            "Datenschutzhinweise"
        );
        assert!(one("a[hreflang=en]")
            .value()
            .attr("href")
            .unwrap()
            .contains("lang=en"));
    }
    let fields = hidden_fields(&page);
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no field {name}"))
    };
    assert_eq!(field("consent_version"), "2026-11");
    assert_eq!(field("source"), "https://www.acme.example/newsletter");
    let form = format!("/subscribe/acme/{LIST}/form");
    let mut post = fields.clone();
    post.push(("email".into(), "ute@example.test".into()));
    post.push(("website".into(), String::new()));

    // The box left unticked: 400, the page says why, nothing is sent.
    let (status, answer) = post_form(&d, &form, &post).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("Häkchen"), "{answer}");
    assert!(metrics(&d).await.contains(
        "postwarden_subscribe_refused_total{tenant=\"acme\",reason=\"consent_missing\"} 1"
    ));
    // A JSON client gets the reason as a code.
    let (status, answer) = http(
        d.http,
        "POST",
        &format!("/subscribe/acme/{LIST}"),
        &[("Content-Type", "application/json")],
        &format!(
            r#"{{"email":"ute@example.test","consent":false,"consent_version":"2026-11","form_token":"{}"}}"#,
            field("form_token")
        ),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer.contains("\"status\":\"consent_missing\""),
        "{answer}"
    );

    // Ticked: the mail goes, and names the wording in the form's language.
    post.push(("consent".into(), "yes".into()));
    let (status, answer) = post_form(&d, &form, &post).await;
    assert_eq!(status, 202, "{answer}");
    let got = sink.wait_for(1).await;
    assert_eq!(got.len(), 1, "one mail: the refused posts sent none");
    let mail = String::from_utf8_lossy(&got[0].data).to_string();
    let mail = mail_parser::MessageParser::default()
        .parse(mail.as_bytes())
        .unwrap()
        .body_text(0)
        .unwrap()
        .to_string();
    assert!(mail.contains(DE), "{mail}");
    assert!(mail.contains("Fassung 2026-11"), "{mail}");

    let v = evidence(&d, "ute%40example.test").await;
    let pending = &v["report"]["lists"][0]["evidence"][0];
    assert_eq!(pending["state"], "double_opt_in_pending");
    let proof = &pending["consent"];
    assert_eq!(proof["version"], "2026-11");
    assert_eq!(proof["lang"], "de");
    assert_eq!(proof["text_sha256"], sha256_hex(DE));
    assert_eq!(proof["explicit"], true);
    assert_eq!(proof["page"], "https://www.acme.example/newsletter");
    assert_eq!(proof["via"], "form");
    assert!(proof["form_served_at"].as_u64().is_some(), "{proof}");
    assert_eq!(v["report"]["consent_texts"][sha256_hex(DE)]["text"], DE);

    // The confirmation stands on the same wording.
    let text = String::from_utf8_lossy(&got[0].data).to_string();
    let start = text.find("/confirm/").unwrap();
    let link = text[start..].split_whitespace().next().unwrap().to_string();
    let (status, _) = http(d.http, "POST", &link, &[], "").await;
    assert_eq!(status, 200);
    let v = evidence(&d, "ute%40example.test").await;
    let confirmed = &v["report"]["lists"][0]["evidence"][1];
    assert_eq!(confirmed["state"], "double_opt_in_confirmed");
    assert_eq!(confirmed["consent"]["text_sha256"], sha256_hex(DE));
    // The CLI prints it.
    let out = d.cli(&["contacts", "show", "--tenant", "acme", "ute@example.test"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("consent: version 2026-11 (de)"), "{shown}");
    assert!(
        shown.contains("page https://www.acme.example/newsletter"),
        "{shown}"
    );
    assert!(shown.contains(DE), "{shown}");
}

/// A bot's posts: no token, a forged or another list's token, a filled
/// honeypot, too soon after the form was served; each refused, counted,
/// recorded, and none sends mail. Past the IP's daily limit, refusals are
/// answered 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_are_refused_before_any_mail() {
    let sink = Sink::start(Script::new()).await;
    let d = daemon(&sink, "form_min_seconds = 1\nconfirm_limit_per_ip = 7\n");
    let json = |body: String| {
        let addr = d.http;
        async move {
            http(
                addr,
                "POST",
                &format!("/subscribe/acme/{LIST}"),
                &[("Content-Type", "application/json")],
                &body,
            )
            .await
        }
    };
    let form = form_json(d.http, "acme", LIST).await;
    let token = form["form_token"].as_str().unwrap().to_string();
    let other = form_json(d.http, "acme", "offers.acme.example").await;
    let body = |token: &str, extra: &str| {
        format!(
            r#"{{"email":"victim@example.test","consent":"yes","consent_version":"2026-11","form_token":"{token}"{extra}}}"#
        )
    };
    let forged = format!("x{}", &token[1..]);
    for (body, reason) in [
        (
            r#"{"email":"victim@example.test","consent":true,"consent_version":"2026-11"}"#
                .to_string(),
            "form_token_missing",
        ),
        (body(&forged, ""), "form_token_invalid"),
        (
            body(other["form_token"].as_str().unwrap(), ""),
            "form_token_invalid",
        ),
        (
            body(&token, r#","website":"http://spam.example""#),
            "honeypot",
        ),
        (body(&token, ""), "too_fast"),
    ] {
        let (status, answer) = json(body).await;
        assert_eq!(status, 400, "{reason}: {answer}");
        assert!(
            answer.contains(&format!("\"status\":\"{reason}\"")),
            "{answer}"
        );
    }
    let m = metrics(&d).await;
    for (reason, n) in [
        ("form_token_missing", 1),
        ("form_token_invalid", 2),
        ("honeypot", 1),
        ("too_fast", 1),
    ] {
        let line = format!(
            "postwarden_subscribe_refused_total{{tenant=\"acme\",reason=\"{reason}\"}} {n}"
        );
        assert!(m.contains(&line), "{line} in\n{m}");
    }
    // The token, once the form has been open a second: the post is taken.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, answer) = json(body(&token, "")).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(sink.wait_for(1).await.len(), 1);
    // Five refusals and one mail used six of the IP's seven: one more
    // refusal is recorded, then 429 and nothing recorded.
    assert_eq!(json(body(&token, r#","website":"x""#)).await.0, 400);
    let (status, answer) = json(body(&token, r#","website":"x""#)).await;
    assert_eq!(status, 429, "{answer}");
    let m = metrics(&d).await;
    assert!(m.contains("reason=\"honeypot\"} 2"), "{m}");
    // Each recorded refusal is an event (for the abuse desk and the webhook).
    let store = postwarden::store::Store::open_for_read(&d.spool()).unwrap();
    let refused: Vec<_> = store
        .recent_events(100)
        .unwrap()
        .into_iter()
        .filter(|e| e["type"] == "subscribe_refused")
        .collect();
    assert_eq!(refused.len(), 6, "{refused:?}");
    assert_eq!(refused[0]["reason"], "form_token_missing");
    assert_eq!(refused[0]["address"], "victim@example.test");
    drop(store);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.received().len(), 1, "no mail but the one taken");
}

/// JavaScript on a listed origin may read the form and post JSON (CORS);
/// another origin's preflight and answers carry no CORS headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_allowed_only_from_the_listed_origins() {
    let sink = Sink::start(Script::new()).await;
    let d = daemon(&sink, "form_min_seconds = 0\n");
    let post_path = format!("/subscribe/acme/{LIST}");
    for (origin, allowed) in [
        ("https://www.acme.example", true),
        ("https://evil.example", false),
        ("https://www.acme.example.evil.example", false),
        ("null", false),
    ] {
        let (status, head, _) = fetch(
            d.http,
            "OPTIONS",
            &post_path,
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "content-type"),
            ],
            "",
        )
        .await;
        assert_eq!(status, 204);
        let acao = head.get("access-control-allow-origin");
        if allowed {
            assert_eq!(acao.unwrap(), origin);
            assert!(head["access-control-allow-headers"]
                .to_str()
                .unwrap()
                .contains("Content-Type"));
        } else {
            assert!(acao.is_none(), "{origin}: {head:?}");
            assert!(head.get("access-control-allow-methods").is_none());
        }
        let (status, head, body) = fetch(
            d.http,
            "GET",
            &format!("{post_path}/form"),
            &[("Origin", origin), ("Accept", "application/json")],
            "",
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            head.get("access-control-allow-origin").is_some(),
            allowed,
            "{origin}"
        );
        assert!(head["vary"].to_str().unwrap().contains("Origin"));
    }
    // The whole JavaScript round: read the form, post JSON from the origin.
    let (_, _, form) = fetch(
        d.http,
        "GET",
        &format!("{post_path}/form?lang=en"),
        &[
            ("Origin", "https://www.acme.example"),
            ("Accept", "application/json"),
        ],
        "",
    )
    .await;
    let form: serde_json::Value = serde_json::from_str(&form).unwrap();
    assert_eq!(form["consent"]["text"], EN);
    assert_eq!(form["privacy_url"], "https://acme.example/privacy");
    let body = serde_json::json!({
        "email": "js@example.test", "consent": true,
        "consent_version": form["consent"]["version"], "lang": "en",
        "form_token": form["form_token"], "source": "https://www.acme.example/blog",
    });
    let (status, head, answer) = fetch(
        d.http,
        "POST",
        &post_path,
        &[
            ("Origin", "https://www.acme.example"),
            ("Content-Type", "application/json"),
        ],
        &body.to_string(),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        head["access-control-allow-origin"],
        "https://www.acme.example"
    );
    assert_eq!(sink.wait_for(1).await.len(), 1);
    let v = evidence(&d, "js%40example.test").await;
    let proof = &v["report"]["lists"][0]["evidence"][0]["consent"];
    assert_eq!(proof["origin"], "https://www.acme.example");
    assert_eq!(proof["page"], "https://www.acme.example/blog");
    assert_eq!(proof["text_sha256"], sha256_hex(EN));
}

/// A CRM's own form through the API: postwarden sends the confirmation mail
/// with the same consent checks; contacts recorded without a wording say
/// "not recorded".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_sends_the_confirmation_for_a_crm_form() {
    let sink = Sink::start(Script::new()).await;
    let d = daemon(&sink, "");
    let auth = format!("Bearer {TOKEN}");
    let api = |body: serde_json::Value| {
        let (addr, auth) = (d.http, auth.clone());
        async move {
            http(
                addr,
                "POST",
                "/api/v1/acme/contacts",
                &[
                    ("Authorization", &auth),
                    ("Content-Type", "application/json"),
                ],
                &body.to_string(),
            )
            .await
        }
    };
    let base = serde_json::json!({
        "email": "crm@example.test", "list": LIST, "state": "double_opt_in_pending",
        "send_confirmation": true, "consent_version": "2026-11", "lang": "en",
        "ip": "198.51.100.23", "page": "https://crm.example/forms/7",
    });
    let with = |k: &str, v: serde_json::Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let (status, body) = api(base.clone()).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("consent_missing"), "{body}");
    let (status, body) = api(with("consent", false.into())).await;
    assert_eq!(status, 422, "consent false: {body}");
    let mut ok = with("consent", true.into());
    ok["consent_version"] = "2025-01".into();
    let (status, body) = api(ok.clone()).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("consent_version_unknown"), "{body}");
    ok["consent_version"] = "2026-11".into();
    let (status, body) = api(ok.clone()).await;
    assert_eq!(status, 202, "{body}");
    assert!(body.contains("\"queue_id\""), "{body}");
    let got = sink.wait_for(1).await;
    let mail = String::from_utf8_lossy(&got[0].data).to_string();
    assert!(
        mail.contains("What you agreed to (version 2026-11)"),
        "{mail}"
    );
    let v = evidence(&d, "crm%40example.test").await;
    let e = &v["report"]["lists"][0]["evidence"][0];
    assert_eq!(e["source"], "api");
    assert_eq!(e["ip"], "198.51.100.23");
    assert_eq!(e["consent"]["via"], "api");
    assert_eq!(e["consent"]["page"], "https://crm.example/forms/7");
    assert_eq!(e["consent"]["text_sha256"], sha256_hex(EN));
    // Confirmed already: no second mail.
    let text = String::from_utf8_lossy(&got[0].data).to_string();
    let start = text.find("/confirm/").unwrap();
    let link = text[start..].split_whitespace().next().unwrap().to_string();
    assert_eq!(http(d.http, "POST", &link, &[], "").await.0, 200);
    let (status, body) = api(ok).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("already_confirmed"), "{body}");

    // A record made without a wording stays valid and says so.
    let (status, body) = api(serde_json::json!({
        "email": "old@example.test", "list": LIST, "state": "double_opt_in_confirmed",
        "ip": "198.51.100.9", "detail": "imported from the old CRM",
    }))
    .await;
    assert_eq!(status, 201, "{body}");
    let out = d.cli(&["contacts", "show", "--tenant", "acme", "old@example.test"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("consent: not recorded"), "{shown}");
    let v = evidence(&d, "old%40example.test").await;
    assert_eq!(
        v["report"]["lists"][0]["evidence"][0]["consent"],
        "not recorded"
    );
}

/// Sign-ups count toward the tenant's `max_contacts` like every other new
/// contact: one at the limit sends no mail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ups_count_toward_max_contacts() {
    let sink = Sink::start(Script::new()).await;
    let d = daemon(&sink, "form_min_seconds = 0\nmax_contacts = 2\n");
    let create = |email: &str| {
        let (addr, body) = (
            d.http,
            serde_json::json!({
                "email": email, "list": LIST, "state": "single_opt_in", "ip": "198.51.100.1",
            })
            .to_string(),
        );
        async move {
            http(
                addr,
                "POST",
                "/api/v1/acme/contacts",
                &[
                    ("Authorization", &format!("Bearer {TOKEN}")),
                    ("Content-Type", "application/json"),
                ],
                &body,
            )
            .await
        }
    };
    assert_eq!(create("first@example.test").await.0, 201);
    assert_eq!(
        sign_up(d.http, "acme", LIST, "second@example.test").await.0,
        202
    );
    let (status, body) = create("third@example.test").await;
    assert_eq!(status, 403, "the sign-up was counted: {body}");
    let (status, page) = sign_up(d.http, "acme", LIST, "fourth@example.test").await;
    assert_eq!(status, 503, "{page}");
    assert_eq!(sink.wait_for(1).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.received().len(), 1, "no mail at the limit");
}

/// The human-check hook against a siteverify server of the test's own: it
/// gets the tenant's secret, the response and the client's IP; its "no"
/// refuses the sign-up, a verifier that does not answer gets "try again".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_siteverify_verifier_decides_the_human_check() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let verifier = listener.local_addr().unwrap();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/siteverify",
        axum::routing::post(move |body: String| {
            let log = log.clone();
            async move {
                let fields: std::collections::HashMap<String, String> =
                    url::form_urlencoded::parse(body.as_bytes())
                        .into_owned()
                        .collect();
                log.lock().unwrap().push(body.clone());
                let ok = fields.get("secret").map(String::as_str) == Some("s3cret")
                    && fields.get("response").map(String::as_str) == Some("human");
                axum::Json(serde_json::json!({"success": ok}))
            }
        }),
    );
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let sink = Sink::start(Script::new()).await;
    let d = daemon(
        &sink,
        &format!(
            "form_min_seconds = 0\nhuman_check_url = \"http://{verifier}/siteverify\"\n\
human_check_secret = \"s3cret\"\nhuman_check_field = \"cf-turnstile-response\"\n"
        ),
    );
    let post = |response: Option<&'static str>| {
        let addr = d.http;
        async move {
            let form = form_json(addr, "acme", LIST).await;
            let mut body = serde_json::json!({
                "email": "hu@example.test", "consent": true, "consent_version": "2026-11",
                "form_token": form["form_token"],
            });
            if let Some(r) = response {
                body["cf-turnstile-response"] = r.into();
            }
            http(
                addr,
                "POST",
                &format!("/subscribe/acme/{LIST}"),
                &[("Content-Type", "application/json")],
                &body.to_string(),
            )
            .await
        }
    };
    for (response, status) in [(None, 400), (Some("robot"), 400), (Some("human"), 202)] {
        let (got, body) = post(response).await;
        assert_eq!(got, status, "{response:?}: {body}");
        if status == 400 {
            assert!(body.contains("human_check_failed"), "{body}");
        }
    }
    assert_eq!(sink.wait_for(1).await.len(), 1);
    let calls = seen.lock().unwrap().clone();
    assert_eq!(calls.len(), 2, "no call without a response: {calls:?}");
    assert!(calls[1].contains("remoteip=127.0.0.1"), "{calls:?}");
    // The verifier gone: "try again", nothing sent.
    server.abort();
    let _ = server.await;
    let (status, body) = post(Some("human")).await;
    assert_eq!(status, 503, "{body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.received().len(), 1);
}
