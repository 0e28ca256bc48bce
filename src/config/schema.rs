//! The configuration's schema: one struct per TOML section, as serde reads
//! it. Defaults are in `defaults.rs`, the checks in `validate.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub server: Server,
    #[serde(default)]
    pub listen: Listen,
    #[serde(default)]
    pub tls: Option<Tls>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub delivery: Delivery,
    pub feedback: Feedback,
    #[serde(default)]
    pub policy: PolicySettings,
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantConfig>,
    #[serde(default)]
    pub store: StoreSettings,
    #[serde(default)]
    pub retention: Retention,
    /// The folder of the configuration file; relative paths are resolved against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The file it was read from (None: the embedded defaults); SIGHUP reads it again.
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// The shipped shaping file with `[delivery] shaping` over it.
    #[serde(skip)]
    pub shaping: std::sync::Arc<super::shaping::Shaping>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Server {
    pub hostname: String,
    #[serde(default = "default_spool")]
    pub spool_dir: PathBuf,
    /// HMAC key for VERP, unsubscribe and confirmation tokens. Absent: one is
    /// made at first start and kept in the spool.
    #[serde(default)]
    pub secret: Option<String>,
    /// SHA-256 (hex) of a bearer token for `GET /metrics` (a Prometheus
    /// scrape job); the daemon's admin token works too.
    #[serde(default)]
    pub metrics_token_sha256: Option<String>,
}

/// Where the state a fleet shares lives (`[store]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct StoreSettings {
    pub backend: StoreBackend,
    /// `postgres://user@host:port/db` or `postgres:///db?host=/run/postgresql`;
    /// required with backend "postgres".
    pub url: Option<String>,
    /// Connections in the pool (PostgreSQL).
    pub pool_size: usize,
    /// Seconds a PostgreSQL call may take before it fails (RCPT then gets 451).
    pub timeout: u64,
    /// Entries in the node-local cache of contact and suppression look-ups
    /// (0: no cache).
    pub cache_entries: usize,
    /// Bytes the spool's RocksDB may keep in memory: its memtables (eight
    /// ninths: writes not yet flushed) and its block cache (one ninth),
    /// together.
    pub memory_budget: u64,
    /// PEM file of the certificate authority that signed PostgreSQL's
    /// certificate (with `sslmode=require` in the url; without it, the public
    /// roots).
    pub ca: Option<PathBuf>,
}

/// How long each kind of record is kept (`[retention]`), in seconds; the
/// consent evidence is not here: it stays as long as its contact does.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Retention {
    /// Tracking records (queue id → tenant, list, recipients): as long as a
    /// bounce or complaint about the message can still arrive.
    pub tracking: u64,
    /// The marks that count each bounce or complaint once: at least as long
    /// as the tracking record they protect.
    pub feedback_marks: u64,
    /// Events, once every tenant webhook has taken them.
    pub events: u64,
    /// Events at the latest, taken or not (a webhook that never answers).
    pub events_max: u64,
    /// Abuse desk cases: complaints, abuse forwards, unparsable reports.
    pub abuse_cases: u64,
    /// Days of per-day tenant counts (the suspension window reads the last
    /// few, the history the rest).
    pub tenant_history_days: u64,
    /// Double opt-in contacts that never confirmed: deleted this long after
    /// their sign-up (no consent, so no reason to keep the address).
    pub unconfirmed: u64,
    /// Seconds between two pruning passes.
    pub interval: u64,
    /// Records deleted per step of a pass (a pass is many steps).
    pub batch: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    Rocksdb,
    Postgres,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Listen {
    pub submission: Option<String>,
    pub submissions: Option<String>,
    pub inbound: Option<String>,
    pub http: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Session limits (RFC 5321 §4.5.3 gives the minimums a server must accept).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Seconds that SIGTERM waits for open SMTP sessions to end.
    pub shutdown_grace: u64,
    /// Longest command line in octets, CRLF included (RFC 5321 §4.5.3.1.4: at least 512).
    pub max_line_length: usize,
    /// Largest message in octets, announced in EHLO SIZE.
    pub max_message_size: usize,
    pub max_recipients: usize,
    /// Bad commands in one session before 421 and close.
    pub max_errors: usize,
    /// Seconds to wait for a command (RFC 5321 §4.5.3.2.7: at least 5 minutes).
    pub idle_timeout: u64,
    /// Seconds to wait for each chunk of DATA (RFC 5321 §4.5.3.2.5: 3 minutes).
    pub data_timeout: u64,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// AUTH failures from one IP before it is refused for `auth_lockout` seconds.
    pub max_auth_failures: u32,
    pub auth_lockout: u64,
    /// Allow AUTH without TLS on loopback connections (local tools, tests).
    pub allow_plaintext_auth_on_loopback: bool,
    /// Confirmation mails to one address per day over all tenants together:
    /// a victim's address posted to every tenant's form ("subscription
    /// bombing") gets no more than this.
    pub confirm_limit_per_address_site: u32,
    /// Free bytes the spool's file system must keep beyond the message at
    /// hand; less gets `452 4.3.1` (Postfix's queue_minfree). Absent: 1.5 ×
    /// `max_message_size`; 0: no guard, only the store's own write errors.
    pub min_free_space: Option<u64>,
}

