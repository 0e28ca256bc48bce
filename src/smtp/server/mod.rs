//! The ESMTP server: one session engine (`session.rs`) serving three
//! listeners that differ only in their [`ListenerKind`].

mod auth;
pub(crate) mod data;
mod limits;
pub(crate) mod session;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use crate::config::Config;
use crate::policy::TenantPolicy;
use crate::store::Store;

pub use auth::AuthThrottle;
pub use limits::ConnectionLimits;

/// What a listener is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// Port 587: plain text, STARTTLS offered, AUTH required before MAIL.
    Submission,
    /// Port 465: implicit TLS, AUTH required.
    Submissions,
    /// Port 25: no AUTH; only the feedback domain's mailboxes.
    Inbound,
}

impl ListenerKind {
    pub fn name(self) -> &'static str {
        match self {
            ListenerKind::Submission => "submission",
            ListenerKind::Submissions => "submissions",
            ListenerKind::Inbound => "inbound",
        }
    }

    pub fn is_submission(self) -> bool {
        !matches!(self, ListenerKind::Inbound)
    }
}

/// The settings a session reads; replaced whole on reload.
pub struct Settings {
    pub config: Arc<Config>,
    pub policies: BTreeMap<String, TenantPolicy>,
}

impl Settings {
    pub fn new(config: Arc<Config>) -> Settings {
        Settings {
            policies: crate::policy::tenant_policies(&config),
            config,
        }
    }

    /// The tenant whose `trusted_networks` contain `ip`.
    pub fn tenant_by_network(&self, ip: IpAddr) -> Option<String> {
        self.config
            .tenants
            .iter()
            .find(|(_, t)| t.trusted_networks.iter().any(|n| n.contains(&ip)))
            .map(|(name, _)| name.clone())
    }
}

/// What every session shares.
pub struct ServerContext {
    settings: RwLock<Arc<Settings>>,
    pub store: Store,
    pub tls: TlsAcceptor,
    pub connections: ConnectionLimits,
    pub auth_throttle: AuthThrottle,
    /// The HMAC key of VERP, tracking and unsubscribe tokens.
    pub secret: Vec<u8>,
    /// Queue ids being delivered or changed by the postmaster right now.
    pub in_flight: crate::queue::admin::InFlight,
    /// Wakes the delivery scheduler when a message was queued.
    pub queued: Arc<tokio::sync::Notify>,
    /// Messages just queued, handed to the scheduler directly (schedule
    /// time, queue id), so that it need not read the spool's schedule index
    /// for each one; the index stays the durable record for retries and
    /// restarts.
    pub ready: std::sync::Mutex<std::collections::VecDeque<(u64, String)>>,
    /// Set when something other than a session changed the schedule index
    /// (a release, a flush, a confirmation mail): the scheduler reads the
    /// index at its next turn instead of waiting for its periodic scan.
    pub scan_requested: std::sync::atomic::AtomicBool,
    /// Wakes the feedback processor when an inbound message was stored.
    pub inbound: Arc<tokio::sync::Notify>,
}

impl ServerContext {
    pub fn new(
        config: Arc<Config>,
        store: Store,
        tls: TlsAcceptor,
        secret: Vec<u8>,
    ) -> Arc<ServerContext> {
        let limits = config.limits.clone();
        Arc::new(ServerContext {
            settings: RwLock::new(Arc::new(Settings::new(config))),
            store,
            tls,
            secret,
            in_flight: crate::queue::admin::InFlight::default(),
            connections: ConnectionLimits::new(
                limits.max_connections,
                limits.max_connections_per_ip,
            ),
            auth_throttle: AuthThrottle::new(limits.max_auth_failures, limits.auth_lockout),
            queued: Arc::new(tokio::sync::Notify::new()),
            ready: std::sync::Mutex::new(std::collections::VecDeque::new()),
            scan_requested: std::sync::atomic::AtomicBool::new(false),
            inbound: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Hands a message that was just queued (durably) to the scheduler.
    pub fn queue_ready(&self, when: u64, id: String) {
        self.ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back((when, id));
        self.queued.notify_one();
    }

    /// Asks the scheduler to read the schedule index now: for messages
    /// queued or rescheduled other than by a session's hand-over.
    pub fn request_scan(&self) {
        self.scan_requested
            .store(true, std::sync::atomic::Ordering::Release);
        self.queued.notify_one();
    }

    pub fn settings(&self) -> Arc<Settings> {
        match self.settings.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the settings; sessions in progress keep the ones they started with.
    pub fn replace_settings(&self, config: Arc<Config>) {
        let new = Arc::new(Settings::new(config));
        match self.settings.write() {
            Ok(mut s) => *s = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }
}

/// Binds `addr` for `kind`; fails if the address is taken.
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Accepts connections until the task is dropped.
pub async fn serve(listener: TcpListener, kind: ListenerKind, ctx: Arc<ServerContext>) {
    let local = listener.local_addr().ok();
    info!(
        "listening for {} on {}",
        kind.name(),
        local.map(|a| a.to_string()).unwrap_or_default()
    );
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: wait a little instead of spinning.
                warn!("accept on {} failed: {e}", kind.name());
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            handle_connection(stream, peer, kind, ctx).await;
        });
    }
}

async fn handle_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    kind: ListenerKind,
    ctx: Arc<ServerContext>,
) {
    let _ = stream.set_nodelay(true);
    let guard = match ctx.connections.admit(peer.ip()) {
        Ok(g) => g,
        Err(why) => {
            use tokio::io::AsyncWriteExt;
            warn!("reject: connect from [{}]: {why}", peer.ip());
            let mut stream = stream;
            let _ = stream
                .write_all(format!("421 4.7.0 {why}, try again later\r\n").as_bytes())
                .await;
            return;
        }
    };
    session::run(stream, peer, kind, ctx).await;
    drop(guard);
}
