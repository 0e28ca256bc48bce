//! Test harness: the real `postwarden` binary on loopback ports with a spool
//! in a temporary folder, a raw SMTP client, and a remote SMTP server (the
//! "sink") that records what it receives and answers as told.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as TokioBufReader};
use tokio::net::{TcpListener, TcpStream};

pub const PASSWORD: &str = "correct horse battery staple";

pub fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
        let salt = SaltString::generate(&mut OsRng);
        argon2::Argon2::default()
            .hash_password(PASSWORD.as_bytes(), &salt)
            .expect("hash")
            .to_string()
    })
}

/// A port no other test of this run was given, below Linux's ephemeral range
/// (32768 and up) so that outgoing connections cannot take it either: a
/// daemon restarted by a test finds its ports still free. Each run starts at
/// a place of its own, so that runs side by side do not meet.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20_000 + (std::process::id() % 600) as u16 * 20,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = 20_000 + port.wrapping_sub(20_000) % 12_000;
        if StdListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// What goes into the daemon's configuration besides the fixed parts.
#[derive(Default, Clone)]
pub struct Options {
    /// Lines under [limits].
    pub limits: String,
    /// Lines under [delivery] (before [delivery.routes]).
    pub delivery: String,
    /// Lines under [delivery.routes].
    pub routes: String,
    /// Lines under [tenants.acme].
    pub tenant: String,
    /// Whole tables appended at the end.
    pub extra: String,
    /// Arguments before `serve` (`--log-format postfix`).
    pub args: Vec<String>,
}

pub struct Daemon {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub submission: SocketAddr,
    pub submissions: SocketAddr,
    pub inbound: SocketAddr,
    pub http: SocketAddr,
    pub log: Arc<Mutex<String>>,
    args: Vec<String>,
}

impl Daemon {
    /// Writes the configuration and starts the daemon.
    pub fn start(opts: Options) -> Daemon {
        let mut d = Daemon::new(opts);
        d.spawn();
        d
    }

