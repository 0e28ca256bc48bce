//! `postwarden serve`: opens the spool, starts the listeners and the
//! delivery scheduler, and stops cleanly on SIGINT/SIGTERM.

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use crate::config::Config;
use crate::runtime::Context;
use crate::smtp::server;
use crate::smtp::tls;
use crate::store::{Store, StoreError};
use crate::values::ListenerKind;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot start: {0}")]
    Start(String),
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
}

/// Makes the TLS acceptor: the configured certificate, or a self-signed one.
pub fn tls_acceptor(config: &Config) -> Result<TlsAcceptor, tls::TlsError> {
    match &config.tls {
        Some(t) => tls::load_acceptor(&config.resolve(&t.cert), &config.resolve(&t.key)),
        None => {
            warn!(
                "no [tls] certificate configured: using a self-signed certificate for {}",
                config.server.hostname
            );
            tls::self_signed_acceptor(&config.server.hostname)
        }
    }
}

/// Puts the site's bounce rules (`[feedback] bounce_rules`) before the
/// shipped ones; an error names the key and the rule.
fn install_bounce_rules(config: &Config) -> Result<(), String> {
    let path = config
        .feedback
        .bounce_rules
        .as_ref()
        .map(|p| config.resolve(p));
    crate::feedback::classify::install_site_rules(path.as_deref())
        .map_err(|e| format!("[feedback] bounce_rules: {e}"))
}

/// Runs the daemon until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<(), DaemonError> {
    let config = Arc::new(config);
    install_bounce_rules(&config).map_err(DaemonError::Start)?;
    let spool = config.spool_path();
    let store = Store::open_with(&spool, &config.store)?;
    info!(
        "spool opened at {}; shared state in {}",
        spool.display(),
        store.shared_backend_name()
    );
    let acceptor = tls_acceptor(&config)?;
    let secret = {
        let (store, config) = (store.clone(), config.clone());
        tokio::task::spawn_blocking(move || crate::feedback::processor::secret(&store, &config))
            .await
            .map_err(|e| DaemonError::Start(e.to_string()))??
    };
    {
        let (store, config) = (store.clone(), config.clone());
        tokio::task::spawn_blocking(move || crate::consent::ops::check_quotas(&store, &config))
            .await
            .map_err(|e| DaemonError::Start(e.to_string()))?
            .map_err(DaemonError::Start)?;
    }
    {
        // The sender domains of the first start are warm; later ones are new.
        let (store, config) = (store.clone(), config.clone());
        tokio::task::spawn_blocking(move || {
            crate::shaping::warmup::seed(&store, &config, crate::values::now())
        })
        .await
        .map_err(|e| DaemonError::Start(e.to_string()))?
        .map_err(|e| DaemonError::Start(format!("cannot record the warm sender domains: {e}")))?;
    }
    let ctx = Context::new(config.clone(), store.clone(), acceptor, secret);
    {
        // The path suspensions and throttles of the last run not over yet.
        let c = ctx.clone();
        let now = crate::values::clock::now_millis();
        match tokio::task::spawn_blocking(move || c.shaper.load_holds(&c.store, now)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => info!(
                service = "shaping",
                "{n} path hold(s) of the last run still in force"
            ),
            Ok(Err(e)) => warn!("cannot read the saved path suspensions: {e}"),
            Err(e) => warn!("cannot read the saved path suspensions: {e}"),
        }
    }

    let admin_token = config
        .listen
        .http
        .as_ref()
        .and_then(|_| crate::http::new_admin_token(&spool));
    let mut tasks = Vec::new();
    let mut smtp_listeners = Vec::new();
    let listeners = [
        (ListenerKind::Submission, &config.listen.submission),
        (ListenerKind::Submissions, &config.listen.submissions),
        (ListenerKind::Inbound, &config.listen.inbound),
    ];
    for (kind, addr) in listeners {
        let Some(addr) = addr else { continue };
        let listener = server::bind(addr).await.map_err(|e| DaemonError::Bind {
            what: kind.name(),
            addr: addr.clone(),
            source: e,
        })?;
        smtp_listeners.push(tokio::spawn(server::serve(listener, kind, ctx.clone())));
    }
    if let Some(addr) = &config.listen.http {
        let listener =
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| DaemonError::Bind {
                    what: "http",
                    addr: addr.clone(),
                    source: e,
                })?;
        tasks.push(tokio::spawn(crate::http::serve(
            listener,
            ctx.clone(),
            admin_token,
        )));
    }
    tasks.push(tokio::spawn(crate::queue::delivery::run(ctx.clone())));
    tasks.push(tokio::spawn(crate::feedback::processor::run(ctx.clone())));
    tasks.push(tokio::spawn(crate::webhooks::run(ctx.clone())));
    tasks.push(tokio::spawn(crate::retention::run(ctx.clone())));
    tasks.push(tokio::spawn(crate::queue::domains::keep_checking(
        ctx.clone(),
    )));
    tasks.push(tokio::spawn(flush_tenant_counts(ctx.clone())));
    // The SIGHUP handler is in place before the start is announced: a
    // SIGHUP sent on seeing that line reloads, and never meets the default
    // action (which ends the process).
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    let reloads = tokio::spawn(reload_on_hangup(ctx.clone(), hangups));
    info!("postwarden started (pid {})", std::process::id());

    tasks.push(tokio::spawn(reopen_after_write_error(ctx.clone())));
    wait_for_stop().await;
    reloads.abort();
    info!("stopping: no new connections");
    for l in &smtp_listeners {
        l.abort();
    }
    // Sessions under way may finish their transaction; what was acknowledged
    // is in the spool already, so ending the rest after the grace loses nothing.
    let grace = std::time::Duration::from_secs(config.limits.shutdown_grace);
    let started = std::time::Instant::now();
    let mut announced = false;
    while ctx.connections.active() > 0 && started.elapsed() < grace {
        if !announced {
            info!(
                "stopping: waiting up to {} s for {} session(s)",
                grace.as_secs(),
                ctx.connections.active()
            );
            announced = true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    // What the sessions and deliveries counted last.
    flush_tenant_counts_now(&ctx).await;
    drop(ctx);
    info!("postwarden stopped");
    Ok(())
}

/// Writes the tenants' counts gathered in memory (see
/// `tenant::PendingCounts`) every `tenant::FLUSH_INTERVAL`, off the workers.
async fn flush_tenant_counts(ctx: Arc<Context>) {
    let mut tick = tokio::time::interval(crate::tenant::FLUSH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        flush_tenant_counts_now(&ctx).await;
    }
}

/// Writes the tenants' pending counts now, on a blocking thread.
async fn flush_tenant_counts_now(ctx: &Context) {
    let store = ctx.store.clone();
    let settings = ctx.settings();
    let _ = tokio::task::spawn_blocking(move || {
        crate::tenant::flush(&store, &settings.config);
    })
    .await;
}

/// After a failed spool write (a full disk, an I/O error) RocksDB refuses
/// every further write, and its C API offers no way to resume. Mail is
/// refused with 452 meanwhile (the writes fail); once the file system has room
/// again, postwarden executes itself anew in place (same pid, same
/// arguments): the spool reopens and RocksDB recovers from its log, exactly as
/// after a crash, which loses nothing that was acknowledged.
async fn reopen_after_write_error(ctx: Arc<Context>) {
    const ROOM: u64 = 16 * 1024 * 1024;
    let mut announced = false;
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        if !ctx.store.write_failed() {
            continue;
        }
        let required = ctx.settings().config.limits.required_free_space().max(ROOM);
        match ctx.store.free_space() {
            Ok(free) if free >= required => {
                warn!("spool writes failed earlier and {free} bytes are free now: restarting in place to reopen the spool");
                let exe = std::env::current_exe();
                let err = match exe {
                    Ok(exe) => std::os::unix::process::CommandExt::exec(
                        std::process::Command::new(exe).args(std::env::args_os().skip(1)),
                    ),
                    Err(e) => e,
                };
                // Only reached when exec failed: exit, and let the service
                // manager start us again.
                tracing::error!("cannot restart in place: {err}; exiting");
                std::process::exit(75);
            }
            _ if !announced => {
                warn!("spool writes are failing: mail is refused with 452 until {required} bytes are free on the spool's file system");
                announced = true;
            }
            _ => {}
        }
    }
}

