//! A load client for `bench/run`: N parallel SMTP sessions send M copies of a
//! prepared message, optionally over STARTTLS with AUTH PLAIN (which Postfix's
//! smtp-source cannot do), and print messages per second and the acceptance
//! latency (end of DATA to the server's reply) as one JSON line.
//!
//! Recipients are numbered like `smtp-source -N`: `1bench@example.test`,
//! `2bench@example.test`, … from `--first` on, one number per recipient.
//!
//!     smtp_load --addr 127.0.0.1:2587 --sessions 20 --messages 20000 \
//!         --message news.eml --to bench@example.test --from news@bench.example \
//!         [--rcpts 1] [--first 1] [--domains 1000] [--new-connection] \
//!         [--starttls --ca cert.pem --auth user:password] [--latencies FILE]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::Engine;
use clap::Parser;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The `n`th recipient: `{n}{to}`, or with `--domains` at domain
/// `d{n mod domains}` under `to`'s domain.
fn recipient(args: &Args, n: u64) -> String {
    match (args.domains, args.to.split_once('@')) {
        (Some(d), Some((local, suffix))) if d > 0 => {
            format!("{n}{local}@d{:04}.{suffix}", n % d)
        }
        _ => format!("{n}{}", args.to),
    }
}

#[derive(Parser, Clone)]
struct Args {
    #[arg(long)]
    addr: String,
    #[arg(long, default_value_t = 20)]
    sessions: u64,
    #[arg(long, default_value_t = 1000)]
    messages: u64,
    /// The message (header and body); line ends become CRLF, lines are dot-stuffed.
    #[arg(long)]
    message: std::path::PathBuf,
    #[arg(long)]
    from: String,
    /// Recipient address; a sequence number is put in front of it.
    #[arg(long)]
    to: String,
    #[arg(long, default_value_t = 1)]
    rcpts: u64,
    /// Spread the recipients over this many domains: `7bench@d0007.fanout.test`
    /// for `--to bench@fanout.test` (the domains of bench/fanout_world.rs).
    #[arg(long)]
    domains: Option<u64>,
    #[arg(long, default_value_t = 1)]
    first: u64,
    /// A new connection for every message (default: one per session).
    #[arg(long)]
    new_connection: bool,
    #[arg(long)]
    starttls: bool,
    /// PEM certificate the server's certificate must chain to (with --starttls).
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
    /// user:password for AUTH PLAIN.
    #[arg(long)]
    auth: Option<String>,
    /// Append every message's latency (ms, one a line) to this file, for
    /// percentiles over several runs.
    #[arg(long)]
    latencies: Option<std::path::PathBuf>,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

struct Session {
    io: BufReader<Box<dyn Stream>>,
}

impl Session {
    async fn reply(io: &mut (impl tokio::io::AsyncBufRead + Unpin)) -> Result<String> {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if io.read_line(&mut line).await? == 0 {
                bail!("connection closed after {all:?}");
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return Ok(all);
            }
        }
    }