    /// Writes the configuration only: the spool can be prepared with the CLI
    /// before [`Daemon::spawn`].
    pub fn new(opts: Options) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
        let addr = |p: u16| -> SocketAddr { format!("127.0.0.1:{p}").parse().unwrap() };
        let config = format!(
            r#"
[server]
hostname = "mta.test"
spool_dir = "spool"

[listen]
submission = "127.0.0.1:{}"
submissions = "127.0.0.1:{}"
inbound = "127.0.0.1:{}"
http = "127.0.0.1:{}"

[limits]
{}

[delivery]
retry_base = 1
retry_max = 2
connect_timeout = 5
{}
{}
{}

[delivery.routes]
{}

[feedback]
domain = "bounces.test"

[tenants.acme]
smtp_password_hash = "{}"
sender_domains = ["acme.example"]
default_list = "news.acme.example"
{}

{}
"#,
            ports[0],
            ports[1],
            ports[2],
            ports[3],
            opts.limits,
            if opts.delivery.contains("command_timeout") {
                ""
            } else {
                "command_timeout = 10"
            },
            opts.delivery,
            if opts.delivery.contains("nameservers") {
                ""
            } else {
                // No test reaches a real DNS server: an unused local port answers nothing.
                "nameservers = [\"127.0.0.1:9\"]"
            },
            opts.routes,
            password_hash(),
            opts.tenant,
            opts.extra
        );
        let config_path = dir.path().join("postwarden.toml");
        std::fs::write(&config_path, config).expect("write config");
        Daemon {
            child: None,
            dir,
            config_path,
            submission: addr(ports[0]),
            submissions: addr(ports[1]),
            inbound: addr(ports[2]),
            http: addr(ports[3]),
            log: Arc::new(Mutex::new(String::new())),
            args: opts.args,
        }
    }

    pub fn spawn(&mut self) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_postwarden"))
            .args(&self.args)
            .args(["serve", "--config"])
            .arg(&self.config_path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start postwarden");
        let stderr = child.stderr.take().expect("stderr");
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("POSTWARDEN_TEST_LOG").is_some() {
                    eprintln!("daemon: {line}");
                }
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if std::net::TcpStream::connect(self.http).is_ok()
                && std::net::TcpStream::connect(self.submission).is_ok()
            {
                break;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("postwarden exited with {status}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "postwarden did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The daemon's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status success.
    pub fn stop(&mut self) -> bool {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(Some(s)) = c.try_wait() {
                    return s.success();
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    return false;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        true
    }

    /// Sends a signal (e.g. "HUP") to the running daemon.
    pub fn signal(&self, name: &str) {
        if let Some(c) = &self.child {
            let status = Command::new("kill")
                .arg(format!("-{name}"))
                .arg(c.id().to_string())
                .status()
                .expect("kill");
            assert!(status.success());
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "log never showed {needle:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `postwarden ARGS --config FILE`.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli(&self.config_path, args)
    }

    pub fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }
}

pub fn cli(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_postwarden"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run postwarden")
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A line-oriented SMTP client over a plain socket, for protocol tests.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

pub struct Raw {
    reader: TokioBufReader<tokio::io::ReadHalf<Box<dyn Io>>>,
    writer: tokio::io::WriteHalf<Box<dyn Io>>,
}

impl Raw {
    fn wrap(stream: Box<dyn Io>) -> Raw {
        let (r, w) = tokio::io::split(stream);
        Raw {
            reader: TokioBufReader::new(r),
            writer: w,
        }
    }

    pub async fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).await.expect("connect");
        Raw::wrap(Box::new(s))
    }

    /// Connects with implicit TLS (the submissions listener, port 465); the
    /// daemon's self-signed certificate is accepted as delivery would.
    pub async fn connect_tls(addr: SocketAddr) -> Raw {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = rustls::pki_types::ServerName::try_from("mta.test").expect("name");
        let tls = postwarden::queue::client::opportunistic_tls()
            .expect("TLS client")
            .connect(name, tcp)
            .await
            .expect("TLS handshake");
        Raw::wrap(Box::new(tls))
    }

    /// Connects and reads the greeting.
    pub async fn greeted(addr: SocketAddr) -> Raw {
        let mut r = Raw::connect(addr).await;
        let g = r.reply().await;
        assert!(g.starts_with("220 "), "{g}");
        r
    }

    pub async fn send(&mut self, data: &str) {
        self.writer.write_all(data.as_bytes()).await.expect("write");
    }

    pub async fn send_bytes(&mut self, data: &[u8]) {
        self.writer.write_all(data).await.expect("write");
    }

    /// Reads one whole reply (all lines), or "" at EOF.
    pub async fn reply(&mut self) -> String {
        let mut out = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(30), self.reader.read_line(&mut line))
                .await
                .expect("reply timeout")
                .unwrap_or(0);
            if n == 0 {
                return out;
            }
            out.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return out;
            }
        }
    }

    /// Sends a command and returns the reply.
    pub async fn cmd(&mut self, line: &str) -> String {
        self.send(&format!("{line}\r\n")).await;
        self.reply().await
    }

    /// EHLO plus AUTH PLAIN as acme (plain text is allowed on loopback).
    pub async fn login(addr: SocketAddr) -> Raw {
        Raw::login_as(addr, "acme").await
    }

    /// EHLO plus AUTH PLAIN as `tenant` (every test tenant has [`PASSWORD`]).
    pub async fn login_as(addr: SocketAddr, tenant: &str) -> Raw {
        let mut r = Raw::greeted(addr).await;
        let ehlo = r.cmd("EHLO client.test").await;
        assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
        let token = base64_plain(tenant, PASSWORD);
        let a = r.cmd(&format!("AUTH PLAIN {token}")).await;
        assert!(a.starts_with("235 2.7.0"), "{a}");
        r
    }

    /// One transaction (MAIL, RCPT, DATA, the dot-stuffed message): the
    /// first reply that is not 2xx or 3xx, else the reply to the end of data.
    pub async fn transaction(&mut self, from: &str, rcpt: &str, message: &str) -> String {
        self.transaction_to(from, &[rcpt], message).await
    }

    /// [`Raw::transaction`] to several recipients.
    pub async fn transaction_to(&mut self, from: &str, rcpts: &[&str], message: &str) -> String {
        let commands = std::iter::once(format!("MAIL FROM:<{from}>"))
            .chain(rcpts.iter().map(|r| format!("RCPT TO:<{r}>")))
            .chain(std::iter::once("DATA".to_string()));
        for cmd in commands {
            let r = self.cmd(&cmd).await;
            if !(r.starts_with('2') || r.starts_with('3')) {
                return r;
            }
        }
        self.send(&format!("{}.\r\n", message.replace("\r\n.", "\r\n..")))
            .await;
        self.reply().await
    }

    pub async fn eof(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(30), self.reader.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

pub fn base64_plain(user: &str, pass: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pass}"))
}

