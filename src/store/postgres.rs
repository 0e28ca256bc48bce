//! The shared state on PostgreSQL, for a fleet of postwarden nodes.
//!
//! One table, `postwarden_kv (cf, key, value)`, holds the same records under
//! the same keys as the spool's column families (migrations in
//! `migrations/postgres/`, applied at start under an advisory lock, so nodes
//! starting together apply each once).
//!
//! The rest of postwarden calls the store synchronously (RocksDB reads are
//! synchronous), from tokio workers and plain threads alike. So this backend
//! keeps its own small tokio runtime with the connection pool, and each call
//! is a future spawned there whose result the caller waits for, with a
//! deadline: a PostgreSQL that does not answer becomes an error (a `451` at
//! RCPT), never a hang and never a guess.
//!
//! Changes to contacts and suppression are announced with NOTIFY in the
//! transaction that makes them (PostgreSQL delivers it at commit), and a
//! LISTEN connection on every node removes those keys from its cache.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::config::SslMode;
use tokio_postgres::{AsyncMessage, Client, Connection, NoTls, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;
use tracing::{info, warn};

use super::cache::KeyCache;
use super::shared::{Change, HeldLock, SharedBackend};
use super::{Cf, Op, Record, StoreError};
use crate::config::StoreSettings;
use crate::token::unhex;

/// The migrations, in order; the schema version is how many have run.
const MIGRATIONS: &[&str] = &[include_str!(
    "../../migrations/postgres/0001_shared_state.sql"
)];

/// The NOTIFY channel of cache invalidations.
const CHANNEL: &str = "postwarden_kv";

/// A NOTIFY payload must stay under 8000 bytes; a change to more keys
/// than fit tells the other nodes to empty their caches instead.
const MAX_PAYLOAD: usize = 7000;

/// Advisory lock classes (the first key of the two-key form).
const LOCK_MIGRATE: i32 = 1;
const LOCK_UPDATE: i32 = 2;
const LOCK_NAMED: i32 = 3;

pub struct PgShared {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    pool: Pool,
    timeout: Duration,
}

impl Drop for PgShared {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which tokio forbids inside another
        // runtime (the daemon's); shutting it down in the background does not.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// The error with its causes (tokio-postgres says only "db error" at the
/// top; the server's message is its source).
fn pg_error(e: impl std::error::Error) -> StoreError {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    StoreError::Shared(text)
}

/// Runs `fut` on `handle` and waits for it, at most `timeout`.
fn block_on<T: Send + 'static>(
    handle: &tokio::runtime::Handle,
    timeout: Duration,
    fut: impl Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, StoreError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    handle.spawn(async move {
        let result = match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Shared(format!(
                "no answer within {} s",
                timeout.as_secs()
            ))),
        };
        let _ = tx.send(result);
    });
    let wait = || {
        rx.recv()
            .map_err(|_| StoreError::Shared("the PostgreSQL runtime has stopped".into()))?
    };
    // On a worker of the daemon's runtime (an RCPT's consent look-up that
    // missed the cache, a tenant's record at MAIL FROM), the wait of a round
    // trip must not hold the worker: block_in_place hands its other tasks to
    // another thread meanwhile. A current-thread runtime cannot do that, and
    // off a runtime there is nothing to hand over.
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    }
}

