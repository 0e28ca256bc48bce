//! The outside world of bench/run's fan-out runs: a DNS server and the
//! receiving MTAs of `--domains` recipient domains, all on loopback.
//!
//! Domain i is `d{i:04}.{suffix}`. Its MX is `mx.d{i:04}.{suffix}`, whose
//! address is 127.10.(i / 250).(i % 250 + 1), one address per domain, so an
//! MTA sees a thousand destinations, each with its own connections. By i
//! modulo 100 a domain's receiver behaves as real ones do:
//! - 0-1 (2 %): nothing listens: the connection is refused;
//! - 2-6 (5 %): every RCPT is answered `451 4.7.1` for the first
//!   `--tempfail-secs` after start, then accepted (a greylisting or busy
//!   receiver);
//! - 7-16 (10 %): every reply comes `--slow-ms` late;
//! - the rest (83 %): at once.
//!
//! With `--all-fast` every domain answers at once (the run without the bad
//! ones); the counts still go by the class a domain has in the mixed run,
//! so both runs measure the same fast domains. Records live `--ttl` seconds. The counts (per class: messages
//! accepted, connections, the first and last message's time; DNS questions
//! by type) are written as one JSON object to `--stats` twice a second.
//! `--transport` writes a Postfix transport map sending each domain to its
//! receiver's address, for the same run through Postfix (whose resolver
//! cannot be pointed at a port of our own).
//!
//!     fanout_world --dns 127.0.0.1:5354 --port 2526 --domains 1000 \
//!         --stats world.json [--transport transport] [--all-fast]
//!
//! Written by hand: smtp-sink has one behaviour per process and no delay
//! per reply, and no DNS server in Debian answers a test zone on a port
//! without a configuration of its own.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Parser;
use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, MX, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    dns: SocketAddr,
    #[arg(long, default_value_t = 2526)]
    port: u16,
    #[arg(long, default_value_t = 1000)]
    domains: usize,
    #[arg(long, default_value = "fanout.test")]
    suffix: String,
    #[arg(long, default_value_t = 1000)]
    slow_ms: u64,
    #[arg(long, default_value_t = 30)]
    tempfail_secs: u64,
    #[arg(long, default_value_t = 300)]
    ttl: u32,
    #[arg(long)]
    all_fast: bool,
    #[arg(long)]
    stats: std::path::PathBuf,
    #[arg(long)]
    transport: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Class {
    Refuse,
    Tempfail,
    Slow,
    Fast,
}

impl Class {
    fn of(i: usize, all_fast: bool) -> Class {
        match (all_fast, i % 100) {
            (true, _) => Class::Fast,
            (_, 0..=1) => Class::Refuse,
            (_, 2..=6) => Class::Tempfail,
            (_, 7..=16) => Class::Slow,
            _ => Class::Fast,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Class::Refuse => "refuse",
            Class::Tempfail => "tempfail",
            Class::Slow => "slow",
            Class::Fast => "fast",
        }
    }
}

fn address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 10, (i / 250) as u8, (i % 250 + 1) as u8)
}