/// A newsletter that passes the strict policy, for `rcpt`.
pub fn newsletter(rcpt: &str, subject: &str) -> String {
    format!(
        "From: Acme News <news@acme.example>\r\n\
To: {rcpt}\r\n\
Subject: {subject}\r\n\
Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n\
Message-ID: <{}@acme.example>\r\n\
List-Id: Acme News <news.acme.example>\r\n\
List-Unsubscribe: <https://acme.example/u/abc>\r\n\
List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>Hello.</p>\r\n\
.<p>A line that starts with a dot.</p>\r\n\
<p><a href=\"https://acme.example/u/abc\">Unsubscribe</a></p>\r\n",
        rand::random::<u64>()
    )
}

/// What `postwarden dkim keygen` printed for acme's `selector`.
pub struct Keygen {
    pub printed: String,
    /// The strings of its TXT zone line, in order.
    pub strings: Vec<String>,
}

/// Runs `dkim keygen` for acme (daemon stopped), and puts the `dkim_`
/// lines it printed under [tenants.acme], as a sysadmin would.
pub fn dkim_keygen(d: &Daemon, selector: &str, algorithm: &str) -> Keygen {
    dkim_keygen_with(d, selector, algorithm, &[])
}

/// [`dkim_keygen`] with more arguments (`--next`).
pub fn dkim_keygen_with(d: &Daemon, selector: &str, algorithm: &str, more: &[&str]) -> Keygen {
    let mut args = vec![
        "dkim",
        "keygen",
        "--tenant",
        "acme",
        "--selector",
        selector,
        "--algorithm",
        algorithm,
    ];
    args.extend_from_slice(more);
    let out = d.cli(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    let head = format!("{selector}._domainkey.acme.example. IN TXT ( ");
    let zone = printed
        .lines()
        .find(|l| l.starts_with(&head))
        .unwrap_or_else(|| panic!("{printed}"));
    let strings = zone
        .trim_start_matches(head.as_str())
        .trim_end_matches(" )")
        .split("\" \"")
        .map(|s| s.trim_matches('"').to_string())
        .collect();
    let lines: String = printed
        .lines()
        .filter(|l| l.starts_with("dkim_"))
        .map(|l| format!("{l}\n"))
        .collect();
    let config = std::fs::read_to_string(&d.config_path).unwrap();
    std::fs::write(
        &d.config_path,
        config.replace("[tenants.acme]\n", &format!("[tenants.acme]\n{lines}")),
    )
    .unwrap();
    Keygen { printed, strings }
}

/// Opts `address` in on the acme news list (daemon must be stopped, or use before start).
pub fn opt_in(config: &Path, address: &str) {
    set_state(config, address, "double_opt_in_confirmed");
}

/// Sets `address`'s consent state on the acme news list (through the
/// running daemon when there is one).
pub fn set_state(config: &Path, address: &str, state: &str) {
    let out = try_set_state(config, address, state);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// [`set_state`], the command's output whether it worked or not.
pub fn try_set_state(config: &Path, address: &str, state: &str) -> Output {
    cli(
        config,
        &[
            "contacts",
            "set",
            "--tenant",
            "acme",
            "--list",
            "news.acme.example",
            "--state",
            state,
            "--source",
            "test",
            address,
        ],
    )
}

/// A message received by the sink.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt: String,
    pub data: Vec<u8>,
    /// The client's address, and the name it gave in EHLO.
    pub peer: std::net::IpAddr,
    pub ehlo: String,
}

/// How the sink answers RCPT TO: by address, the replies for the 1st, 2nd, …
/// attempt (the last one repeats); default "250 2.1.5 Ok". The key "EHLO"
/// gives the whole EHLO reply instead of the default (which has SMTPUTF8);
/// the key "DELAY_MS" makes every RCPT reply wait that many milliseconds (a
/// slow receiver).
pub type Script = HashMap<String, Vec<String>>;

/// A remote SMTP server for delivery tests.
pub struct Sink {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    pub connections: Arc<Mutex<usize>>,
    /// Sessions open now, and the most there ever were at once.
    pub concurrent: Arc<Mutex<(usize, usize)>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sink {
    pub async fn start(script: Script) -> Sink {
        Sink::start_on(0, script).await
    }

    pub async fn start_on(port: u16, script: Script) -> Sink {
        // A fixed port (a test's restart scenario) can be held for a moment
        // by a socket on its way out: try again for a while before failing.
        let deadline = Instant::now() + Duration::from_secs(30);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", port)).await {
                Ok(l) => break l,
                Err(e)
                    if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("cannot listen on 127.0.0.1:{port}: {e}"),
            }
        };
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let attempts: Arc<Mutex<HashMap<String, usize>>> = Arc::new(Mutex::new(HashMap::new()));
        let script = Arc::new(script);
        let concurrent = Arc::new(Mutex::new((0, 0)));
        let (r2, c2, open) = (received.clone(), connections.clone(), concurrent.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((s, peer)) = listener.accept().await else {
                    return;
                };
                *c2.lock().unwrap() += 1;
                {
                    let mut o = open.lock().unwrap();
                    o.0 += 1;
                    o.1 = o.1.max(o.0);
                }
                let (r, a, sc, o) = (r2.clone(), attempts.clone(), script.clone(), open.clone());
                tokio::spawn(async move {
                    let _ = sink_session(s, peer.ip(), r, a, sc).await;
                    o.lock().unwrap().0 -= 1;
                });
            }
        });
        Sink {
            addr,
            received,
            connections,
            concurrent,
            task,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self.received();
            if r.len() >= n {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "sink got {} of {n} messages",
                r.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn sink_session(
    s: TcpStream,
    peer: std::net::IpAddr,
    received: Arc<Mutex<Vec<Received>>>,
    attempts: Arc<Mutex<HashMap<String, usize>>>,
    script: Arc<Script>,
) -> std::io::Result<()> {
    let (r, mut w) = tokio::io::split(s);
    let mut r = TokioBufReader::new(r);
    w.write_all(b"220 sink.test ESMTP\r\n").await?;
    let (mut from, mut rcpt) = (String::new(), None::<String>);
    let mut ehlo = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let upper = line.to_ascii_uppercase();
        let reply = if upper.starts_with("EHLO") {
            ehlo = line[4..].trim().to_string();
            // The script's "EHLO" entry replaces the reply (a server without SMTPUTF8).
            script
                .get("EHLO")
                .and_then(|v| v.first())
                .cloned()
                .unwrap_or_else(|| {
                    "250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8".to_string()
                })
        } else if upper.starts_with("MAIL FROM:") {
            from = between(&line, '<', '>');
            "250 2.1.0 Ok".into()
        } else if upper.starts_with("RCPT TO:") {
            if let Some(ms) = script
                .get("DELAY_MS")
                .and_then(|v| v.first())
                .and_then(|v| v.parse::<u64>().ok())
            {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            let addr = between(&line, '<', '>');
            let n = {
                let mut a = attempts.lock().unwrap();
                let n = a.entry(addr.clone()).or_insert(0);
                *n += 1;
                *n
            };
            let reply = script
                .get(&addr)
                .map(|v| v[(n - 1).min(v.len() - 1)].clone())
                .unwrap_or_else(|| "250 2.1.5 Ok".into());
            if reply.starts_with('2') {
                rcpt = Some(addr);
            }
            reply
        } else if upper.starts_with("DATA") {
            if rcpt.is_none() {
                "554 5.5.1 no valid recipients".into()
            } else {
                w.write_all(b"354 go ahead\r\n").await?;
                let mut data = Vec::new();
                loop {
                    let mut l = Vec::new();
                    if tokio::io::AsyncBufReadExt::read_until(&mut r, b'\n', &mut l).await? == 0 {
                        return Ok(());
                    }
                    if l == b".\r\n" {
                        break;
                    }
                    if l.starts_with(b"..") {
                        l.remove(0);
                    }
                    data.extend_from_slice(&l);
                }
                received.lock().unwrap().push(Received {
                    mail_from: from.clone(),
                    rcpt: rcpt.take().unwrap_or_default(),
                    data,
                    peer,
                    ehlo: ehlo.clone(),
                });
                "250 2.0.0 Ok: queued".into()
            }
        } else if upper.starts_with("RSET") {
            rcpt = None;
            "250 2.0.0 Ok".into()
        } else if upper.starts_with("QUIT") {
            w.write_all(b"221 2.0.0 Bye\r\n").await?;
            return Ok(());
        } else {
            "250 2.0.0 Ok".into()
        };
        w.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}

fn between(s: &str, a: char, b: char) -> String {
    match (s.find(a), s.rfind(b)) {
        (Some(i), Some(j)) if i < j => s[i + 1..j].to_string(),
        _ => String::new(),
    }
}

/// The header of a browser's form POST (what RFC 8058's one-click sends).
pub const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

/// One HTTP/1.1 request over a fresh connection: (status, body).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut rest = raw.get(split + 4..).unwrap_or(&[]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut body = Vec::new();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = String::from_utf8_lossy(&rest[..eol]).to_string();
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            let data = &rest[eol + 2..];
            body.extend_from_slice(&data[..n.min(data.len())]);
            rest = data.get(n + 2..).unwrap_or(&[]);
        }
    } else {
        body.extend_from_slice(rest);
    }
    (status, String::from_utf8_lossy(&body).to_string())
}