/// TLS to PostgreSQL, when the url asks for it with `sslmode=require`. Unlike
/// libpq's `require`, which encrypts without checking whom it talks to, the
/// server's certificate is verified (and its name against the url's host):
/// against `[store] ca` when set, else the public roots.
fn tls_connector(
    settings: &StoreSettings,
    config: &tokio_postgres::Config,
) -> Result<Option<MakeRustlsConnect>, StoreError> {
    if config.get_ssl_mode() != SslMode::Require {
        return Ok(None);
    }
    let mut roots = rustls::RootCertStore::empty();
    match &settings.ca {
        Some(path) => {
            let bad = |e: &dyn std::fmt::Display| {
                StoreError::Shared(format!("[store] ca {}: {e}", path.display()))
            };
            let pem = std::fs::read(path).map_err(|e| bad(&e))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            }
            if roots.is_empty() {
                return Err(bad(&"no certificate in the file"));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(pg_error)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Some(MakeRustlsConnect::new(tls)))
}

/// A pooled connection that goes back to the pool only when `clean` (no
/// transaction or lock left open); otherwise it is closed, which makes the
/// server roll back and release whatever it held. A deadline that drops a
/// call half-way thus never hands a connection in mid-transaction to the next.
struct Conn {
    object: Option<Object>,
    clean: bool,
}

impl Conn {
    async fn get(pool: &Pool) -> Result<Conn, StoreError> {
        Ok(Conn {
            object: Some(pool.get().await.map_err(pg_error)?),
            clean: false,
        })
    }

    fn client(&self) -> Result<&Object, StoreError> {
        self.object
            .as_ref()
            .ok_or_else(|| StoreError::Shared("connection already closed".into()))
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if !self.clean {
            if let Some(object) = self.object.take() {
                drop(Object::take(object));
            }
        }
    }
}

/// The smallest key greater than every key that starts with `prefix`, if any.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// A 32-bit hash of a record's name, for its advisory lock.
fn lock_key(cf: Cf, key: &[u8]) -> i32 {
    // FNV-1a: stable across processes and versions, which every node of a
    // fleet needs (std's hasher is randomly keyed per process).
    let mut h: u32 = 0x811c_9dc5;
    for b in cf.name().bytes().chain(key.iter().copied()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h as i32
}

/// The NOTIFY payload for `ops`: one "cf TAB hex-key" line per cached
/// record changed, "*" when they do not fit, None when none is cached.
fn payload(ops: &[Op]) -> Option<String> {
    let mut out = String::new();
    for op in ops {
        let (Op::Put(cf, k, _) | Op::Delete(cf, k)) = op;
        if !KeyCache::holds(*cf) {
            continue;
        }
        out.push_str(cf.name());
        out.push('\t');
        out.push_str(&crate::token::hex(k));
        out.push('\n');
        if out.len() > MAX_PAYLOAD {
            return Some("*".into());
        }
    }
    (!out.is_empty()).then_some(out)
}

fn cf_by_name(name: &str) -> Option<Cf> {
    Cf::ALL.into_iter().find(|c| c.name() == name)
}

/// Writes `ops` inside the open transaction of `client`: within one batch
/// only the last operation on a key counts, so puts and deletes are each
/// one statement over arrays.
async fn apply(client: &Object, ops: &[Op]) -> Result<(), StoreError> {
    let mut last: std::collections::HashMap<(Cf, &[u8]), &Op> = Default::default();
    for op in ops {
        let (Op::Put(cf, k, _) | Op::Delete(cf, k)) = op;
        last.insert((*cf, k.as_slice()), op);
    }
    let (mut put_cf, mut put_key, mut put_value) = (Vec::new(), Vec::new(), Vec::new());
    let (mut del_cf, mut del_key) = (Vec::new(), Vec::new());
    for op in last.into_values() {
        match op {
            Op::Put(cf, k, v) => {
                put_cf.push(cf.name());
                put_key.push(k.as_slice());
                put_value.push(v.as_slice());
            }
            Op::Delete(cf, k) => {
                del_cf.push(cf.name());
                del_key.push(k.as_slice());
            }
        }
    }
    if !put_cf.is_empty() {
        let st = client
            .prepare_cached(
                "INSERT INTO postwarden_kv (cf, key, value) \
                 SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[]) \
                 ON CONFLICT (cf, key) DO UPDATE SET value = EXCLUDED.value",
            )
            .await
            .map_err(pg_error)?;
        client
            .execute(&st, &[&put_cf, &put_key, &put_value])
            .await
            .map_err(pg_error)?;
    }
    if !del_cf.is_empty() {
        let st = client
            .prepare_cached(
                "DELETE FROM postwarden_kv WHERE (cf, key) IN \
                 (SELECT * FROM unnest($1::text[], $2::bytea[]))",
            )
            .await
            .map_err(pg_error)?;
        client
            .execute(&st, &[&del_cf, &del_key])
            .await
            .map_err(pg_error)?;
    }
    if let Some(p) = payload(ops) {
        client
            .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &p])
            .await
            .map_err(pg_error)?;
    }
    Ok(())
}

