//! The command line: every subcommand and its options, as clap reads them
//! (DESIGN.md "Interfaces other tools rely on").

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use postwarden::log::{LogFormat, LogTarget};

#[derive(Parser)]
#[command(
    name = "postwarden",
    version,
    about = "A mail transfer agent for permission-based senders, with the anti-spam policy built in"
)]
pub struct Cli {
    /// Log format: one text line per event, Postfix's syslog lines
    /// (`Mmm dd hh:mm:ss HOST postwarden/SERVICE[PID]: ...`, which pflogsumm
    /// reads with --syslog-name=postwarden), or JSON lines.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Where the log goes: standard error, or the local syslog socket
    /// (/dev/log, facility mail, Postfix's format), from where rsyslog
    /// writes it into /var/log/mail.log.
    #[arg(long, global = true, value_enum, default_value = "stderr")]
    pub log_to: LogTarget,
    /// The syslog socket for --log-to syslog [default: /dev/log]
    #[arg(long, global = true)]
    pub syslog_socket: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the daemon: SMTP listeners, HTTP, delivery.
    Serve {
        /// Configuration file [default: conf/postwarden.toml, else the embedded defaults]
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Read a password on standard input and print an argon2id hash for `smtp_password_hash`.
    HashPassword,
    /// Make a random admin API token and print it with the `api_token_sha256` line for the config.
    ApiToken,
    /// Run the submission policy on a message, offline; exit 0 accept, 1 reject, 2 error.
    Check {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the verdict as JSON.
        #[arg(long)]
        json: bool,
        /// The message file (RFC 5322).
        message: PathBuf,
        /// Recipients to check consent for (reads the spool); none: message rules only.
        #[arg(long = "rcpt")]
        rcpt: Vec<String>,
    },
    /// Inspect and manage the queue.
    Queue {
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: QueueAction,
    },
    /// Contacts and their consent (set, show, list).
    Contacts {
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: ContactsAction,
    },
    /// The suppression list (add, list, remove).
    Suppress {
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: SuppressAction,
    },
    /// Tenant state: stats, suspend, resume.
    Tenant {
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: TenantAction,
    },
    /// DNS readiness of the sender and feedback domains.
    Domains {
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: DomainsAction,
    },
    /// DKIM keys: make one and print the DNS record to publish.
    Dkim {
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: DkimAction,
    },
    /// The abuse desk: complaint and abuse reports as received, with whom they name.
    Abuse {
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: AbuseAction,
    },
    /// The spool: what it keeps of each kind, how old, and the disk it takes.
    Spool {
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: SpoolAction,
    },
    /// Webhook delivery per tenant: list (backlog, failures), retry (now).
    Webhooks {
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: WebhooksAction,
    },
    /// Egress paths of the running daemon: status, suspend, resume.
    Shaping {
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: ShapingAction,
    },
    /// Feedback messages (DSN, ARF): parse one offline.
    Feedback {
        #[command(subcommand)]
        action: FeedbackAction,
    },
}

#[derive(Subcommand)]
pub enum ConfigAction {
    /// Exit 0 if the configuration is valid, else 1 with each problem on its own line.
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum QueueAction {
    /// List queued messages with per-recipient state.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one queued message: envelope, recipients, headers.
    Show {
        queue_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Hold messages (not delivered until released).
    Hold {
        queue_id: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Release held messages.
    Release {
        queue_id: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Delete messages from the queue.
    Delete {
        queue_id: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Schedule messages for immediate delivery.
    Flush {
        queue_id: Option<String>,
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand)]
pub enum ContactsAction {
    /// Record a consent state for an address, with its evidence.
    Set {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        list: String,
        /// none, single_opt_in, double_opt_in_pending, double_opt_in_confirmed, unsubscribed
        #[arg(long)]
        state: String,
        /// Where the consent came from (e.g. "signup form 2026-03"); kept as evidence.
        #[arg(long)]
        source: String,
        /// The IP address the consent was given from, if known.
        #[arg(long)]
        ip: Option<String>,
        address: String,
    },
    /// Show one address: state per list, evidence, suppression.
    Show {
        #[arg(long)]
        tenant: String,
        address: String,
        #[arg(long)]
        json: bool,
    },
    /// List a tenant's contacts.
    List {
        #[arg(long)]
        tenant: String,
        /// Only this list.
        #[arg(long)]
        list: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Export the evidence of one address as JSON ("prove that this person opted in").
    Export {
        #[arg(long)]
        tenant: String,
        address: String,
    },
    /// Print a list's sign-up form address, its consent wording and the HTML
    /// to embed the form on another site (one of the tenant's form_origins).
    Form {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        list: String,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Import contacts from CSV: email,state,opted_in_at,opted_in_ip,confirmed_at.
    /// Every refused row is reported; nothing is imported unless --skip-refused.
    Import {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        list: String,
        /// Where the addresses were collected; kept as evidence.
        #[arg(long)]
        source: String,
        /// Confirm the addresses were collected with lawful opt-in and their
        /// owners were told of the move (needed for opt-in rows).
        #[arg(long)]
        attest: bool,
        /// One state for every row (e.g. none), instead of the file's column.
        #[arg(long)]
        state: Option<String>,
        /// Import the good rows even if some are refused.
        #[arg(long)]
        skip_refused: bool,
        #[arg(long)]
        json: bool,
        file: PathBuf,
    },
    /// Delete an address from one list or all lists (suppression stays).
    Delete {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        list: Option<String>,
        address: String,
    },
    /// Erase an address (GDPR): every record goes, a hash stays suppressed.
    Erase {
        #[arg(long)]
        tenant: String,
        address: String,
    },
}

#[derive(Subcommand)]
pub enum SuppressAction {
    Add {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "admin")]
        reason: String,
        #[arg(long)]
        detail: Option<String>,
        #[arg(long)]
        json: bool,
        address: String,
    },
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
    },
    Remove {
        #[arg(long)]
        tenant: String,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: String,
        /// Needed to remove a complaint suppression.
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
        address: String,
    },
}

#[derive(Subcommand)]
pub enum DomainsAction {
    /// SPF, DKIM and DMARC of each sender domain and the feedback domain's
    /// MX, looked up with the daemon's resolver; exit 1 on an error.
    Check {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum DkimAction {
    /// Write a new private key (PEM, mode 0600) and print the TXT record
    /// and the tenant's config lines.
    Keygen {
        #[arg(long)]
        tenant: String,
        /// The signing domain [default: the tenant's dkim_domain, else its first sender domain]
        #[arg(long)]
        domain: Option<String>,
        /// The selector [default: pw + this year and month, e.g. pw202612]
        #[arg(long)]
        selector: Option<String>,
        /// rsa-sha256 (what every receiver verifies) or ed25519-sha256 (RFC 8463)
        #[arg(long, default_value = "rsa-sha256")]
        algorithm: String,
        /// RSA key size
        #[arg(long, default_value_t = 2048)]
        bits: usize,
        /// Folder for the key file [default: the configuration's folder]
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The key to rotate to: print dkim_next_ lines (publish the record
        /// now, switch with `dkim rotate` once it is seen)
        #[arg(long)]
        next: bool,
    },
    /// Switch the tenant to its next key once its record is published (the
    /// configuration file is changed in place; reload after), keeping the
    /// old selector published for the overlap.
    Rotate {
        #[arg(long)]
        tenant: String,
        /// Days the old selector's record stays published after the switch
        #[arg(long, default_value_t = 7)]
        overlap: u32,
    },
}

#[derive(Subcommand)]
pub enum TenantAction {
    Stats {
        tenant: String,
        #[arg(long)]
        json: bool,
    },
    Suspend {
        tenant: String,
        #[arg(long)]
        reason: String,
    },
    Resume {
        tenant: String,
    },
}

#[derive(Subcommand)]
pub enum AbuseAction {
    List {
        #[arg(long)]
        json: bool,
    },
    /// One case with the report as received.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum SpoolAction {
    /// Records and bytes per kind, the oldest of each, the queue, the disk
    /// and its free space (counts every retained record: a scan).
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// One retention pass now, with the daemon stopped (a running daemon
    /// makes one every `[retention] interval` seconds itself).
    Prune {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum WebhooksAction {
    List {
        #[arg(long)]
        json: bool,
    },
    /// Try a tenant's waiting events now instead of after the backoff.
    Retry { tenant: String },
}

#[derive(Subcommand)]
pub enum ShapingAction {
    /// The egress sources, the warm-ups under way, and each path's open
    /// connections, messages sent, waiting recipients and holds.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Stop sending on a path (a provider's name, or default:DOMAIN), for
    /// a time or until resumed.
    Suspend {
        path: String,
        /// The egress source; absent: every source of the node.
        #[arg(long)]
        source: Option<String>,
        /// Seconds; absent: until `shaping resume`.
        #[arg(long)]
        duration: Option<u64>,
        #[arg(long)]
        reason: String,
    },
    /// End a path's suspension and throttle now.
    Resume {
        path: String,
        /// The egress source; absent: every source of the node.
        #[arg(long)]
        source: Option<String>,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum FeedbackAction {
    /// Print what the feedback processor would record for a message.
    Parse {
        #[arg(long)]
        json: bool,
        /// Name the rule that decided each recipient's class and reason.
        #[arg(long)]
        explain: bool,
        /// A site rules file to use before the shipped ones, as the
        /// daemon's `[feedback] bounce_rules`.
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
        message: PathBuf,
    },
}