/// One request with hyper's HTTP/1.1 client: the status, the answer's
/// headers and its body.
pub async fn fetch(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, hyper::HeaderMap, String) {
    use http_body_util::BodyExt;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, addr.to_string());
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let request = request
        .body(http_body_util::Full::new(hyper::body::Bytes::from(
            body.to_string(),
        )))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let head = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, head, String::from_utf8_lossy(&bytes).to_string())
}

/// A list's sign-up form as its JavaScript variant reads it (wording,
/// version, a fresh form token).
pub async fn form_json(addr: SocketAddr, tenant: &str, list: &str) -> serde_json::Value {
    let form = format!("/subscribe/{tenant}/{list}/form");
    let (status, _, body) = fetch(addr, "GET", &form, &[("Accept", "application/json")], "").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Lower-case hex SHA-256 of `s` (of API tokens for the config, of consent
/// wordings in the evidence), computed here apart from postwarden's own.
pub fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Signs `email` up for a list the way a browser does with the form page:
/// fetches the form (as JSON: the token and the wording's version), then
/// posts the fields with the consent box ticked. The tenant needs
/// `form_min_seconds = 0` unless the caller waits.
pub async fn sign_up(addr: SocketAddr, tenant: &str, list: &str, email: &str) -> (u16, String) {
    let form = format!("/subscribe/{tenant}/{list}/form");
    let v = form_json(addr, tenant, list).await;
    let fields: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("email", email)
        .append_pair("consent", "yes")
        .append_pair("consent_version", v["consent"]["version"].as_str().unwrap())
        .append_pair("lang", v["lang"].as_str().unwrap())
        .append_pair("form_token", v["form_token"].as_str().unwrap())
        .finish();
    http(
        addr,
        "POST",
        &form,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &fields,
    )
    .await
}

/// A fresh, empty database on the private PostgreSQL cluster that `.ci/run`
/// starts (`.ci/postgres`), as a connection string. Each test gets its own,
/// so tests running at once do not see each other's state.
pub fn postgres_db() -> String {
    let base = std::env::var("POSTWARDEN_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!(
            "POSTWARDEN_TEST_POSTGRES is not set: run the tests with `bash .ci/run`, or start \
             a cluster with `export POSTWARDEN_TEST_POSTGRES=$(bash .ci/postgres start DIR)`"
        )
    });
    let name = format!("pw_{:016x}", rand::random::<u64>());
    let sql = format!("CREATE DATABASE {name}");
    postgres_exec(&base, &sql);
    format!("{base} dbname={name}")
}

