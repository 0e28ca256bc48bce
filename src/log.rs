//! Logging: one line per event, queue id first, like Postfix's mail.log;
//! Postfix's own syslog lines (`--log-format postfix`), to standard error or
//! to the local syslog socket (`--log-to syslog`); or JSON lines for log
//! shippers.
//!
//! Each event names the Postfix service that would have logged it (a
//! `service` field: smtpd for connections, `client=` and `NOQUEUE: reject`,
//! cleanup for `message-id=`, qmgr for `from=<..>, size=..` and `removed`,
//! smtp for `to=<..>, relay=.., status=..`, bounce for the sender's
//! notification); events without one take their module's ([`service_of`]).
//! Postfix's log tools (pflogsumm, qshape's readers, fail2ban's postfix
//! filters) key on `NAME/SERVICE[PID]:` and on these texts.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::OnceLock;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `2026-11-24T12:00:00Z  INFO 4Hx2Kq9: from=<..>, size=.., nrcpt=..`
    Text,
    Json,
    /// `Nov 24 12:00:00 mx1 postwarden/qmgr[812]: 4Hx2Kq9: from=<..>, size=.., nrcpt=..`
    Postfix,
}

/// Where the lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogTarget {
    Stderr,
    /// The local syslog socket (/dev/log), facility mail: rsyslog files the
    /// lines into /var/log/mail.log with the other mail daemons'. Implies
    /// the postfix format.
    Syslog,
}

/// The syslog socket of the local host (rsyslog's, or journald's, which
/// hands the lines on to rsyslog).
pub const SYSLOG_SOCKET: &str = "/dev/log";

/// Installs the global subscriber; `RUST_LOG` overrides the level (default
/// info). `syslog_socket` is where `LogTarget::Syslog` sends (default
/// [`SYSLOG_SOCKET`]).
pub fn init(format: LogFormat, target: LogTarget, syslog_socket: Option<std::path::PathBuf>) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,hickory_proto=warn,hickory_resolver=warn"));
    // Under systemd, standard error goes to journald, which stamps each line
    // itself: a second timestamp would only be noise.
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = match (format, target) {
        (_, LogTarget::Syslog) => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(Syslog {
                path: syslog_socket.unwrap_or_else(|| SYSLOG_SOCKET.into()),
            })
            .event_format(Postfix::new(Stamp::Syslog))
            .try_init(),
        (LogFormat::Postfix, LogTarget::Stderr) => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .event_format(Postfix::new(if journald {
                Stamp::None
            } else {
                Stamp::File
            }))
            .try_init(),
        (LogFormat::Json, LogTarget::Stderr) => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_target(false)
            .json()
            .flatten_event(true)
            .try_init(),
        (LogFormat::Text, LogTarget::Stderr) if journald => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .with_target(false)
            .without_time()
            .compact()
            .try_init(),
        (LogFormat::Text, LogTarget::Stderr) => tracing_subscriber::fmt()
            .with_env_filter(filter)
            // Colours only on a terminal: a log file gets plain text.
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .with_target(false)
            .compact()
            .try_init(),
    };
}

/// The Postfix service an event without a `service` field is logged under,
/// from the module that logged it.
pub fn service_of(meta: &Metadata<'_>) -> &'static str {
    let path = meta.module_path().unwrap_or_default();
    let part = path.split("::").nth(1).unwrap_or_default();
    match part {
        "smtp" | "accept" => "smtpd",
        "queue" => "qmgr",
        "feedback" => "bounce",
        "http" => "http",
        "webhooks" => "webhooks",
        "cli" => "postwarden",
        _ => "master",
    }
}

/// How a Postfix-format line is stamped.
#[derive(Clone, Copy)]
enum Stamp {
    /// `Mmm dd hh:mm:ss HOST ` as syslog writes it into a file.
    File,
    /// `Mmm dd hh:mm:ss ` for the syslog socket, which adds the host.
    Syslog,
    /// Nothing: journald stamps the line.
    None,
}

/// Postfix's syslog line (`Mmm dd hh:mm:ss HOST postwarden/SERVICE[PID]: `
/// then the message, `warning: ` before a warning's), in local time.
struct Postfix {
    stamp: Stamp,
    host: String,
    pid: u32,
    offset: time::UtcOffset,
}

impl Postfix {
    fn new(stamp: Stamp) -> Postfix {
        // The host name as syslog writes it: the first label. Linux only
        // (this crate's platform); "localhost" where it cannot be read.
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .and_then(|h| h.trim().split('.').next().map(str::to_string))
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        Postfix {
            stamp,
            host,
            pid: std::process::id(),
            // Read once, while the process has one thread (the local offset
            // cannot be read safely later); UTC where it cannot be read.
            offset: time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC),
        }
    }

    fn timestamp(&self) -> String {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let now = time::OffsetDateTime::now_utc().to_offset(self.offset);
        format!(
            "{} {:>2} {:02}:{:02}:{:02}",
            MONTHS[usize::from(u8::from(now.month())) - 1],
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        )
    }
}