impl PgShared {
    /// Connects, applies the migrations and, with a cache, starts the
    /// LISTEN connection that keeps it true.
    pub fn connect(
        settings: &StoreSettings,
        cache: Option<Arc<KeyCache>>,
    ) -> Result<PgShared, StoreError> {
        let url = settings
            .url
            .as_deref()
            .ok_or_else(|| StoreError::Shared("[store] url is not set".into()))?;
        let pg_config: tokio_postgres::Config = url.parse().map_err(pg_error)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("postgres")
            .enable_all()
            .build()
            .map_err(pg_error)?;
        let timeout = Duration::from_secs(settings.timeout.max(1));
        let tls = tls_connector(settings, &pg_config)?;
        let manager_config = || ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &tls {
            Some(tls) => Manager::from_config(pg_config.clone(), tls.clone(), manager_config()),
            None => Manager::from_config(pg_config.clone(), NoTls, manager_config()),
        };
        let pool = {
            // deadpool's timeouts need the runtime they run on.
            let _enter = runtime.enter();
            Pool::builder(manager)
                .max_size(settings.pool_size.max(1))
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(timeout))
                .create_timeout(Some(timeout))
                .build()
                .map_err(pg_error)?
        };
        let handle = runtime.handle().clone();
        let backend = PgShared {
            runtime: Some(runtime),
            handle,
            pool,
            timeout,
        };
        backend.migrate()?;
        if let Some(cache) = cache {
            cache.set_enabled(false);
            backend.handle.spawn(listen(pg_config, tls, cache));
        }
        Ok(backend)
    }

    fn block<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        block_on(&self.handle, self.timeout, fut)
    }

    /// Applies the migrations this database has not had yet.
    fn migrate(&self) -> Result<(), StoreError> {
        let pool = self.pool.clone();
        self.block(async move {
            let mut conn = Conn::get(&pool).await?;
            let c = conn.client()?;
            c.execute("SELECT pg_advisory_lock($1, 0)", &[&LOCK_MIGRATE])
                .await
                .map_err(pg_error)?;
            c.batch_execute(
                "CREATE TABLE IF NOT EXISTS postwarden_schema (version integer NOT NULL)",
            )
            .await
            .map_err(pg_error)?;
            let row = c
                .query_one(
                    "SELECT coalesce(max(version), 0) FROM postwarden_schema",
                    &[],
                )
                .await
                .map_err(pg_error)?;
            let have: i32 = row.get(0);
            let known = MIGRATIONS.len() as i32;
            if have > known {
                return Err(StoreError::Shared(format!(
                    "the database has schema version {have}, this postwarden knows {known}: \
                     upgrade postwarden on this node"
                )));
            }
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(have as usize) {
                let version = i as i32 + 1;
                c.batch_execute("BEGIN").await.map_err(pg_error)?;
                c.batch_execute(sql).await.map_err(pg_error)?;
                c.execute(
                    "INSERT INTO postwarden_schema (version) VALUES ($1)",
                    &[&version],
                )
                .await
                .map_err(pg_error)?;
                c.batch_execute("COMMIT").await.map_err(pg_error)?;
                info!("postgres: applied migration {version}");
            }
            c.execute("SELECT pg_advisory_unlock($1, 0)", &[&LOCK_MIGRATE])
                .await
                .map_err(pg_error)?;
            conn.clean = true;
            Ok(())
        })
    }
}