/// Runs `sql` on the cluster's `postgres` database (on a thread of its own,
/// so that it works from inside a test's runtime too).
pub fn postgres_exec(base: &str, sql: &str) {
    let (base, sql) = (base.to_string(), sql.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL ({base}): {e}"));
            tokio::spawn(conn);
            client.batch_execute(&sql).await.expect("sql");
        })
    })
    .join()
    .expect("postgres thread");
}

/// Drops the database of `url` (from [`postgres_db`]) under its users' feet.
/// The store settings of a node whose shared state is the database `url`.
pub fn postgres_settings(url: &str) -> postwarden::config::StoreSettings {
    postwarden::config::StoreSettings {
        backend: postwarden::config::StoreBackend::Postgres,
        url: Some(url.to_string()),
        ..Default::default()
    }
}

pub fn postgres_drop(url: &str) {
    let (base, name) = url.rsplit_once(" dbname=").expect("a postgres_db url");
    postgres_exec(base, &format!("DROP DATABASE {name} WITH (FORCE)"));
}

/// In a new acme session: the reply to MAIL FROM if it refuses, else the
/// reply to RCPT TO for `rcpt`.
pub async fn rcpt_answer(d: &Daemon, rcpt: &str) -> String {
    let mut c = Raw::login(d.submission).await;
    let r = c.cmd("MAIL FROM:<news@acme.example>").await;
    if !r.starts_with("250") {
        return r;
    }
    c.cmd(&format!("RCPT TO:<{rcpt}>")).await
}

