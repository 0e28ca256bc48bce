//! The sign-up form in a real browser: Debian's headless Chromium driven
//! over WebDriver (chromedriver), as a person would use it, on its own page
//! and embedded with the snippet on another site.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::*;

const LIST: &str = "news.acme.example";
const WORDING: &str = "Yes, send me the Acme newsletter. I can unsubscribe at any time.";

/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver on a port of its own, stopped when dropped.
struct Driver {
    child: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver leads a process group of its own; the browsers it
        // started go with it, also when a failed assertion skipped `close`.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A WebDriver session: the dozen W3C WebDriver commands this test needs,
/// as JSON over the harness's hyper client. Written here rather than taken
/// from fantoccini because that crate's dependencies change the features of
/// the build tools RocksDB's bindings are made with, which rebuilds RocksDB
/// (twenty minutes per profile) for the tests alone.
struct Browser {
    driver: SocketAddr,
    session: String,
    _chromedriver: Driver,
}

#[derive(Clone)]
struct Element(String);

impl Browser {
    async fn start() -> Browser {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver; `bash .ci/setup` installs it)");
        let profile = tempfile::tempdir().unwrap();
        let args = serde_json::json!([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--lang=en-US",
            format!("--user-data-dir={}", profile.path().display()),
        ]);
        let driver: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let chromedriver = Driver {
            child,
            _profile: profile,
        };
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }}});
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(driver).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (status, _, body) = fetch(
            driver,
            "POST",
            "/session",
            &[("Content-Type", "application/json")],
            &caps.to_string(),
        )
        .await;
        assert_eq!(status, 200, "new WebDriver session: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        Browser {
            driver,
            session: v["value"]["sessionId"].as_str().unwrap().to_string(),
            _chromedriver: chromedriver,
        }
    }

    /// One command: its `value`, or the WebDriver error.
    async fn command(
        &self,
        method: &str,
        path: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        let path = format!("/session/{}{path}", self.session);
        let body = if method == "GET" {
            String::new()
        } else {
            body.to_string()
        };
        let (status, _, text) = fetch(
            self.driver,
            method,
            &path,
            &[("Content-Type", "application/json")],
            &body,
        )
        .await;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        if status == 200 {
            Ok(v["value"].clone())
        } else {
            Err(format!("{path}: {status} {}", v["value"]))
        }
    }

    async fn goto(&self, url: &str) {
        self.command("POST", "/url", serde_json::json!({"url": url}))
            .await
            .unwrap();
    }

    async fn try_find(&self, css: &str) -> Result<Element, String> {
        let v = self
            .command(
                "POST",
                "/element",
                serde_json::json!({"using": "css selector", "value": css}),
            )
            .await?;
        Ok(Element(v[ELEMENT].as_str().unwrap_or_default().to_string()))
    }

    async fn find(&self, css: &str) -> Element {
        self.try_find(css).await.unwrap()
    }

    async fn count(&self, css: &str) -> usize {
        let v = self
            .command(
                "POST",
                "/elements",
                serde_json::json!({"using": "css selector", "value": css}),
            )
            .await
            .unwrap();
        v.as_array().map_or(0, Vec::len)
    }

    async fn on(
        &self,
        e: &Element,
        method: &str,
        what: &str,
        body: serde_json::Value,
    ) -> serde_json::Value {
        self.command(method, &format!("/element/{}/{what}", e.0), body)
            .await
            .unwrap()
    }

    async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        let v = self.on(&e, "GET", "text", serde_json::Value::Null).await;
        v.as_str().unwrap_or_default().to_string()
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.on(&e, "POST", "click", serde_json::json!({})).await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.on(&e, "POST", "value", serde_json::json!({"text": text}))
            .await;
    }

    async fn flag(&self, css: &str, what: &str) -> bool {
        let e = self.find(css).await;
        self.on(&e, "GET", what, serde_json::Value::Null)
            .await
            .as_bool()
            .unwrap_or(false)
    }

    async fn enter_frame(&self, css: &str) {
        let e = self.find(css).await;
        self.command("POST", "/frame", serde_json::json!({"id": {ELEMENT: e.0}}))
            .await
            .unwrap();
    }

    async fn leave_frame(&self) {
        self.command("POST", "/frame/parent", serde_json::json!({}))
            .await
            .unwrap();
    }

    /// The heading once it is not `before` any more (a page load).
    async fn heading_after(&self, before: &str) -> String {
        let mut heading = String::new();
        for _ in 0..50 {
            if let Ok(e) = self.try_find("h1").await {
                heading = self
                    .on(&e, "GET", "text", serde_json::Value::Null)
                    .await
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if heading != before {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        heading
    }

    async fn close(self) {
        let _ = self.command("DELETE", "", serde_json::Value::Null).await;
    }
}

/// A page of another site (`origin` is where it is served) that embeds
/// the form with the snippet `postwarden contacts form` prints.
async fn embedding_site(listener: std::net::TcpListener, snippet: String) {
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let page = format!("<!doctype html><title>Acme</title><h1>Our newsletter</h1>{snippet}");
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let page = page.clone();
            async move { axum::response::Html(page) }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
}

/// A person on the form page: the browser will not send it without the tick
/// (the checkbox is required), the honeypot is not shown, and once ticked
/// the sign-up goes through and the evidence names the wording and the page.
/// Embedded with the snippet on a listed site the form works the same; on
/// a site that is not listed the browser refuses to show it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_up_in_a_browser_on_the_page_and_embedded() {
    let sink = Sink::start(Script::new()).await;
    let site = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let unlisted = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let site_origin = format!("http://127.0.0.1:{}", site.local_addr().unwrap().port());
    let d = Daemon::start(Options {
        routes: format!("\"example.test\" = \"127.0.0.1:{}\"\n", sink.addr.port()),
        tenant: format!(
            "form_min_seconds = 1\nprivacy_url = \"https://acme.example/privacy\"\n\
form_origins = [\"{site_origin}\"]\n"
        ),
        extra: format!("[tenants.acme.consent]\nversion = \"v7\"\nen = \"{WORDING}\"\n"),
        ..Options::default()
    });
    let c = Browser::start().await;
    let form = format!(
        "http://{}/subscribe/acme/{LIST}/form?source=https%3A%2F%2Fwww.acme.example%2Fnews",
        d.http
    );
    c.goto(&form).await;
    assert_eq!(c.text("h1").await, "Subscribe");
    assert_eq!(c.text("label[for=pw-consent]").await, WORDING);
    assert!(
        !c.flag("input[name=website]", "displayed").await,
        "the honeypot is not shown"
    );
    c.type_into("input[name=email]", "eva@example.test").await;
    // Not ticked: the browser keeps the form (the box is required).
    c.click("button[type=submit]").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.text("h1").await, "Subscribe", "nothing was sent");
    assert!(
        !c.flag("input[name=consent]", "selected").await,
        "never pre-ticked"
    );
    c.click("input[name=consent]").await;
    // A person takes a moment (form_min_seconds = 1).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    c.click("button[type=submit]").await;
    assert_eq!(c.heading_after("Subscribe").await, "Almost done");
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].rcpt, "eva@example.test");
    let store = postwarden::store::Store::open_for_read(&d.spool()).unwrap();
    let report = postwarden::consent::ops::show(&store, "acme", "eva@example.test").unwrap();
    let e = &report.lists[0].contact.evidence[0];
    let proof = e.consent.as_ref().unwrap();
    assert_eq!(proof.version, "v7");
    assert_eq!(proof.page.as_deref(), Some("https://www.acme.example/news"));
    assert!(
        e.user_agent.as_deref().unwrap_or("").contains("Chrome"),
        "{e:?}"
    );
    assert_eq!(report.consent_texts[&proof.text_sha256].text, WORDING);
    drop(store);

    // Embedded on the listed site with the snippet.
    let config = postwarden::config::Config::load(&d.config_path).unwrap();
    let snippet = postwarden::http::form::snippet(&config, "acme", LIST)
        .replace("PAGE-URL", "https%3A%2F%2Fwww.acme.example%2Fblog");
    let unlisted_origin = format!("http://127.0.0.1:{}", unlisted.local_addr().unwrap().port());
    embedding_site(site, snippet.clone()).await;
    embedding_site(unlisted, snippet).await;
    c.goto(&format!("{site_origin}/")).await;
    c.enter_frame("iframe").await;
    for _ in 0..50 {
        if c.count("input[name=email]").await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.type_into("input[name=email]", "framed@example.test")
        .await;
    c.click("input[name=consent]").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    c.click("button[type=submit]").await;
    assert_eq!(c.heading_after("Subscribe").await, "Almost done");
    assert_eq!(sink.wait_for(2).await[1].rcpt, "framed@example.test");
    c.leave_frame().await;

    // On a site that is not listed, the frame stays empty.
    c.goto(&format!("{unlisted_origin}/")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.enter_frame("iframe").await;
    assert_eq!(
        c.count("input").await,
        0,
        "frame-ancestors keeps the form out"
    );
    c.close().await;
}
