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
use smtp_proto::{Error as ParseError, Request};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::{info, warn};

use super::auth;
use super::{ListenerKind, ServerContext, Settings};
use crate::queue::entry::Recipient;

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
    pub ctx: Arc<ServerContext>,
    pub settings: Arc<Settings>,
    pub kind: ListenerKind,
    pub peer: SocketAddr,
    io: Option<Box<dyn Io>>,
    input: Vec<u8>,
    output: Vec<u8>,
    pub tls: bool,
    pub helo: Option<String>,
    pub esmtp: bool,
    /// The tenant: from AUTH, or from `trusted_networks`.
    pub tenant: Option<String>,
    pub authenticated: bool,
    pub state: State,
    pub transaction: Option<Transaction>,
    errors: usize,
    discarding_line: bool,
    counts: BTreeMap<&'static str, u32>,
}

/// Runs a session on an accepted connection (or, for the fuzz targets, an
/// in-memory stream) until it ends.
pub async fn run<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    peer: SocketAddr,
    kind: ListenerKind,
    ctx: Arc<ServerContext>,
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
    let mut line = format!("disconnect from [{}]", peer.ip());
    let mut total = 0;
    // Postfix's order, so that log tools read it the same way.
    const ORDER: [&str; 14] = [
        "ehlo", "helo", "starttls", "auth", "mail", "rcpt", "data", "bdat", "rset", "noop", "vrfy",
        "help", "quit", "unknown",
    ];
    for cmd in ORDER {
        if let Some(n) = session.counts.get(cmd) {
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

    async fn flush(&mut self) -> std::io::Result<()> {
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

    fn count(&mut self, cmd: &'static str) {
        *self.counts.entry(cmd).or_insert(0) += 1;
    }

    pub fn limits(&self) -> &crate::config::Limits {
        &self.settings.config.limits
    }

    async fn main_loop(&mut self) {
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

    fn last_phase(&self) -> &'static str {
        match (&self.state, &self.transaction) {
            (State::Data(_), _) | (State::Bdat { .. }, _) => "DATA",
            (_, Some(t)) if !t.recipients.is_empty() => "RCPT",
            (_, Some(_)) => "MAIL",
            _ => "CONNECT",
        }
    }

    /// Handles every complete command (or the DATA bytes) in the input buffer.
    async fn process_input(&mut self) -> Flow {
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
    fn next_line(&mut self) -> Option<Vec<u8>> {
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

    fn line_too_long(&mut self) {
        self.errors += 1;
        let max = self.limits().max_line_length;
        self.reply(&format!(
            "500 5.5.2 Error: line too long (limit {max} octets)"
        ));
    }

    async fn command(&mut self, line: &[u8]) -> Flow {
        // A source route (`<@a.example:user@b.example>`, RFC 5321 §4.1.1.3) is
        // refused outright rather than silently dropped as smtp-proto does.
        if let Some(reply) = source_route(line) {
            self.errors += 1;
            self.count(if line[..4].eq_ignore_ascii_case(b"MAIL") {
                "mail"
            } else {
                "rcpt"
            });
            self.reply(reply);
            return Flow::More;
        }
        let parsed = Request::parse(&mut line.iter()).map(|r| r.into_owned());
        let request = match parsed {
            Ok(r) => r,
            Err(e) => {
                self.errors += 1;
                self.count("unknown");
                let reply = match e {
                    ParseError::UnknownCommand => {
                        "500 5.5.1 Error: command not recognized".to_string()
                    }
                    ParseError::SyntaxError { syntax } => format!("501 5.5.2 Syntax: {syntax}"),
                    ParseError::InvalidSenderAddress => {
                        "501 5.1.7 Bad sender address syntax".to_string()
                    }
                    ParseError::InvalidRecipientAddress => {
                        "501 5.1.3 Bad recipient address syntax".to_string()
                    }
                    ParseError::InvalidParameter { param } => {
                        format!("501 5.5.4 Invalid parameter {param}")
                    }
                    ParseError::UnsupportedParameter { param } => {
                        format!("555 5.5.4 Unsupported parameter {param}")
                    }
                    _ => "500 5.5.2 Error: bad syntax".to_string(),
                };
                warn!(
                    "bad command from [{}]: {}: {}",
                    self.peer.ip(),
                    String::from_utf8_lossy(line)
                        .trim_end()
                        .chars()
                        .take(80)
                        .collect::<String>(),
                    reply
                );
                self.reply(&reply);
                return Flow::More;
            }
        };
        match request {
            Request::Ehlo { host } => {
                self.count("ehlo");
                self.ehlo(host, true);
            }
            Request::Helo { host } => {
                self.count("helo");
                self.ehlo(host, false);
            }
            Request::StartTls => {
                self.count("starttls");
                return self.starttls().await;
            }
            Request::Auth {
                mechanism,
                initial_response,
            } => {
                self.count("auth");
                return self.auth_start(mechanism, initial_response).await;
            }
            Request::Mail { from } => {
                self.count("mail");
                self.mail_from(from).await;
            }
            Request::Rcpt { to } => {
                self.count("rcpt");
                self.rcpt_to(to).await;
            }
            Request::Data => {
                self.count("data");
                self.data();
            }
            Request::Bdat {
                chunk_size,
                is_last,
            } => {
                self.count("bdat");
                self.bdat(chunk_size, is_last);
            }
            Request::Rset => {
                self.count("rset");
                self.transaction = None;
                self.reply("250 2.0.0 Ok");
            }
            Request::Noop { .. } => {
                self.count("noop");
                self.reply("250 2.0.0 Ok");
            }
            Request::Vrfy { .. } => {
                self.count("vrfy");
                self.reply(
                    "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery",
                );
            }
            Request::Help { .. } => {
                self.count("help");
                self.reply("214 2.0.0 postwarden: see RFC 5321 and `man postwarden`");
            }
            Request::Quit => {
                self.count("quit");
                self.reply("221 2.0.0 Bye");
                return Flow::Close;
            }
            Request::Expn { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. }
            | Request::Lhlo { .. } => {
                self.count("unknown");
                self.errors += 1;
                self.reply("502 5.5.1 Error: command not implemented");
            }
        }
        Flow::More
    }

    fn ehlo(&mut self, host: String, esmtp: bool) {
        self.transaction = None;
        self.helo = Some(host);
        self.esmtp = esmtp;
        let hostname = self.settings.config.server.hostname.clone();
        if !esmtp {
            self.reply(&format!("250 {hostname}"));
            return;
        }
        let mut caps = vec![
            hostname,
            "PIPELINING".to_string(),
            format!("SIZE {}", self.limits().max_message_size),
        ];
        if !self.tls {
            caps.push("STARTTLS".into());
        }
        if self.kind.is_submission() && self.auth_allowed_here() && !self.authenticated {
            caps.push("AUTH PLAIN LOGIN".into());
        }
        caps.extend(
            [
                "ENHANCEDSTATUSCODES",
                "8BITMIME",
                "SMTPUTF8",
                "CHUNKING",
                "DSN",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        let n = caps.len();
        for (i, cap) in caps.iter().enumerate() {
            let sep = if i + 1 < n { '-' } else { ' ' };
            self.reply(&format!("250{sep}{cap}"));
        }
    }

    /// AUTH needs TLS, except on loopback when the config allows it.
    pub fn auth_allowed_here(&self) -> bool {
        self.tls || (self.peer.ip().is_loopback() && self.limits().allow_plaintext_auth_on_loopback)
    }

    async fn starttls(&mut self) -> Flow {
        if self.tls {
            self.errors += 1;
            self.reply("503 5.5.1 Error: TLS already active");
            return Flow::More;
        }
        self.reply("220 2.0.0 Ready to start TLS");
        if self.flush().await.is_err() {
            return Flow::Close;
        }
        // Anything the client pipelined after STARTTLS was sent in clear text
        // and must not be taken as said under TLS (RFC 3207 §4.2, CVE-2011-0411).
        self.input.clear();
        let Some(io) = self.io.take() else {
            return Flow::Close;
        };
        let timeout = Duration::from_secs(self.limits().idle_timeout);
        match tokio::time::timeout(timeout, self.ctx.tls.accept(io)).await {
            Ok(Ok(stream)) => {
                self.io = Some(Box::new(stream));
                self.tls = true;
                // RFC 3207 §4.2: forget what the client said before TLS.
                self.helo = None;
                self.esmtp = false;
                self.transaction = None;
                Flow::More
            }
            Ok(Err(e)) => {
                warn!("STARTTLS handshake failed with [{}]: {e}", self.peer.ip());
                Flow::Close
            }
            Err(_) => {
                warn!("STARTTLS handshake timed out with [{}]", self.peer.ip());
                Flow::Close
            }
        }
    }

    async fn auth_start(&mut self, mechanism: u64, initial: String) -> Flow {
        let refusal = if !self.kind.is_submission() {
            Some("503 5.5.1 Error: authentication not enabled on this port")
        } else if self.authenticated {
            Some("503 5.5.1 Error: already authenticated")
        } else if self.helo.is_none() || !self.esmtp {
            Some("503 5.5.1 Error: send EHLO first")
        } else if self.transaction.is_some() {
            Some("503 5.5.1 Error: MAIL transaction in progress")
        } else if !self.auth_allowed_here() {
            Some("538 5.7.11 Encryption required for requested authentication mechanism")
        } else {
            None
        };
        if let Some(r) = refusal {
            self.errors += 1;
            self.reply(r);
            return Flow::More;
        }
        if self.ctx.auth_throttle.locked(self.peer.ip()) {
            warn!("[{}]: AUTH refused: too many failures", self.peer.ip());
            self.reply(
                "454 4.7.0 Too many failed authentications from your address, try again later",
            );
            return Flow::More;
        }
        match mechanism {
            smtp_proto::AUTH_PLAIN => {
                if initial.is_empty() {
                    self.state = State::AuthPlain;
                    self.reply("334 ");
                    Flow::More
                } else {
                    self.auth_plain(&initial).await
                }
            }
            smtp_proto::AUTH_LOGIN => {
                if initial.is_empty() {
                    self.state = State::AuthLoginUser;
                    self.reply("334 VXNlcm5hbWU6");
                } else {
                    self.auth_login_user(&initial);
                }
                Flow::More
            }
            _ => {
                self.errors += 1;
                self.reply("504 5.5.4 Unrecognized authentication type (use PLAIN or LOGIN)");
                Flow::More
            }
        }
    }

    async fn auth_continuation(&mut self, line: &[u8]) -> Flow {
        let text = String::from_utf8_lossy(line).trim().to_string();
        let state = std::mem::replace(&mut self.state, State::Command);
        if text == "*" {
            self.reply("501 5.0.0 Authentication cancelled");
            return Flow::More;
        }
        match state {
            State::AuthPlain => self.auth_plain(&text).await,
            State::AuthLoginUser => {
                self.auth_login_user(&text);
                Flow::More
            }
            State::AuthLoginPass(user) => match auth::decode_b64(&text) {
                Some(pass) => {
                    let pass = String::from_utf8_lossy(&pass).into_owned();
                    self.auth_finish("LOGIN", &user, &pass).await
                }
                None => {
                    self.errors += 1;
                    self.reply("501 5.5.2 Cannot decode response");
                    Flow::More
                }
            },
            _ => Flow::More,
        }
    }

    fn auth_login_user(&mut self, b64: &str) {
        match auth::decode_b64(b64) {
            Some(user) => {
                self.state = State::AuthLoginPass(String::from_utf8_lossy(&user).into_owned());
                self.reply("334 UGFzc3dvcmQ6");
            }
            None => {
                self.errors += 1;
                self.reply("501 5.5.2 Cannot decode response");
            }
        }
    }

    async fn auth_plain(&mut self, b64: &str) -> Flow {
        let decoded = if b64 == "=" {
            Some(Vec::new())
        } else {
            auth::decode_b64(b64)
        };
        let Some(decoded) = decoded else {
            self.errors += 1;
            self.reply("501 5.5.2 Cannot decode response");
            return Flow::More;
        };
        match auth::parse_plain(&decoded) {
            Some((user, pass)) => self.auth_finish("PLAIN", &user, &pass).await,
            None => {
                self.errors += 1;
                self.reply("501 5.5.2 Malformed PLAIN response");
                Flow::More
            }
        }
    }

    async fn auth_finish(&mut self, method: &str, user: &str, pass: &str) -> Flow {
        let ok = auth::verify(
            &self.settings.config,
            &self.ctx.auth_throttle.verified,
            user,
            pass,
        )
        .await;
        if ok {
            self.ctx.auth_throttle.succeed(self.peer.ip());
            self.authenticated = true;
            self.tenant = Some(user.to_string());
            info!(
                "[{}]: sasl_method={method}, sasl_username={user}",
                self.peer.ip()
            );
            self.reply("235 2.7.0 Authentication successful");
        } else {
            let delay = self.ctx.auth_throttle.fail(self.peer.ip());
            warn!(
                "[{}]: SASL {method} authentication failed for {:?}",
                self.peer.ip(),
                user.chars().take(64).collect::<String>()
            );
            self.errors += 1;
            tokio::time::sleep(delay).await;
            self.reply("535 5.7.8 Error: authentication credentials invalid");
        }
        Flow::More
    }

    async fn mail_from(&mut self, from: smtp_proto::MailFrom<String>) {
        if self.helo.is_none() {
            self.errors += 1;
            self.reply("503 5.5.1 Error: send HELO/EHLO first");
            return;
        }
        if self.transaction.is_some() {
            self.errors += 1;
            self.reply("503 5.5.1 Error: nested MAIL command");
            return;
        }
        if self.kind.is_submission() && self.tenant.is_none() {
            self.errors += 1;
            self.reply("530 5.7.0 Authentication required");
            return;
        }
        let max = self.limits().max_message_size;
        if from.size > max {
            self.reply("552 5.3.4 Message size exceeds fixed maximum message size");
            return;
        }
        if let Some(reply) = self.storage_refusal(from.size) {
            warn!(
                "NOQUEUE: reject: MAIL from [{}]: {reply}; from=<{}>",
                self.peer.ip(),
                from.address
            );
            self.reply(&reply);
            return;
        }
        if !from.address.is_empty() && super::data::relay_trick(&from.address).is_some() {
            self.errors += 1;
            self.reply("501 5.1.7 Bad sender address syntax");
            return;
        }
        if let Some(tenant) = self.tenant.clone() {
            if let Some(reply) = self.tenant_refusal(&tenant) {
                warn!(
                    "NOQUEUE: reject: MAIL from [{}]: {reply}; from=<{}> tenant={tenant}",
                    self.peer.ip(),
                    from.address
                );
                self.reply(&reply);
                return;
            }
        }
        self.transaction = Some(Transaction {
            sender: from.address,
            flags: from.flags,
            env_id: from.env_id,
            recipients: Vec::new(),
            message: Vec::new(),
            too_big: false,
            chunking: false,
        });
        self.reply("250 2.1.0 Ok");
    }

    async fn rcpt_to(&mut self, to: smtp_proto::RcptTo<String>) {
        let Some(txn) = self.transaction.as_ref() else {
            self.errors += 1;
            self.reply("503 5.5.1 Error: need MAIL command");
            return;
        };
        let (count, sender) = (txn.recipients.len(), txn.sender.clone());
        if count >= self.limits().max_recipients {
            self.reply("452 4.5.3 Error: too many recipients");
            return;
        }
        if let Some(reply) = self.recipient_refusal(&to.address) {
            let code = reply
                .split("policy: ")
                .nth(1)
                .and_then(|r| r.split(':').next())
                .unwrap_or("recipient.refused");
            crate::metrics::rejected(code);
            warn!(
                "NOQUEUE: reject: RCPT from [{}]: {reply}; from=<{sender}> to=<{}>",
                self.peer.ip(),
                to.address
            );
            self.errors += usize::from(reply.starts_with("501"));
            self.reply(&reply);
            return;
        }
        let mut recipient = Recipient::new(to.address);
        recipient.orcpt = to.orcpt;
        recipient.notify = to.flags;
        if let Some(txn) = self.transaction.as_mut() {
            txn.recipients.push(recipient);
        }
        self.reply("250 2.1.5 Ok");
    }

    fn data(&mut self) {
        match self.transaction.as_ref() {
            None => {
                self.errors += 1;
                self.reply("503 5.5.1 Error: need MAIL command");
            }
            Some(t) if t.recipients.is_empty() => {
                self.errors += 1;
                self.reply("554 5.5.1 Error: no valid recipients");
            }
            Some(t) if t.chunking => {
                self.errors += 1;
                self.reply("503 5.5.1 Error: DATA after BDAT");
            }
            Some(_) => {
                self.state = State::Data(DataReceiver::new());
                self.reply("354 End data with <CR><LF>.<CR><LF>");
            }
        }
    }

    fn bdat(&mut self, chunk_size: usize, is_last: bool) {
        let valid = self
            .transaction
            .as_ref()
            .is_some_and(|t| !t.recipients.is_empty());
        if let Some(t) = self.transaction.as_mut() {
            t.chunking = true;
        }
        self.state = State::Bdat {
            receiver: BdatReceiver::new(chunk_size, is_last),
            discard: !valid,
        };
    }

    /// Moves message bytes from the input into the transaction; true when the
    /// end of DATA or of the BDAT chunk was reached.
    fn ingest_message_bytes(&mut self) -> bool {
        let max = self.limits().max_message_size;
        let mut scratch = Vec::new();
        let (done, consumed) = {
            let mut iter = self.input.iter();
            let start = iter.len();
            let target = match self.transaction.as_mut() {
                Some(t) if !matches!(self.state, State::Bdat { discard: true, .. }) => {
                    &mut t.message
                }
                _ => &mut scratch,
            };
            let done = match &mut self.state {
                State::Data(r) => r.ingest(&mut iter, target),
                State::Bdat { receiver, .. } => receiver.ingest(&mut iter, target),
                _ => true,
            };
            (done, start - iter.len())
        };
        self.input.drain(..consumed);
        if let Some(t) = self.transaction.as_mut() {
            if t.message.len() > max {
                // Keep reading to stay in step, but keep nothing.
                t.too_big = true;
                t.message.clear();
            }
        }
        done
    }

    async fn end_of_message(&mut self) -> Flow {
        let state = std::mem::replace(&mut self.state, State::Command);
        match state {
            State::Bdat { receiver, discard } => {
                if discard {
                    self.errors += 1;
                    if self.transaction.is_none() {
                        self.reply("503 5.5.1 Error: need MAIL command");
                    } else {
                        self.reply("554 5.5.1 Error: no valid recipients");
                    }
                    return Flow::More;
                }
                if !receiver.is_last {
                    let size = self.transaction.as_ref().map_or(0, |t| t.message.len());
                    self.reply(&format!("250 2.0.0 {size} octets received"));
                    return Flow::More;
                }
            }
            State::Data(_) => {}
            _ => return Flow::More,
        }
        let Some(txn) = self.transaction.take() else {
            return Flow::More;
        };
        if txn.too_big {
            warn!(
                "NOQUEUE: reject: END-OF-MESSAGE from [{}]: 552 5.3.4 message too big; from=<{}>",
                self.peer.ip(),
                txn.sender
            );
            self.reply("552 5.3.4 Message size exceeds fixed maximum message size");
            return Flow::More;
        }
        let reply = self.accept_message(txn).await;
        self.reply(&reply);
        Flow::More
    }

    pub fn protocol(&self) -> &'static str {
        // RFC 3848 protocol types for the Received: header.
        match (self.esmtp, self.tls, self.authenticated) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, true, false) => "ESMTPS",
            (true, false, true) => "ESMTPA",
            (true, true, true) => "ESMTPSA",
        }
    }
}

/// The refusal of a MAIL or RCPT with a source route, if the line has one.
fn source_route(line: &[u8]) -> Option<&'static str> {
    if line.len() < 10 {
        return None;
    }
    let upper = String::from_utf8_lossy(&line[..line.len().min(300)]).to_ascii_uppercase();
    let compact: String = upper.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.starts_with("RCPTTO:<@") {
        Some("550 5.7.1 Error: relaying denied (source routes are not accepted)")
    } else if compact.starts_with("MAILFROM:<@") {
        Some("501 5.1.7 Bad sender address syntax (source routes are not accepted)")
    } else {
        None
    }
}

fn memchr_lf(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}