/// The acme RCPT reply for `rcpt`, asked again (a new session each time)
/// until it starts with `prefix` or 10 s pass: for effects that follow a
/// log line (feedback is logged as it is decided, then written).
pub async fn rcpt_until(d: &Daemon, rcpt: &str, prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = rcpt_answer(d, rcpt).await;
        if r.starts_with(prefix) || Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The managed one-click unsubscribe link (`http://HTTP/u/TOKEN`, HTTP the
/// daemon's listener) in a delivered message's text.
pub fn managed_unsubscribe_url(text: &str, http: SocketAddr) -> String {
    let start = text
        .find(&format!("<http://{http}/u/"))
        .expect("managed link");
    let url = &text[start + 1..];
    url[..url.find('>').expect("the end of the link")].to_string()
}

/// The path of a managed link (`/u/TOKEN`).
pub fn unsubscribe_path(url: &str) -> &str {
    &url[url.find("/u/").expect("a managed link")..]
}

/// RFC 8058's one-click POST to the managed link in a delivered message's
/// text, on the daemon's HTTP listener `http`: the reply's status.
pub async fn one_click_unsubscribe(http_addr: SocketAddr, text: &str) -> u16 {
    let url = managed_unsubscribe_url(text, http_addr);
    let (status, _) = http(
        http_addr,
        "POST",
        unsubscribe_path(&url),
        &[FORM],
        "List-Unsubscribe=One-Click",
    )
    .await;
    status
}