    async fn open(args: &Args, tls: Option<&tokio_rustls::TlsConnector>) -> Result<Session> {
        let tcp = TcpStream::connect(&args.addr).await?;
        tcp.set_nodelay(true)?;
        let mut plain = BufReader::new(tcp);
        expect(&Self::reply(&mut plain).await?, "220")?;
        plain.get_mut().write_all(b"EHLO bench.example\r\n").await?;
        expect(&Self::reply(&mut plain).await?, "250")?;
        let stream: Box<dyn Stream> = match tls {
            Some(connector) => {
                plain.get_mut().write_all(b"STARTTLS\r\n").await?;
                expect(&Self::reply(&mut plain).await?, "220")?;
                let name = rustls::pki_types::ServerName::try_from("localhost")?;
                let tls = connector.connect(name, plain.into_inner()).await?;
                Box::new(tls)
            }
            None => Box::new(plain.into_inner()),
        };
        let mut s = Session {
            io: BufReader::new(stream),
        };
        if tls.is_some() {
            s.cmd("EHLO bench.example", "250").await?;
        }
        if let Some(auth) = &args.auth {
            let (user, pass) = auth.split_once(':').context("--auth user:password")?;
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pass}"));
            s.cmd(&format!("AUTH PLAIN {token}"), "235").await?;
        }
        Ok(s)
    }

    async fn cmd(&mut self, line: &str, want: &str) -> Result<String> {
        self.io
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .await?;
        let r = Self::reply(&mut self.io).await?;
        expect(&r, want)?;
        Ok(r)
    }

    /// Sends one message; the time from the end of DATA to the reply.
    async fn send(&mut self, args: &Args, rcpts: &[String], data: &[u8]) -> Result<Duration> {
        self.cmd(&format!("MAIL FROM:<{}>", args.from), "250")
            .await?;
        for r in rcpts {
            self.cmd(&format!("RCPT TO:<{r}>"), "250").await?;
        }
        self.cmd("DATA", "354").await?;
        self.io.get_mut().write_all(data).await?;
        let start = Instant::now();
        self.io.get_mut().write_all(b".\r\n").await?;
        let r = Self::reply(&mut self.io).await?;
        let took = start.elapsed();
        expect(&r, "250")?;
        Ok(took)
    }

    async fn quit(mut self) {
        let _ = self.cmd("QUIT", "221").await;
    }
}

fn expect(reply: &str, want: &str) -> Result<()> {
    if reply.starts_with(want) {
        Ok(())
    } else {
        bail!("expected {want}, got {}", reply.trim_end())
    }
}

fn prepare(raw: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(raw).replace("\r\n", "\n");
    let mut out = Vec::with_capacity(raw.len() + 256);
    for line in text.lines() {
        if line.starts_with('.') {
            out.push(b'.');
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn tls_connector(args: &Args) -> Result<Option<tokio_rustls::TlsConnector>> {
    if !args.starttls {
        return Ok(None);
    }
    let mut roots = rustls::RootCertStore::empty();
    let path = args.ca.as_ref().context("--starttls needs --ca")?;
    let pem = std::fs::read(path).with_context(|| path.display().to_string())?;
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(tokio_rustls::TlsConnector::from(Arc::new(config))))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let raw = std::fs::read(&args.message).with_context(|| args.message.display().to_string())?;
    let data = Arc::new(prepare(&raw));
    let tls = tls_connector(&args)?;
    let next_message = Arc::new(AtomicU64::new(0));
    let next_rcpt = Arc::new(AtomicU64::new(args.first));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.sessions {
        let (args, data, tls) = (args.clone(), data.clone(), tls.clone());
        let (next_message, next_rcpt) = (next_message.clone(), next_rcpt.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut session: Option<Session> = None;
            while next_message.fetch_add(1, Ordering::Relaxed) < args.messages {
                let first = next_rcpt.fetch_add(args.rcpts, Ordering::Relaxed);
                let rcpts: Vec<String> = (first..first + args.rcpts)
                    .map(|n| recipient(&args, n))
                    .collect();
                let mut s = match session.take() {
                    Some(s) => s,
                    None => match Session::open(&args, tls.as_ref()).await {
                        Ok(s) => s,
                        Err(e) => {
                            eprintln!("smtp_load: connect: {e:#}");
                            errors += 1;
                            continue;
                        }
                    },
                };
                match s.send(&args, &rcpts, &data).await {
                    Ok(took) => {
                        latencies.push(took);
                        if args.new_connection {
                            s.quit().await;
                        } else {
                            session = Some(s);
                        }
                    }
                    Err(e) => {
                        eprintln!("smtp_load: {e:#}");
                        errors += 1;
                    }
                }
            }
            if let Some(s) = session {
                s.quit().await;
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        latencies.extend(l);
        errors += e;
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort();
    if let Some(path) = &args.latencies {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("{}", path.display()))?,
        );
        for l in &latencies {
            writeln!(out, "{:.3}", l.as_secs_f64() * 1000.0)?;
        }
        out.flush()?;
    }
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    println!(
        "{}",
        serde_json::json!({
            "messages": latencies.len(),
            "errors": errors,
            "seconds": seconds,
            "per_second": latencies.len() as f64 / seconds,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
        })
    );
    Ok(())
}