impl Limits {
    /// The free space below which mail is refused with `452 4.3.1`.
    pub fn required_free_space(&self) -> u64 {
        self.min_free_space
            .unwrap_or(self.max_message_size as u64 / 2 * 3)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Delivery {
    /// Smarthost "host:port"; absent: MX look-up.
    pub relay_host: Option<String>,
    /// Per-domain static routes, "domain" = "host:port".
    pub routes: BTreeMap<String, String>,
    /// DNS servers "ip:port" for MX look-ups; empty: the system's resolv.conf.
    pub nameservers: Vec<String>,
    /// Simultaneous connections per destination domain.
    pub max_connections_per_domain: usize,
    /// Messages sent over one connection before it is closed.
    pub max_messages_per_connection: usize,
    /// Retry backoff: first delay and cap, in seconds; the delay doubles each time.
    pub retry_base: u64,
    pub retry_max: u64,
    /// Seconds after which a recipient that still fails is given up (5 days).
    pub expiry: u64,
    pub connect_timeout: u64,
    pub command_timeout: u64,
    /// Domains to which delivery needs STARTTLS.
    pub require_tls: Vec<String>,
    /// Port of remote MX hosts (25; tests may change it).
    pub mx_port: u16,
    /// A traffic-shaping file over the shipped one, key by key.
    pub shaping: Option<PathBuf>,
    /// Egress sources by name: the local addresses delivery sends from.
    /// None configured: one source, `default`, the address the system picks.
    pub sources: BTreeMap<String, Source>,
}

/// An egress source: a local address to send from and the name it gives.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Source {
    /// The local IP address connections are bound to.
    pub address: String,
    /// The name said in EHLO; empty: `[server] hostname`. It should be the
    /// address's reverse DNS name.
    pub ehlo: String,
    /// false: out of rotation; no new delivery uses it.
    pub enabled: bool,
    /// A new address: it starts on the warm-up schedule of the shaping file.
    pub warmup: bool,
}

/// The egress source of a node with no `[delivery.sources]`.
pub const DEFAULT_SOURCE: &str = "default";

/// An egress source as delivery and the status use it: a configured one
/// with its EHLO name resolved, or the implicit `default`.
#[derive(Debug, Clone, Serialize)]
pub struct EgressSource {
    pub name: String,
    /// None: the address the system picks.
    pub address: Option<std::net::IpAddr>,
    pub ehlo: String,
    pub enabled: bool,
    pub warmup: bool,
}

impl Default for Source {
    fn default() -> Self {
        Source {
            address: String::new(),
            ehlo: String::new(),
            enabled: true,
            warmup: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Feedback {
    /// The domain of VERP bounce addresses, fbl@, abuse@ and unsubscribe+TOKEN@.
    pub domain: String,
    /// Local parts that receive ARF feedback-loop reports.
    #[serde(default = "default_fbl")]
    pub fbl_addresses: Vec<String>,
    /// Public base URL of the HTTP listener, used in managed unsubscribe links.
    #[serde(default)]
    pub public_url: Option<String>,
    /// A site's bounce classification rules, tried before the shipped
    /// conf/bounce-rules.toml (same format).
    #[serde(default)]
    pub bounce_rules: Option<std::path::PathBuf>,
}

/// Site-wide policy settings shared by every tenant.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PolicySettings {
    /// Regular expressions of deceptive subjects, added to the shipped list.
    pub deceptive_subjects: Vec<String>,
    /// Use the shipped list of deceptive subject patterns.
    pub builtin_deceptive_subjects: bool,
    /// Names a From display name or Subject must not imitate with look-alike
    /// characters, added to the shipped list and the tenants' own names.
    pub protected_names: Vec<String>,
    /// Use the shipped list of often imitated names (banks, parcel
    /// services, large platforms).
    pub builtin_protected_names: bool,
    /// Seconds between the daemon's look-ups of each sender domain's DMARC
    /// and DKIM key records (also at start and on SIGHUP), for the rule
    /// from.not_authenticated; 0 looks nothing up and the rule never fires.
    pub authentication_recheck: u64,
}

/// How a rule outcome is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    Reject,
    Warn,
    Off,
}

/// The wording a consent checkbox shows (`[tenants.NAME.consent]`): a named
/// version and the text in English and German, inline or from a file.
/// `{list}` in a text is the list's name. Under `lists`, the same per list.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ConsentWording {
    pub version: Option<String>,
    pub en: Option<String>,
    pub de: Option<String>,
    pub en_file: Option<PathBuf>,
    pub de_file: Option<PathBuf>,
    pub lists: BTreeMap<String, ConsentWording>,
}

/// Who writes the List-Unsubscribe header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnsubscribeMode {
    /// The sender brings its own header and link; postwarden checks them.
    #[default]
    Own,
    /// postwarden adds the header and a footer with a signed per-recipient link.
    Managed,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TenantConfig {
    pub smtp_password_hash: Option<String>,
    pub sender_domains: Vec<String>,
    /// The egress sources (by name) this tenant's mail leaves from, in
    /// rotation; empty: every source.
    pub sources: Vec<String>,
    /// Sender domains new to postwarden start on the warm-up schedule;
    /// false: this tenant's domains are warm already (mail moved here).
    pub warmup: bool,
    /// Policy profile: "strict" (default) or "standard".
    pub policy: String,
    /// Per-rule overrides of the profile, e.g. `"subject.fake_reply" = "warn"`.
    pub rules: BTreeMap<String, RuleAction>,
    /// Consent states that may receive bulk mail; empty: the profile's.
    pub allowed_consent: Vec<String>,
    /// Hosts allowed in List-Unsubscribe URLs besides the sender domains.
    pub unsubscribe_hosts: Vec<String>,
    pub unsubscribe: UnsubscribeMode,
    /// Footer appended in managed mode; `{url}` is replaced by the link.
    pub unsubscribe_footer: Option<String>,
    pub default_list: Option<String>,
    pub allow_transactional: bool,
    /// Clients in these networks are this tenant without AUTH (Postfix's mynetworks).
    pub trusted_networks: Vec<IpNet>,
    pub check_reply_to: bool,
    pub check_sender: bool,
    pub deceptive_subjects: Vec<String>,
    /// More names this tenant's mail must not imitate (see `[policy]`).
    pub protected_names: Vec<String>,
    pub hard_bounce_limit: u32,
    pub soft_bounce_limit: u32,
    /// Seconds within which soft bounces are counted (30 days).
    pub soft_bounce_window: u64,
    /// DKIM: selector, PEM key file, algorithm (rsa-sha256 or ed25519-sha256)
    /// and signing domain (default: the first sender domain).
    pub dkim_selector: Option<String>,
    pub dkim_key: Option<PathBuf>,
    pub dkim_algorithm: String,
    pub dkim_domain: Option<String>,
    /// Key rotation (`dkim keygen --next`, `dkim rotate`): the next key,
    /// published before it signs (its algorithm defaults to
    /// dkim_algorithm), and the selector it replaced, whose record stays
    /// published until `dkim_previous_until` (a date, YYYY-MM-DD).
    pub dkim_next_selector: Option<String>,
    pub dkim_next_key: Option<PathBuf>,
    pub dkim_next_algorithm: Option<String>,
    pub dkim_previous_selector: Option<String>,
    pub dkim_previous_until: Option<String>,
    /// Regular expressions of unsubscribe links in the body besides the
    /// List-Unsubscribe URLs themselves.
    pub unsubscribe_link_patterns: Vec<String>,
    /// Double opt-in: sender of confirmation mails (default `noreply@` the
    /// first sender domain), their subject, a text template file with
    /// `{url}`, `{list}` and `{address}`, and how long a link works (seconds).
    pub confirm_from: Option<String>,
    pub confirm_subject: Option<String>,
    pub confirm_template: Option<PathBuf>,
    pub confirm_token_ttl: u64,
    /// Confirmation mails per address and per client IP and day.
    pub confirm_limit_per_address: u32,
    pub confirm_limit_per_ip: u32,
    /// The wording of the consent a sign-up form asks for, versioned, per
    /// language, and per list under `lists` (absent: a built-in wording).
    pub consent: ConsentWording,
    /// The tenant's privacy notice, linked from the sign-up form.
    pub privacy_url: Option<String>,
    /// Origins (`https://www.example.com`) whose JavaScript may call the
    /// sign-up endpoints (CORS) and that may embed the form page in a frame.
    pub form_origins: Vec<String>,
    /// A sign-up needs a signed form token from `GET …/form` (the form page
    /// or its JSON): it proves the form was served, and when.
    pub require_form_token: bool,
    /// Seconds between serving a form and its post below which the post is a
    /// bot's, and after which the form is stale.
    pub form_min_seconds: u64,
    pub form_max_age: u64,
    /// A CAPTCHA or proof-of-work verifier that speaks the common "siteverify"
    /// protocol (POST `secret`, `response`, `remoteip`; JSON `success`), with
    /// its secret and the form field that carries the response.
    pub human_check_url: Option<String>,
    pub human_check_secret: Option<String>,
    pub human_check_field: String,
    /// A folder of page templates (`confirm.en.html`, `unsubscribe.de.html`, …)
    /// overriding the built-in pages.
    pub pages_dir: Option<PathBuf>,
    /// SHA-256 (hex) of the tenant's admin API bearer tokens (`postwarden api-token`).
    pub api_token_sha256: Vec<String>,
    /// The most contacts (list, address records) the tenant may keep.
    pub max_contacts: Option<u64>,
    /// Needed to lower `max_contacts` below the tenant's current count;
    /// kept in the audit log.
    pub quota_change_reason: Option<String>,
    /// Automatic suspension: complaints per delivery over the rolling window
    /// (0.003 = 0.3 %, the mailbox providers' published limit), judged once
    /// the window holds this many deliveries.
    pub complaint_rate_limit: f64,
    pub complaint_min_deliveries: u64,
    pub suspension_window_days: u64,
    /// Policy rejections within the window that suspend the tenant.
    pub max_policy_rejections: Option<u64>,
    /// Events are POSTed here (http or https), signed with `webhook_secret`.
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
    /// Seconds before the first retry of a failed webhook; it doubles up to
    /// ten minutes.
    pub webhook_retry_base: u64,
    /// Where an RFC 3464 failure notice goes when a recipient of the tenant's
    /// mail fails for good (absent: events and webhooks only).
    pub bounce_notify: Option<String>,
}

fn default_spool() -> PathBuf {
    PathBuf::from("spool")
}

fn default_fbl() -> Vec<String> {
    vec!["fbl".into()]
}
