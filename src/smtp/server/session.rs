//! One SMTP session (RFC 5321), shared by the submission, submissions and
//! inbound listeners. Commands are parsed by smtp-proto; every reply is
//! written at the point of decision with its RFC 3463 enhanced code.
//!
//! Replies are collected and flushed only when the input buffer holds no
//! further complete command, which is what PIPELINING (RFC 2920) asks for.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use smtp_proto::request::receiver::{BdatReceiver, DataReceiver};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::{info, warn};

use crate::runtime::{Context, Settings};
use crate::store::queue::Recipient;
use crate::values::ListenerKind;

pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub(super) enum State {
    Command,
    AuthPlain,
    AuthLoginUser,
    AuthLoginPass(String),
    Data(DataReceiver),
    /// A BDAT chunk; `discard` when the transaction is not valid (the bytes
    /// must still be read to stay in step with the client).
    Bdat {
        receiver: BdatReceiver,
        discard: bool,
    },
}

/// The transaction between MAIL and the end of DATA.
pub(super) struct Transaction {
    pub sender: String,
    pub flags: u64,
    pub env_id: Option<String>,
    pub recipients: Vec<Recipient>,
    pub message: Vec<u8>,
    pub too_big: bool,
    /// Set once a BDAT chunk was received: DATA may no longer be used.
    pub chunking: bool,
}

pub(super) enum Flow {
    /// Read more input.
    More,
    /// Close the connection after flushing.
    Close,
}

pub(super) struct Session {
    pub ctx: Arc<Context>,
    pub settings: Arc<Settings>,
    pub kind: ListenerKind,
    pub peer: SocketAddr,
    pub(super) io: Option<Box<dyn Io>>,
    pub(super) input: Vec<u8>,
    pub(super) output: Vec<u8>,
    pub tls: bool,
    pub helo: Option<String>,
    pub esmtp: bool,
    /// The tenant: from AUTH, or from `trusted_networks`.
    pub tenant: Option<String>,
    pub authenticated: bool,
    pub state: State,
    pub transaction: Option<Transaction>,
    pub(super) errors: usize,
    pub(super) discarding_line: bool,
    pub(super) counts: BTreeMap<&'static str, u32>,
}

/// Runs a session on an accepted connection (or, for the fuzz targets, an
/// in-memory stream) until it ends.
pub async fn run<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    peer: SocketAddr,
    kind: ListenerKind,
    ctx: Arc<Context>,
) {
    let settings = ctx.settings();
    crate::metrics::connection(kind.name());
    info!(
        "connect from [{}]:{} to {}",
        peer.ip(),
        peer.port(),
        kind.name()
    );
    let mut io: Box<dyn Io> = Box::new(stream);
    let mut tls = false;
    if kind == ListenerKind::Submissions {
        let handshake = tokio::time::timeout(
            Duration::from_secs(settings.config.limits.idle_timeout),
            ctx.tls.accept(io),
        )
        .await;
        match handshake {
            Ok(Ok(s)) => {
                io = Box::new(s);
                tls = true;
            }
            Ok(Err(e)) => {
                warn!("TLS handshake failed with [{}]: {e}", peer.ip());
                return;
            }
            Err(_) => {
                warn!("TLS handshake timed out with [{}]", peer.ip());
                return;
            }
        }
    }
    let tenant = if kind.is_submission() {
        settings.tenant_by_network(peer.ip())
    } else {
        None
    };
    let mut session = Session {
        ctx,
        settings,
        kind,
        peer,
        io: Some(io),
        input: Vec::with_capacity(8192),
        output: Vec::with_capacity(1024),
        tls,
        helo: None,
        esmtp: false,
        tenant,
        authenticated: false,
        state: State::Command,
        transaction: None,
        errors: 0,
        discarding_line: false,
        counts: BTreeMap::new(),
    };
    let hostname = session.settings.config.server.hostname.clone();
    session.reply(&format!("220 {hostname} ESMTP postwarden"));
    session.main_loop().await;
    log_disconnect(peer, &session.counts);
}

/// The disconnect line with the command counts, as Postfix's smtpd writes it.
fn log_disconnect(peer: SocketAddr, counts: &BTreeMap<&'static str, u32>) {
    let mut line = format!("disconnect from [{}]", peer.ip());
    let mut total = 0;
    // Postfix's order, so that log tools read it the same way.
    const ORDER: [&str; 14] = [
        "ehlo", "helo", "starttls", "auth", "mail", "rcpt", "data", "bdat", "rset", "noop", "vrfy",
        "help", "quit", "unknown",
    ];
    for cmd in ORDER {
        if let Some(n) = counts.get(cmd) {
            line.push_str(&format!(" {cmd}={n}"));
            total += n;
        }
    }
    line.push_str(&format!(" commands={total}"));
    info!("{line}");
}