/// Keeps a LISTEN connection open and applies each announced change to the
/// cache. The cache is on only while the connection listens: when it drops,
/// changes could be missed, so the cache is switched off (and emptied) until
/// the connection is back.
async fn listen(
    config: tokio_postgres::Config,
    tls: Option<MakeRustlsConnect>,
    cache: Arc<KeyCache>,
) {
    let mut logged_down = false;
    loop {
        let mut listened = false;
        let e = listen_once(&config, tls.as_ref(), &cache, &mut listened).await;
        cache.set_enabled(false);
        if listened || !logged_down {
            warn!("postgres: invalidation feed down, consent cache off: {e}");
            logged_down = true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One LISTEN connection, until it fails (the error says why); `listened`
/// tells whether it got as far as listening.
async fn listen_once(
    config: &tokio_postgres::Config,
    tls: Option<&MakeRustlsConnect>,
    cache: &Arc<KeyCache>,
    listened: &mut bool,
) -> StoreError {
    let result = match tls {
        Some(tls) => match config.connect(tls.clone()).await {
            Ok((client, connection)) => {
                listen_until_closed(client, connection, cache, listened).await
            }
            Err(e) => Err(pg_error(e)),
        },
        None => match config.connect(NoTls).await {
            Ok((client, connection)) => {
                listen_until_closed(client, connection, cache, listened).await
            }
            Err(e) => Err(pg_error(e)),
        },
    };
    match result {
        Ok(()) => StoreError::Shared("LISTEN connection closed".into()),
        Err(e) => e,
    }
}

async fn listen_until_closed<S>(
    client: Client,
    mut connection: Connection<Socket, S>,
    cache: &Arc<KeyCache>,
    listened: &mut bool,
) -> Result<(), StoreError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let driver = tokio::spawn(async move {
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_string()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(pg_error)?;
    // Listening: from here on no change goes unannounced.
    *listened = true;
    cache.set_enabled(true);
    info!("postgres: invalidation feed listening, consent cache on");
    while let Some(payload) = rx.recv().await {
        if payload == "*" {
            cache.clear();
            continue;
        }
        for line in payload.lines() {
            let mut parts = line.splitn(2, '\t');
            match (
                parts.next().and_then(cf_by_name),
                parts.next().and_then(unhex),
            ) {
                (Some(cf), Some(key)) => cache.invalidate(cf, &key),
                _ => cache.clear(),
            }
        }
    }
    driver.abort();
    Ok(())
}

impl SharedBackend for PgShared {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn is_spool(&self) -> bool {
        false
    }

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let pool = self.pool.clone();
        let key = key.to_vec();
        self.block(async move {
            let mut conn = Conn::get(&pool).await?;
            let c = conn.client()?;
            let st = c
                .prepare_cached("SELECT value FROM postwarden_kv WHERE cf = $1 AND key = $2")
                .await
                .map_err(pg_error)?;
            let row = c
                .query_opt(&st, &[&cf.name(), &key])
                .await
                .map_err(pg_error)?;
            conn.clean = true;
            Ok(row.map(|r| r.get::<_, Vec<u8>>(0)))
        })
    }

    fn scan(
        &self,
        cf: Cf,
        start: &[u8],
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let pool = self.pool.clone();
        let from = if start < prefix { prefix } else { start }.to_vec();
        let end = prefix_end(prefix);
        let prefix = prefix.to_vec();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.block(async move {
            let mut conn = Conn::get(&pool).await?;
            let c = conn.client()?;
            let rows = match &end {
                Some(end) => {
                    let st = c
                        .prepare_cached(
                            "SELECT key, value FROM postwarden_kv WHERE cf = $1 \
                             AND key >= $2 AND key < $3 ORDER BY key LIMIT $4",
                        )
                        .await
                        .map_err(pg_error)?;
                    c.query(&st, &[&cf.name(), &from, end, &limit]).await
                }
                None => {
                    let st = c
                        .prepare_cached(
                            "SELECT key, value FROM postwarden_kv WHERE cf = $1 \
                             AND key >= $2 ORDER BY key LIMIT $3",
                        )
                        .await
                        .map_err(pg_error)?;
                    c.query(&st, &[&cf.name(), &from, &limit]).await
                }
            }
            .map_err(pg_error)?;
            conn.clean = true;
            Ok(rows
                .into_iter()
                .map(|r| (r.get::<_, Vec<u8>>(0), r.get::<_, Vec<u8>>(1)))
                .filter(|(k, _)| k.starts_with(&prefix))
                .collect())
        })
    }

    fn count(&self, cf: Cf, prefix: &[u8]) -> Result<u64, StoreError> {
        let pool = self.pool.clone();
        let from = prefix.to_vec();
        let end = prefix_end(prefix);
        self.block(async move {
            let mut conn = Conn::get(&pool).await?;
            let c = conn.client()?;
            let row = match &end {
                Some(end) => {
                    c.query_one(
                        "SELECT count(*) FROM postwarden_kv WHERE cf = $1 AND key >= $2 AND key < $3",
                        &[&cf.name(), &from, end],
                    )
                    .await
                }
                None => {
                    c.query_one(
                        "SELECT count(*) FROM postwarden_kv WHERE cf = $1 AND key >= $2",
                        &[&cf.name(), &from],
                    )
                    .await
                }
            }
            .map_err(pg_error)?;
            conn.clean = true;
            Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
        })
    }

    fn delete_range(
        &self,
        cf: Cf,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<u64, StoreError> {
        let pool = self.pool.clone();
        let (from, to) = (from.to_vec(), to.to_vec());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.block(async move {
            let mut conn = Conn::get(&pool).await?;
            let c = conn.client()?;
            // A batch by the primary key's order: each step is one short
            // transaction that locks only the rows it deletes.
            let n = c
                .execute(
                    "DELETE FROM postwarden_kv WHERE cf = $1 AND key IN \
                     (SELECT key FROM postwarden_kv WHERE cf = $1 AND key >= $2 AND key < $3 \
                      ORDER BY key LIMIT $4)",
                    &[&cf.name(), &from, &to, &limit],
                )
                .await
                .map_err(pg_error)?;
            conn.clean = true;
            Ok(n)
        })
    }

    fn reclaim(&self, _cf: Cf, ranges: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError> {
        if ranges.is_empty() {
            return Ok(());
        }
        // A plain VACUUM marks the deleted rows' space free for the rows
        // written next, so that the table levels off: autovacuum alone comes
        // only once a fifth of the table is dead (its default scale factor),
        // and the table grows meanwhile (bench/README.md, retention_growth
        // --postgres). It takes no lock that stops reads or writes; VACUUM
        // FULL (an exclusive lock on every node's shared state) is left to
        // the database administrator.
        let pool = self.pool.clone();
        self.block(async move {
            let mut conn = Conn::get(&pool).await?;
            let c = conn.client()?;
            c.batch_execute("VACUUM postwarden_kv")
                .await
                .map_err(pg_error)?;
            conn.clean = true;
            Ok(())
        })
    }

    fn write(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let pool = self.pool.clone();
        self.block(async move {
            let mut conn = Conn::get(&pool).await?;
            let c = conn.client()?;
            c.batch_execute("BEGIN").await.map_err(pg_error)?;
            apply(c, &ops).await?;
            c.batch_execute("COMMIT").await.map_err(pg_error)?;
            conn.clean = true;
            Ok(())
        })
    }

    fn update(&self, cf: Cf, key: &[u8], change: Change<'_>) -> Result<(), StoreError> {
        let pool = self.pool.clone();
        let owned_key = key.to_vec();
        // First half: open a transaction, lock the record (an advisory lock,
        // so that a record not yet there is locked too) and read it.
        let (conn, current) = self.block(async move {
            let conn = Conn::get(&pool).await?;
            let c = conn.client()?;
            c.batch_execute("BEGIN").await.map_err(pg_error)?;
            c.execute(
                "SELECT pg_advisory_xact_lock($1, $2)",
                &[&LOCK_UPDATE, &lock_key(cf, &owned_key)],
            )
            .await
            .map_err(pg_error)?;
            let row = c
                .query_opt(
                    "SELECT value FROM postwarden_kv WHERE cf = $1 AND key = $2",
                    &[&cf.name(), &owned_key],
                )
                .await
                .map_err(pg_error)?;
            Ok((conn, row.map(|r| r.get::<_, Vec<u8>>(0))))
        })?;
        // The change runs here, on the caller's thread; if it or the second
        // half fails, dropping `conn` unclean closes it and rolls back.
        let ops = change(current);
        self.block(async move {
            let mut conn = conn;
            let c = conn.client()?;
            apply(c, &ops).await?;
            c.batch_execute("COMMIT").await.map_err(pg_error)?;
            conn.clean = true;
            Ok(())
        })
    }

    fn scan_back(&self, cf: Cf, limit: usize) -> Result<Vec<Record>, StoreError> {
        let pool = self.pool.clone();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.block(async move {
            let mut conn = Conn::get(&pool).await?;
            let rows = conn
                .client()?
                .query(
                    "SELECT key, value FROM postwarden_kv WHERE cf = $1 ORDER BY key DESC LIMIT $2",
                    &[&cf.name(), &limit],
                )
                .await
                .map_err(pg_error)?;
            conn.clean = true;
            Ok(rows
                .into_iter()
                .map(|r| (r.get::<_, Vec<u8>>(0), r.get::<_, Vec<u8>>(1)))
                .collect())
        })
    }

    fn try_lock(&self, id: i64) -> Result<Option<Box<dyn HeldLock>>, StoreError> {
        let pool = self.pool.clone();
        let id = id as i32;
        let taken = self.block(async move {
            let mut conn = Conn::get(&pool).await?;
            let row = conn
                .client()?
                .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&LOCK_NAMED, &id])
                .await
                .map_err(pg_error)?;
            if row.get::<_, bool>(0) {
                Ok(Some(conn))
            } else {
                conn.clean = true;
                Ok(None)
            }
        })?;
        Ok(taken.map(|conn| {
            Box::new(PgLock {
                conn: std::sync::Mutex::new(Some(conn)),
                id,
                handle: self.handle.clone(),
                timeout: self.timeout,
            }) as Box<dyn HeldLock>
        }))
    }

    fn lock(&self, id: i64) -> Result<Box<dyn Send>, StoreError> {
        let pool = self.pool.clone();
        let id = id as i32;
        let conn = self.block(async move {
            let conn = Conn::get(&pool).await?;
            conn.client()?
                .execute("SELECT pg_advisory_lock($1, $2)", &[&LOCK_NAMED, &id])
                .await
                .map_err(pg_error)?;
            Ok(conn)
        })?;
        Ok(Box::new(PgLock {
            conn: std::sync::Mutex::new(Some(conn)),
            id,
            handle: self.handle.clone(),
            timeout: self.timeout,
        }))
    }

    fn healthy(&self) -> Result<(), StoreError> {
        let pool = self.pool.clone();
        self.block(async move {
            let mut conn = Conn::get(&pool).await?;
            conn.client()?
                .query_one("SELECT 1", &[])
                .await
                .map_err(pg_error)?;
            conn.clean = true;
            Ok(())
        })
    }
}

/// A held advisory lock; dropping it unlocks (or, failing that, closes the
/// connection, which unlocks too).
struct PgLock {
    conn: std::sync::Mutex<Option<Conn>>,
    id: i32,
    handle: tokio::runtime::Handle,
    timeout: Duration,
}

impl HeldLock for PgLock {
    /// Asks the lock's connection whether it is still there; a lost
    /// connection took the lock with it.
    fn alive(&self) -> bool {
        let mut slot = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let Some(conn) = slot.take() else {
            return false;
        };
        let answer = block_on(&self.handle, self.timeout, async move {
            conn.client()?
                .query_one("SELECT 1", &[])
                .await
                .map_err(pg_error)?;
            Ok(conn)
        });
        match answer {
            Ok(conn) => {
                *slot = Some(conn);
                true
            }
            Err(_) => false,
        }
    }
}

impl Drop for PgLock {
    fn drop(&mut self) {
        let slot = self.conn.get_mut().unwrap_or_else(|p| p.into_inner());
        let Some(conn) = slot.take() else { return };
        let id = self.id;
        let _ = block_on(&self.handle, self.timeout, async move {
            let mut conn = conn;
            conn.client()?
                .execute("SELECT pg_advisory_unlock($1, $2)", &[&LOCK_NAMED, &id])
                .await
                .map_err(pg_error)?;
            conn.clean = true;
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_sort_after_every_key_with_the_prefix() {
        assert_eq!(prefix_end(b"acme\0"), Some(b"acme\x01".to_vec()));
        assert_eq!(prefix_end(b"a\xff\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn payloads_name_cached_keys_and_fall_back_to_everything() {
        let ops = vec![
            Op::Put(Cf::Suppression, b"t\0a@x".to_vec(), b"{}".to_vec()),
            Op::Put(Cf::Tenants, b"t".to_vec(), b"{}".to_vec()),
            Op::Delete(Cf::Contacts, b"t\0l\0a@x".to_vec()),
        ];
        let p = payload(&ops).expect("two cached keys");
        let lines: Vec<_> = p.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            format!("suppression\t{}", crate::token::hex(b"t\0a@x"))
        );
        assert_eq!(
            unhex(lines[0].split('\t').nth(1).unwrap()).unwrap(),
            b"t\0a@x"
        );
        assert_eq!(payload(&ops[1..2]), None);
        let many: Vec<Op> = (0..1000)
            .map(|i| Op::Delete(Cf::Contacts, format!("key{i}").into_bytes()))
            .collect();
        assert_eq!(payload(&many).as_deref(), Some("*"));
    }

    #[test]
    fn lock_keys_are_stable_across_processes() {
        // FNV-1a of "contacts" followed by "k", a fixed value: the same on
        // every node and in every version (std's hasher would not be).
        assert_eq!(lock_key(Cf::Contacts, b"k"), 1_081_515_009);
        assert_ne!(
            lock_key(Cf::Contacts, b"k"),
            lock_key(Cf::Suppression, b"k")
        );
    }
}