/// SIGHUP: reads the configuration file again; a file that does not pass
/// `config check` (or lowers a quota without a reason) is refused and the
/// running configuration kept, with the problems in the log.
async fn reload_on_hangup(
    ctx: Arc<Context>,
    hangups: std::io::Result<tokio::signal::unix::Signal>,
) {
    let Ok(mut hup) = hangups else {
        warn!("no SIGHUP handler: reloads need a restart");
        return;
    };
    while hup.recv().await.is_some() {
        let old = ctx.settings().config.clone();
        let Some(path) = old.source.clone() else {
            info!("SIGHUP: running on the embedded defaults; nothing to reload");
            continue;
        };
        let store = ctx.store.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let new = Config::load(&path).map_err(|e| {
                e.problems
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            })?;
            crate::consent::ops::check_quotas(&store, &new)?;
            install_bounce_rules(&new)?;
            Ok::<_, String>(new)
        })
        .await;
        match loaded {
            Ok(Ok(new)) => {
                if new.listen.submission != old.listen.submission
                    || new.listen.submissions != old.listen.submissions
                    || new.listen.inbound != old.listen.inbound
                    || new.listen.http != old.listen.http
                    || new.spool_path() != old.spool_path()
                {
                    warn!("SIGHUP: [listen] and spool_dir changes take effect at the next start");
                }
                // Logged once in force: a client that reads the line and
                // sends at once gets the new settings.
                let tenants = new.tenants.len();
                ctx.replace_settings(Arc::new(new));
                ctx.recheck_auth.notify_one();
                info!("SIGHUP: configuration reloaded ({tenants} tenants)");
            }
            Ok(Err(problems)) => {
                warn!("SIGHUP: configuration refused, keeping the running one: {problems}")
            }
            Err(e) => warn!("SIGHUP: reload failed: {e}"),
        }
    }
}

async fn wait_for_stop() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => info!("SIGTERM received"),
                _ = int.recv() => info!("SIGINT received"),
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
