//! Entry points of the fuzz targets (`fuzz/`, run with `cargo fuzz` on
//! nightly Rust) and of the regression run of their corpora on stable Rust
//! (`tests/e2e/fuzz.rs`). Each takes arbitrary bytes and must return without
//! panicking, hanging or leaving the spool unreadable.
//!
//! The SMTP targets drive the real session code over an in-memory stream,
//! with a real spool (RocksDB in a folder of the caller's choice) and the
//! real policy, so that what is fuzzed is what listens on port 587.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::Config;
use crate::runtime::Context;
use crate::store::Store;
use crate::values::ListenerKind;

/// A submission server without sockets: one tenant, `fuzz`, known by the
/// loopback address (no AUTH needed), with one opted-in recipient.
pub struct Harness {
    runtime: tokio::runtime::Runtime,
    ctx: Arc<Context>,
}

/// The recipient the harness's tenant may mail.
pub const RECIPIENT: &str = "rcpt@example.test";

impl Harness {
    /// Opens (or creates) a spool under `dir`.
    pub fn new(dir: &Path) -> Harness {
        let text = format!(
            r#"
[server]
hostname = "fuzz.example.test"
spool_dir = "{}"
secret = "fuzz-secret-fuzz-secret-fuzz-secret"
[limits]
max_message_size = 1000000
idle_timeout = 5
data_timeout = 5
min_free_space = 0
[feedback]
domain = "bounces.fuzz.example.test"
[tenants.fuzz]
sender_domains = ["fuzz.example"]
trusted_networks = ["127.0.0.0/8"]
policy = "standard"
"#,
            dir.join("spool").display()
        );
        let config = Config::parse(&text, dir).expect("the fuzz configuration is valid");
        let store = Store::open(&config.spool_path()).expect("the fuzz spool opens");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let mut contact = crate::consent::Contact::new();
        contact.state = crate::consent::ConsentState::SingleOptIn;
        let _ = store.commit_blocking(vec![Store::put_contact_op(
            "fuzz",
            "news.fuzz.example",
            RECIPIENT,
            &contact,
        )]);
        let acceptor = runtime
            .block_on(async { crate::daemon::tls_acceptor(&config) })
            .expect("a TLS acceptor");
        let secret = b"fuzz-secret-fuzz-secret-fuzz-secret".to_vec();
        let ctx = Context::new(Arc::new(config), store, acceptor, secret);
        Harness { runtime, ctx }
    }

    /// Feeds `input` to a submission session as the client's bytes and
    /// returns the server's replies.
    pub fn smtp_session(&self, input: &[u8]) -> Vec<u8> {
        let ctx = self.ctx.clone();
        self.runtime.block_on(async move {
            let (client, server) = tokio::io::duplex(64 * 1024);
            let peer: SocketAddr = ([127, 0, 0, 1], 40000).into();
            let session = tokio::spawn(crate::smtp::server::session::run(
                server,
                peer,
                ListenerKind::Submission,
                ctx,
            ));
            let (mut read, mut write) = tokio::io::split(client);
            let input = input.to_vec();
            let writer = tokio::spawn(async move {
                let _ = write.write_all(&input).await;
                let _ = write.shutdown().await;
            });
            let mut out = Vec::new();
            let _ = read.read_to_end(&mut out).await;
            let _ = writer.await;
            let _ = session.await;
            out
        })
    }

    /// A session that logs in, names a sender and the opted-in recipient and
    /// then sends `data` after DATA: the DATA reader (dot-unstuffing, the end
    /// of data, SMTP smuggling variants) and the policy on arbitrary MIME.
    pub fn smtp_data(&self, data: &[u8]) -> Vec<u8> {
        let mut input = format!(
            "EHLO fuzz.client\r\nMAIL FROM:<news@fuzz.example>\r\nRCPT TO:<{RECIPIENT}>\r\nDATA\r\n"
        )
        .into_bytes();
        input.extend_from_slice(data);
        input.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
        self.smtp_session(&input)
    }

    /// The submission policy on `message` as it stands, with the real spool
    /// for consent.
    pub fn policy_check(&self, message: &[u8]) {
        let settings = self.ctx.settings();
        let Some(policy) = settings.policies.get("fuzz") else {
            return;
        };
        let view = crate::policy::MessageView::parse(message);
        let _ = crate::policy::check_message(
            policy,
            &view,
            &[RECIPIENT.to_string()],
            &self.ctx.store,
            Some(&self.ctx.sender_auth),
        );
    }
}

/// The feedback parser (DSN, ARF, prose bounces) on arbitrary bytes.
pub fn feedback_report(raw: &[u8]) {
    let report = crate::feedback::report::parse(raw);
    // Serialising walks every field the processor and the CLI read.
    let _ = serde_json::to_string(&report);
}
