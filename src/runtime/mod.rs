//! The runtime context: what every part of a running node shares (the store,
//! the settings, the throttles, the hand-over to the delivery scheduler and
//! the feedback processor). It sits below the protocol edges and delivery
//! (docs/architecture.md), so that delivery and webhooks need nothing of the
//! SMTP server.

mod auth_throttle;
mod connections;
mod in_flight;
pub mod lanes;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use tokio_rustls::TlsAcceptor;

use crate::config::Config;
use crate::policy::TenantPolicy;
use crate::store::Store;

pub use auth_throttle::{AuthThrottle, VerifiedCache};
pub use connections::{ConnectionGuard, ConnectionLimits};
pub use in_flight::InFlight;

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
pub struct Context {
    settings: RwLock<Arc<Settings>>,
    pub store: Store,
    pub tls: TlsAcceptor,
    pub connections: ConnectionLimits,
    pub auth_throttle: AuthThrottle,
    /// The HMAC key of VERP, tracking and unsubscribe tokens.
    pub secret: Vec<u8>,
    /// Queue ids being delivered or changed by the postmaster right now.
    pub in_flight: InFlight,
    /// How many messages each destination has in delivery, and the ones
    /// parked for a place (claimed in `in_flight` meanwhile).
    pub lanes: std::sync::Mutex<lanes::Lanes>,
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
    /// The egress paths' limits and holds, for the scheduler.
    pub shaper: crate::shaping::Shaper,
    /// What the last DNS look-up found of each sender domain's
    /// authentication, for the rule from.not_authenticated.
    pub sender_auth: crate::policy::SenderAuth,
    /// Wakes the sender-authentication re-check (SIGHUP).
    pub recheck_auth: tokio::sync::Notify,
}

impl Context {
    pub fn new(
        config: Arc<Config>,
        store: Store,
        tls: TlsAcceptor,
        secret: Vec<u8>,
    ) -> Arc<Context> {
        let limits = config.limits.clone();
        Arc::new(Context {
            settings: RwLock::new(Arc::new(Settings::new(config))),
            store,
            tls,
            secret,
            in_flight: InFlight::default(),
            lanes: std::sync::Mutex::new(lanes::Lanes::default()),
            connections: ConnectionLimits::new(
                limits.max_connections,
                limits.max_connections_per_ip,
            ),
            auth_throttle: AuthThrottle::new(limits.max_auth_failures, limits.auth_lockout),
            queued: Arc::new(tokio::sync::Notify::new()),
            ready: std::sync::Mutex::new(std::collections::VecDeque::new()),
            scan_requested: std::sync::atomic::AtomicBool::new(false),
            inbound: Arc::new(tokio::sync::Notify::new()),
            shaper: crate::shaping::Shaper::default(),
            sender_auth: crate::policy::SenderAuth::default(),
            recheck_auth: tokio::sync::Notify::new(),
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

    /// Writes the path holds (suspensions, throttles) to the spool, after one began
    /// or ended, so that a restart keeps them.
    pub async fn save_shaping_holds(self: &Arc<Self>) {
        let ctx = self.clone();
        let now = crate::values::clock::now_millis();
        let saved =
            tokio::task::spawn_blocking(move || ctx.shaper.save_holds(&ctx.store, now)).await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("cannot save the path suspensions: {e}"),
            Err(e) => tracing::warn!("cannot save the path suspensions: {e}"),
        }
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