/// An event's message and `service` field.
#[derive(Default)]
struct Fields {
    message: String,
    service: Option<String>,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "service" => self.service = Some(value.to_string()),
            "message" => self.message = value.to_string(),
            name => {
                let _ = write!(self.rest, " {name}={value}");
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "service" => self.service = Some(format!("{value:?}")),
            "message" => self.message = format!("{value:?}"),
            name => {
                let _ = write!(self.rest, " {name}={value:?}");
            }
        }
    }
}

impl<S, N> FormatEvent<S, N> for Postfix
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let service = fields
            .service
            .as_deref()
            .unwrap_or_else(|| service_of(meta));
        match self.stamp {
            Stamp::File => write!(writer, "{} {} ", self.timestamp(), self.host)?,
            Stamp::Syslog => write!(writer, "{} ", self.timestamp())?,
            Stamp::None => {}
        }
        write!(writer, "postwarden/{service}[{}]: ", self.pid)?;
        // Postfix logs a refusal as a plain line ("NOQUEUE: reject: RCPT
        // from ..."), which postwarden logs as a warning: no severity there.
        let refusal = fields.message.contains(": reject: ");
        match *meta.level() {
            Level::ERROR => write!(writer, "error: ")?,
            Level::WARN if !refusal => write!(writer, "warning: ")?,
            _ => {}
        }
        writeln!(writer, "{}{}", fields.message, fields.rest)
    }
}

/// Lines to the local syslog socket, facility mail, one datagram each
/// (RFC 3164 as the local socket takes it: `<PRI>` then the line).
struct Syslog {
    path: std::path::PathBuf,
}

/// One event's line, sent when dropped.
struct SyslogLine<'a> {
    priority: u8,
    line: Vec<u8>,
    path: &'a std::path::Path,
}

impl std::io::Write for SyslogLine<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for SyslogLine<'_> {
    fn drop(&mut self) {
        let body = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
        if body.is_empty() {
            return;
        }
        let mut datagram = format!("<{}>", self.priority).into_bytes();
        datagram.extend_from_slice(body);
        if syslog_socket()
            .and_then(|s| s.send_to(&datagram, self.path).ok())
            .is_none()
        {
            // No syslog daemon, or its queue full: the line is not lost, it
            // goes to stderr.
            let _ = std::io::stderr().write_all(&self.line);
        }
    }
}

/// The socket lines are sent from. Non-blocking: a local datagram socket
/// blocks the sender while the syslog daemon's queue is full, and a stuck
/// syslog daemon must not stop mail; such a line goes to stderr instead.
fn syslog_socket() -> Option<&'static std::os::unix::net::UnixDatagram> {
    static SOCKET: OnceLock<Option<std::os::unix::net::UnixDatagram>> = OnceLock::new();
    SOCKET
        .get_or_init(|| {
            let socket = std::os::unix::net::UnixDatagram::unbound().ok()?;
            socket.set_nonblocking(true).ok()?;
            Some(socket)
        })
        .as_ref()
}

/// Facility mail (2) and the level's severity (RFC 5424 §6.2.1).
fn priority(level: &Level) -> u8 {
    const MAIL: u8 = 2 << 3;
    MAIL + match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

impl<'a> MakeWriter<'a> for Syslog {
    type Writer = SyslogLine<'a>;

    fn make_writer(&'a self) -> SyslogLine<'a> {
        SyslogLine {
            priority: priority(&Level::INFO),
            line: Vec::new(),
            path: &self.path,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> SyslogLine<'a> {
        SyslogLine {
            priority: priority(meta.level()),
            line: Vec::new(),
            path: &self.path,
        }
    }
}