#[derive(Default)]
struct Counts {
    messages: AtomicU64,
    connections: AtomicU64,
    first_ms: AtomicU64,
    last_ms: AtomicU64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let counts: Arc<HashMap<Class, Counts>> = Arc::new(
        [Class::Refuse, Class::Tempfail, Class::Slow, Class::Fast]
            .into_iter()
            .map(|c| (c, Counts::default()))
            .collect(),
    );
    let dns_queries: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let started = Instant::now();
    let mut transport = String::new();
    let mut zone: HashMap<(Name, RecordType), Record> = HashMap::new();
    for i in 0..args.domains {
        let domain = format!("d{i:04}.{}", args.suffix);
        let mx_host = format!("mx.{domain}.");
        let ip = address(i);
        zone.insert(
            (Name::from_str(&format!("{domain}."))?, RecordType::MX),
            Record::from_rdata(
                Name::from_str(&format!("{domain}."))?,
                args.ttl,
                RData::MX(MX::new(10, Name::from_str(&mx_host)?)),
            ),
        );
        zone.insert(
            (Name::from_str(&mx_host)?, RecordType::A),
            Record::from_rdata(Name::from_str(&mx_host)?, args.ttl, RData::A(A(ip))),
        );
        transport.push_str(&format!("{domain} smtp:[{ip}]:{}\n", args.port));
        // Counted by the class the domain has in the mixed run, so that the
        // run without the bad ones measures the same fast domains.
        let (class, counted) = (Class::of(i, args.all_fast), Class::of(i, false));
        if class == Class::Refuse {
            continue;
        }
        let listener = TcpListener::bind((ip, args.port))
            .await
            .with_context(|| format!("cannot listen on {ip}:{}", args.port))?;
        let (counts, slow, tempfail) = (
            counts.clone(),
            Duration::from_millis(args.slow_ms),
            args.tempfail_secs,
        );
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counts[&counted].connections.fetch_add(1, Ordering::Relaxed);
                let counts = counts.clone();
                tokio::spawn(async move {
                    let delay = (class == Class::Slow).then_some(slow);
                    let refuse_until =
                        (class == Class::Tempfail).then(|| started + Duration::from_secs(tempfail));
                    let _ = session(stream, delay, refuse_until, &counts[&counted]).await;
                });
            }
        });
    }
    if let Some(path) = &args.transport {
        std::fs::write(path, transport).with_context(|| format!("{}", path.display()))?;
    }
    let socket = UdpSocket::bind(args.dns)
        .await
        .with_context(|| format!("cannot bind {}", args.dns))?;
    let apex = Name::from_str(&format!("{}.", args.suffix))?;
    let soa = Record::from_rdata(
        apex.clone(),
        args.ttl,
        RData::SOA(SOA::new(
            Name::from_str(&format!("ns.{}.", args.suffix))?,
            Name::from_str(&format!("hostmaster.{}.", args.suffix))?,
            1,
            3600,
            600,
            86400,
            args.ttl,
        )),
    );
    let asked = dns_queries.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut answer = Message::response(query.metadata.id, OpCode::Query);
            answer.metadata.authoritative = true;
            answer.metadata.recursion_desired = query.metadata.recursion_desired;
            answer.metadata.recursion_available = true;
            for q in &query.queries {
                answer.add_query(q.clone());
                if let Ok(mut a) = asked.lock() {
                    *a.entry(q.query_type().to_string()).or_insert(0) += 1;
                }
                let name = q.name().to_lowercase();
                match zone.get(&(name.clone(), q.query_type())) {
                    Some(r) => {
                        answer.add_answer(r.clone());
                    }
                    // No data or no such name: with the zone's SOA, as an
                    // authoritative server answers, so that resolvers can
                    // keep the negative answer (RFC 2308).
                    None => {
                        if !zone.keys().any(|(n, _)| *n == name) {
                            answer.metadata.response_code = ResponseCode::NXDomain;
                        }
                        answer.add_authority(soa.clone());
                    }
                }
            }
            if let Ok(bytes) = answer.to_vec() {
                let _ = socket.send_to(&bytes, peer).await;
            }
        }
    });
    loop {
        let mut classes = serde_json::Map::new();
        for (class, c) in counts.iter() {
            classes.insert(
                class.name().into(),
                serde_json::json!({
                    "messages": c.messages.load(Ordering::Relaxed),
                    "connections": c.connections.load(Ordering::Relaxed),
                    "first_ms": c.first_ms.load(Ordering::Relaxed),
                    "last_ms": c.last_ms.load(Ordering::Relaxed),
                }),
            );
        }
        let dns = dns_queries.lock().map(|d| d.clone()).unwrap_or_default();
        let stats = serde_json::json!({"classes": classes, "dns": dns, "domains": args.domains});
        let tmp = args.stats.with_extension("tmp");
        std::fs::write(&tmp, stats.to_string())?;
        std::fs::rename(&tmp, &args.stats)?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One SMTP session: ESMTP with PIPELINING, every reply `delay` late, RCPT
/// refused with 451 until `refuse_until`; a message counts when its end of
/// data is answered 250.
async fn session(
    stream: TcpStream,
    delay: Option<Duration>,
    refuse_until: Option<Instant>,
    counts: &Counts,
) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let reply = |text: &'static str| async move {
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        text
    };
    w.write_all(reply("220 fanout.test ESMTP\r\n").await.as_bytes())
        .await?;
    let mut line = Vec::new();
    let mut rcpts = 0u64;
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let upper = String::from_utf8_lossy(&line).to_ascii_uppercase();
        let text = if upper.starts_with("EHLO") {
            "250-fanout.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 52428800\r\n"
        } else if upper.starts_with("HELO") || upper.starts_with("MAIL") {
            rcpts = 0;
            "250 2.1.0 Ok\r\n"
        } else if upper.starts_with("RCPT") {
            if refuse_until.is_some_and(|t| Instant::now() < t) {
                "451 4.7.1 Try again later\r\n"
            } else {
                rcpts += 1;
                "250 2.1.5 Ok\r\n"
            }
        } else if upper.starts_with("DATA") {
            if rcpts == 0 {
                "554 5.5.1 No valid recipients\r\n"
            } else {
                w.write_all(reply("354 End data with .\r\n").await.as_bytes())
                    .await?;
                loop {
                    line.clear();
                    if r.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == b".\r\n" || line == b".\n" {
                        break;
                    }
                }
                let t = now_ms();
                let _ =
                    counts
                        .first_ms
                        .compare_exchange(0, t, Ordering::Relaxed, Ordering::Relaxed);
                counts.last_ms.fetch_max(t, Ordering::Relaxed);
                counts.messages.fetch_add(rcpts, Ordering::Relaxed);
                "250 2.0.0 Ok: queued\r\n"
            }
        } else if upper.starts_with("RSET") || upper.starts_with("NOOP") {
            "250 2.0.0 Ok\r\n"
        } else if upper.starts_with("QUIT") {
            w.write_all(reply("221 2.0.0 Bye\r\n").await.as_bytes())
                .await?;
            return Ok(());
        } else {
            "502 5.5.2 Command not recognized\r\n"
        };
        w.write_all(reply(text).await.as_bytes()).await?;
    }
}