impl Session {
    pub fn reply(&mut self, line: &str) {
        self.output.extend_from_slice(line.as_bytes());
        if !line.ends_with("\r\n") {
            self.output.extend_from_slice(b"\r\n");
        }
    }

    pub(super) async fn flush(&mut self) -> std::io::Result<()> {
        if self.output.is_empty() {
            return Ok(());
        }
        let Some(io) = self.io.as_mut() else {
            return Ok(());
        };
        io.write_all(&self.output).await?;
        io.flush().await?;
        self.output.clear();
        Ok(())
    }

    pub(super) fn count(&mut self, cmd: &'static str) {
        *self.counts.entry(cmd).or_insert(0) += 1;
    }

    pub fn limits(&self) -> &crate::config::Limits {
        &self.settings.config.limits
    }

    pub(super) async fn main_loop(&mut self) {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match self.process_input().await {
                Flow::More => {}
                Flow::Close => {
                    let _ = self.flush().await;
                    break;
                }
            }
            if self.flush().await.is_err() {
                break;
            }
            let timeout = match self.state {
                State::Data(_) | State::Bdat { .. } => self.limits().data_timeout,
                _ => self.limits().idle_timeout,
            };
            let Some(io) = self.io.as_mut() else { break };
            match tokio::time::timeout(Duration::from_secs(timeout), io.read(&mut chunk)).await {
                Ok(Ok(0)) => {
                    if self.transaction.is_some() {
                        warn!(
                            "lost connection after {} from [{}]",
                            self.last_phase(),
                            self.peer.ip()
                        );
                    }
                    break;
                }
                Ok(Ok(n)) => self.input.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => {
                    warn!("read error from [{}]: {e}", self.peer.ip());
                    break;
                }
                Err(_) => {
                    warn!(
                        "timeout after {} from [{}]",
                        self.last_phase(),
                        self.peer.ip()
                    );
                    let host = self.settings.config.server.hostname.clone();
                    self.reply(&format!("421 4.4.2 {host} Error: timeout exceeded"));
                    let _ = self.flush().await;
                    break;
                }
            }
        }
        if let Some(mut io) = self.io.take() {
            let _ = io.shutdown().await;
        }
    }

    pub(super) fn last_phase(&self) -> &'static str {
        match (&self.state, &self.transaction) {
            (State::Data(_), _) | (State::Bdat { .. }, _) => "DATA",
            (_, Some(t)) if !t.recipients.is_empty() => "RCPT",
            (_, Some(_)) => "MAIL",
            _ => "CONNECT",
        }
    }

    /// Handles every complete command (or the DATA bytes) in the input buffer.
    pub(super) async fn process_input(&mut self) -> Flow {
        loop {
            match self.state {
                State::Data(_) | State::Bdat { .. } => {
                    if !self.ingest_message_bytes() {
                        return Flow::More;
                    }
                    if let Flow::Close = self.end_of_message().await {
                        return Flow::Close;
                    }
                }
                _ => {
                    let Some(line) = self.next_line() else {
                        return Flow::More;
                    };
                    let flow = match self.state {
                        State::Command => self.command(&line).await,
                        _ => self.auth_continuation(&line).await,
                    };
                    if let Flow::Close = flow {
                        return Flow::Close;
                    }
                    if self.errors >= self.limits().max_errors {
                        warn!("too many errors from [{}]", self.peer.ip());
                        self.reply("421 4.7.0 Error: too many errors");
                        return Flow::Close;
                    }
                }
            }
        }
    }

    /// Takes one line (with its LF) off the input; enforces the line length
    /// limit of RFC 5321 §4.5.3.1.4 by answering 500 and skipping the line.
    pub(super) fn next_line(&mut self) -> Option<Vec<u8>> {
        let max = self.limits().max_line_length;
        loop {
            match memchr_lf(&self.input) {
                Some(pos) => {
                    let line: Vec<u8> = self.input.drain(..=pos).collect();
                    if self.discarding_line {
                        self.discarding_line = false;
                        continue;
                    }
                    if line.len() > max {
                        self.line_too_long();
                        continue;
                    }
                    return Some(line);
                }
                None => {
                    if self.input.len() > max {
                        self.input.clear();
                        if !self.discarding_line {
                            self.line_too_long();
                            self.discarding_line = true;
                        }
                    }
                    return None;
                }
            }
        }
    }

    pub(super) fn line_too_long(&mut self) {
        self.errors += 1;
        let max = self.limits().max_line_length;
        self.reply(&format!(
            "500 5.5.2 Error: line too long (limit {max} octets)"
        ));
    }
}

fn memchr_lf(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}
