//! The one TOML configuration file: schema, defaults and validation.
//!
//! Loading never stops at the first problem: unknown keys, type errors and
//! semantic errors (bad addresses, missing files) are all collected, and each
//! names its key path and line so that `postwarden config check` can print one
//! line per problem.

mod locate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

pub use locate::Locator;

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted key path, e.g. `listen.submission`.
    pub key: String,
    /// 1-based line in the file; 0 when the problem has no place (e.g. unreadable file).
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: {}: {}", self.line, self.key, self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// Why a configuration could not be loaded: every problem found, in file order.
#[derive(Debug, thiserror::Error)]
#[error("{} in {}:\n{}", plural(.problems.len()), .file.display(), .problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<ConfigProblem>,
}

fn plural(n: usize) -> String {
    if n == 1 {
        "1 configuration problem".into()
    } else {
        format!("{n} configuration problems")
    }
}

/// The embedded default configuration, the same text as `conf/postwarden.toml`.
pub const DEFAULT_CONFIG: &str = include_str!("../../conf/postwarden.toml");

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
    /// The folder of the configuration file; relative paths are resolved against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The file it was read from (None: the embedded defaults); SIGHUP reads it again.
    #[serde(skip)]
    pub source: Option<PathBuf>,
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
    /// PEM file of the certificate authority that signed PostgreSQL's
    /// certificate (with `sslmode=require` in the url; without it, the public
    /// roots).
    pub ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    Rocksdb,
    Postgres,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            backend: StoreBackend::Rocksdb,
            url: None,
            pool_size: 8,
            timeout: 5,
            // Raise it in a fleet, where a miss is a round trip to PostgreSQL.
            cache_entries: 50_000,
            ca: None,
        }
    }
}

fn default_spool() -> PathBuf {
    PathBuf::from("spool")
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

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line_length: 2048,
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 1000,
            max_errors: 10,
            idle_timeout: 300,
            data_timeout: 180,
            max_connections: 1000,
            max_connections_per_ip: 100,
            max_auth_failures: 5,
            auth_lockout: 300,
            allow_plaintext_auth_on_loopback: true,
            shutdown_grace: 30,
            min_free_space: None,
        }
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
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            relay_host: None,
            routes: BTreeMap::new(),
            nameservers: Vec::new(),
            max_connections_per_domain: 10,
            max_messages_per_connection: 100,
            retry_base: 300,
            retry_max: 3600,
            expiry: 5 * 86400,
            connect_timeout: 30,
            command_timeout: 300,
            require_tls: Vec::new(),
            mx_port: 25,
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
}

fn default_fbl() -> Vec<String> {
    vec!["fbl".into()]
}

/// Site-wide policy settings shared by every tenant.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PolicySettings {
    /// Regular expressions of deceptive subjects, added to the shipped list.
    pub deceptive_subjects: Vec<String>,
    /// Use the shipped list of deceptive subject patterns.
    pub builtin_deceptive_subjects: bool,
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings {
            deceptive_subjects: Vec::new(),
            builtin_deceptive_subjects: true,
        }
    }
}

/// How a rule outcome is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    Reject,
    Warn,
    Off,
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

/// A tenant's `soft_bounce_window` when it sets none: 30 days, in seconds.
pub const DEFAULT_SOFT_BOUNCE_WINDOW: u64 = 30 * 86400;

/// A tenant's `suspension_window_days` when it sets none.
pub const DEFAULT_SUSPENSION_WINDOW_DAYS: u64 = 7;

impl TenantConfig {
    /// The tenant's `soft_bounce_window`, or the default for a tenant no
    /// longer configured.
    pub fn soft_bounce_window_of(tenant: Option<&TenantConfig>) -> u64 {
        tenant.map_or(DEFAULT_SOFT_BOUNCE_WINDOW, |t| t.soft_bounce_window)
    }

    /// The tenant's `suspension_window_days`, or the default for a tenant no
    /// longer configured.
    pub fn suspension_window_of(tenant: Option<&TenantConfig>) -> u64 {
        tenant.map_or(DEFAULT_SUSPENSION_WINDOW_DAYS, |t| t.suspension_window_days)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TenantConfig {
    pub smtp_password_hash: Option<String>,
    pub sender_domains: Vec<String>,
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

impl Default for TenantConfig {
    fn default() -> Self {
        TenantConfig {
            smtp_password_hash: None,
            sender_domains: Vec::new(),
            policy: "strict".into(),
            rules: BTreeMap::new(),
            allowed_consent: Vec::new(),
            unsubscribe_hosts: Vec::new(),
            unsubscribe: UnsubscribeMode::Own,
            unsubscribe_footer: None,
            default_list: None,
            allow_transactional: false,
            trusted_networks: Vec::new(),
            check_reply_to: true,
            check_sender: true,
            deceptive_subjects: Vec::new(),
            hard_bounce_limit: 1,
            soft_bounce_limit: 5,
            soft_bounce_window: DEFAULT_SOFT_BOUNCE_WINDOW,
            dkim_selector: None,
            dkim_key: None,
            dkim_algorithm: "rsa-sha256".into(),
            dkim_domain: None,
            unsubscribe_link_patterns: Vec::new(),
            confirm_from: None,
            confirm_subject: None,
            confirm_template: None,
            confirm_token_ttl: 7 * 86400,
            confirm_limit_per_address: 3,
            confirm_limit_per_ip: 20,
            pages_dir: None,
            api_token_sha256: Vec::new(),
            max_contacts: None,
            quota_change_reason: None,
            complaint_rate_limit: 0.003,
            complaint_min_deliveries: 1000,
            suspension_window_days: DEFAULT_SUSPENSION_WINDOW_DAYS,
            max_policy_rejections: None,
            webhook_url: None,
            webhook_secret: None,
            webhook_retry_base: 5,
            bounce_notify: None,
        }
    }
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            problems: vec![ConfigProblem {
                key: "(file)".into(),
                line: 0,
                message: format!("cannot read: {e}"),
            }],
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        let mut config = Self::parse(&text, &base).map_err(|problems| ConfigError {
            file: path.to_path_buf(),
            problems,
        })?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses configuration text; relative paths are resolved against `base_dir`.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Config, Vec<ConfigProblem>> {
        let locator = match Locator::new(text) {
            Ok(l) => l,
            Err(problem) => return Err(vec![problem]),
        };
        let mut problems = Vec::new();
        let mut unknown = Vec::new();
        let de = toml::Deserializer::new(text);
        let parsed: Result<Config, _> = serde_ignored::deserialize(de, |path| {
            unknown.push(locate::path_segments(&path));
        });
        for segments in unknown {
            problems.push(locator.problem(&segments, "unknown key".into()));
        }
        let mut config = match parsed {
            Ok(c) => c,
            Err(e) => {
                problems.push(locator.problem_at_span(e.span(), e.message()));
                problems.sort_by_key(|p| p.line);
                return Err(problems);
            }
        };
        config.base_dir = base_dir.to_path_buf();
        config.validate(&locator, &mut problems);
        config.store.ca = config.store.ca.as_deref().map(|p| config.resolve(p));
        let resolved: Vec<_> = config
            .tenants
            .values()
            .map(|t| {
                (
                    t.confirm_template.as_deref().map(|p| config.resolve(p)),
                    t.pages_dir.as_deref().map(|p| config.resolve(p)),
                )
            })
            .collect();
        for (t, (template, pages)) in config.tenants.values_mut().zip(resolved) {
            t.confirm_template = template;
            t.pages_dir = pages;
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            problems.sort_by_key(|p| p.line);
            Err(problems)
        }
    }

    /// The embedded defaults, with the spool under `base_dir`.
    pub fn embedded_default(base_dir: &Path) -> Result<Config, Vec<ConfigProblem>> {
        Self::parse(DEFAULT_CONFIG, base_dir)
    }

    fn validate(&self, at: &Locator, problems: &mut Vec<ConfigProblem>) {
        let mut check_addr = |key: &[&str], value: &Option<String>| {
            if let Some(v) = value {
                if let Err(msg) = parse_host_port(v) {
                    problems.push(at.problem_str(key, msg));
                }
            }
        };
        check_addr(&["listen", "submission"], &self.listen.submission);
        check_addr(&["listen", "submissions"], &self.listen.submissions);
        check_addr(&["listen", "inbound"], &self.listen.inbound);
        check_addr(&["listen", "http"], &self.listen.http);
        check_addr(&["delivery", "relay_host"], &self.delivery.relay_host);
        for (domain, route) in &self.delivery.routes {
            if let Err(msg) = parse_host_port(route) {
                problems.push(at.problem_str(&["delivery", "routes", domain], msg));
            }
        }
        for ns in &self.delivery.nameservers {
            if ns.parse::<SocketAddr>().is_err() {
                problems.push(at.problem_str(
                    &["delivery", "nameservers"],
                    format!("{ns:?} is not an ip:port address"),
                ));
            }
        }
        match (&self.store.backend, &self.store.url) {
            (StoreBackend::Postgres, None) => problems.push(at.problem_str(
                &["store", "backend"],
                "backend \"postgres\" needs [store] url = \"postgres://...\"".into(),
            )),
            (StoreBackend::Postgres, Some(url)) => match url.parse::<tokio_postgres::Config>() {
                Err(e) => problems.push(at.problem_str(
                    &["store", "url"],
                    format!("not a PostgreSQL connection URL: {e}"),
                )),
                Ok(pg) => {
                    if self.store.ca.is_some()
                        && pg.get_ssl_mode() != tokio_postgres::config::SslMode::Require
                    {
                        problems.push(at.problem_str(
                            &["store", "ca"],
                            "is used only with TLS: add sslmode=require to [store] url".into(),
                        ));
                    }
                }
            },
            _ => {}
        }
        if let Some(ca) = &self.store.ca {
            let path = self.resolve(ca);
            if !path.is_file() {
                problems.push(at.problem_str(
                    &["store", "ca"],
                    format!("file {} does not exist", path.display()),
                ));
            }
        }
        if self.store.pool_size == 0 || self.store.timeout == 0 {
            problems.push(at.problem_str(
                &[
                    "store",
                    if self.store.pool_size == 0 {
                        "pool_size"
                    } else {
                        "timeout"
                    },
                ],
                "must be at least 1".into(),
            ));
        }
        if !is_domain(&self.server.hostname) {
            problems.push(at.problem_str(
                &["server", "hostname"],
                format!("{:?} is not a domain name", self.server.hostname),
            ));
        }
        if !is_domain(&self.feedback.domain) {
            problems.push(at.problem_str(
                &["feedback", "domain"],
                format!("{:?} is not a domain name", self.feedback.domain),
            ));
        }
        if let Some(tls) = &self.tls {
            for (name, file) in [("cert", &tls.cert), ("key", &tls.key)] {
                let path = self.resolve(file);
                if !path.is_file() {
                    problems.push(at.problem_str(
                        &["tls", name],
                        format!("file {} does not exist", path.display()),
                    ));
                }
            }
        }
        if self.limits.max_line_length < 512 {
            problems.push(at.problem_str(
                &["limits", "max_line_length"],
                "must be at least 512 (RFC 5321 §4.5.3.1.4)".into(),
            ));
        }
        if self.limits.max_recipients < 1 {
            problems
                .push(at.problem_str(&["limits", "max_recipients"], "must be at least 1".into()));
        }
        for pattern in &self.policy.deceptive_subjects {
            if let Err(e) = regex::Regex::new(pattern) {
                problems.push(at.problem_str(
                    &["policy", "deceptive_subjects"],
                    format!("bad regular expression {pattern:?}: {e}"),
                ));
            }
        }
        for (name, tenant) in &self.tenants {
            let key = |k: &str| ["tenants".to_string(), name.clone(), k.to_string()];
            let str_key = |k: &str| key(k);
            if let Some(hash) = &tenant.smtp_password_hash {
                if argon2::PasswordHash::new(hash).is_err() {
                    let k = str_key("smtp_password_hash");
                    problems.push(at.problem_owned(
                        &k,
                        "not a PHC password hash (make one with `postwarden hash-password`)".into(),
                    ));
                }
            }
            if let Some(address) = &tenant.bounce_notify {
                let domain = address.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
                if !is_domain(domain) || address.starts_with('@') {
                    problems.push(at.problem_owned(
                        &str_key("bounce_notify"),
                        format!("{address:?} is not a mail address"),
                    ));
                }
            }
            if tenant.sender_domains.is_empty() {
                problems.push(at.problem_owned(
                    &str_key("sender_domains"),
                    "a tenant needs at least one sender domain".into(),
                ));
            }
            for d in &tenant.sender_domains {
                if !is_domain(d) {
                    problems.push(at.problem_owned(
                        &str_key("sender_domains"),
                        format!("{d:?} is not a domain name"),
                    ));
                }
            }
            if !matches!(tenant.policy.as_str(), "strict" | "standard") {
                problems.push(at.problem_owned(
                    &str_key("policy"),
                    format!(
                        "unknown profile {:?} (known: strict, standard)",
                        tenant.policy
                    ),
                ));
            }
            for rule in tenant.rules.keys() {
                if !crate::policy::RULE_CODES.contains(&rule.as_str()) {
                    let mut k = str_key("rules").to_vec();
                    k.push(rule.clone());
                    problems.push(at.problem_owned(&k, format!("unknown rule {rule:?}")));
                }
            }
            for state in &tenant.allowed_consent {
                if crate::consent::ConsentState::parse(state).is_none() {
                    problems.push(at.problem_owned(
                        &str_key("allowed_consent"),
                        format!("unknown consent state {state:?}"),
                    ));
                }
            }
            if let Some(key) = &tenant.dkim_key {
                let path = self.resolve(key);
                if !path.is_file() {
                    problems.push(at.problem_owned(
                        &str_key("dkim_key"),
                        format!("file {} does not exist", path.display()),
                    ));
                }
                if tenant.dkim_selector.is_none() {
                    problems.push(at.problem_owned(
                        &str_key("dkim_key"),
                        "a DKIM key needs dkim_selector too".into(),
                    ));
                }
            }
            if !matches!(
                tenant.dkim_algorithm.as_str(),
                "rsa-sha256" | "ed25519-sha256"
            ) {
                problems.push(at.problem_owned(
                    &str_key("dkim_algorithm"),
                    format!(
                        "{:?} is not rsa-sha256 or ed25519-sha256",
                        tenant.dkim_algorithm
                    ),
                ));
            }
            for hash in &tenant.api_token_sha256 {
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    problems.push(at.problem_owned(
                        &str_key("api_token_sha256"),
                        "not a SHA-256 in hex (make a token with `postwarden api-token`)".into(),
                    ));
                }
            }
            if let Some(url) = &tenant.webhook_url {
                match url::Url::parse(url) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                        if tenant.webhook_secret.is_none() {
                            problems.push(at.problem_owned(
                                &str_key("webhook_url"),
                                "a webhook needs webhook_secret too (receivers check the signature)"
                                    .into(),
                            ));
                        }
                    }
                    _ => problems.push(at.problem_owned(
                        &str_key("webhook_url"),
                        format!("{url:?} is not an http or https URL"),
                    )),
                }
            }
            if let Some(from) = &tenant.confirm_from {
                if crate::consent::address::validate_address(from).is_err() {
                    problems.push(at.problem_owned(
                        &str_key("confirm_from"),
                        format!("{from:?} is not an address"),
                    ));
                }
            }
            if let Some(path) = &tenant.confirm_template {
                let path = self.resolve(path);
                if !path.is_file() {
                    problems.push(at.problem_owned(
                        &str_key("confirm_template"),
                        format!("file {} does not exist", path.display()),
                    ));
                }
            }
            if let Some(path) = &tenant.pages_dir {
                let path = self.resolve(path);
                if !path.is_dir() {
                    problems.push(at.problem_owned(
                        &str_key("pages_dir"),
                        format!("folder {} does not exist", path.display()),
                    ));
                }
            }
            for pattern in tenant
                .deceptive_subjects
                .iter()
                .chain(&tenant.unsubscribe_link_patterns)
            {
                if let Err(e) = regex::Regex::new(pattern) {
                    problems.push(at.problem_owned(
                        &str_key("deceptive_subjects"),
                        format!("bad regular expression {pattern:?}: {e}"),
                    ));
                }
            }
        }
    }

    /// Resolves a path from the config relative to the config file's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        let joined = if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        };
        // Lexically, so that `conf/../spool` reads as `spool` in messages.
        let mut out = PathBuf::new();
        for part in joined.components() {
            match part {
                std::path::Component::ParentDir
                    if matches!(
                        out.components().next_back(),
                        Some(std::path::Component::Normal(_))
                    ) =>
                {
                    out.pop();
                }
                std::path::Component::CurDir => {}
                other => out.push(other),
            }
        }
        if out.as_os_str().is_empty() {
            out.push(".");
        }
        out
    }

    pub fn spool_path(&self) -> PathBuf {
        self.resolve(&self.server.spool_dir)
    }

    pub fn tenant(&self, name: &str) -> Option<&TenantConfig> {
        self.tenants.get(name)
    }

    /// The public base URL of the HTTP listener, without a trailing slash:
    /// `[feedback] public_url`, else `http://` the listen address.
    pub fn public_base_url(&self) -> String {
        self.feedback
            .public_url
            .clone()
            .or_else(|| self.listen.http.as_ref().map(|h| format!("http://{h}")))
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string()
    }
}

/// Parses "host:port" where host is an IP address, `[v6]` or a name.
pub fn parse_host_port(value: &str) -> Result<(String, u16), String> {
    if let Ok(sa) = value.parse::<SocketAddr>() {
        if sa.port() == 0 {
            return Err(format!("{value:?} has no valid port (1-65535)"));
        }
        return Ok((sa.ip().to_string(), sa.port()));
    }
    let Some((host, port)) = value.rsplit_once(':') else {
        return Err(format!("{value:?} is not a host:port address"));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{value:?} has no valid port (1-65535)"))?;
    if port == 0 {
        return Err(format!("{value:?} has no valid port (1-65535)"));
    }
    if !is_domain(host) {
        return Err(format!("{value:?} is not a host:port address"));
    }
    Ok((host.to_string(), port))
}

/// A loose check for a DNS name: labels of letters, digits and hyphens.
pub fn is_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> &'static str {
        "[server]\nhostname = \"mta.example.test\"\n[feedback]\ndomain = \"bounces.example.test\"\n"
    }

    #[test]
    fn the_embedded_default_config_is_valid() {
        let c = Config::embedded_default(Path::new("/tmp/x/conf")).expect("valid");
        assert_eq!(c.spool_path(), PathBuf::from("/tmp/x/spool"));
        assert!(c.listen.http.is_some());
    }

    #[test]
    fn three_problems_are_reported_each_with_key_and_line() {
        let text = format!(
            "{}[listen]\nsubmission = \"127.0.0.1:99999\"\nbogus = 1\n[tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n",
            base()
        );
        let problems = Config::parse(&text, Path::new("/")).unwrap_err();
        let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 4, "{lines:?}");
        assert_eq!(problems[0].key, "listen.submission");
        assert_eq!(problems[0].line, 6);
        assert_eq!(problems[1].key, "listen.bogus");
        assert_eq!(problems[1].line, 7);
        assert_eq!(problems[2].key, "tls.cert");
        assert_eq!(problems[2].line, 9);
        assert_eq!(problems[3].key, "tls.key");
    }

    #[test]
    fn a_store_ca_needs_tls_in_the_url_and_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "").unwrap();
        let store = |url: &str, ca: &str| {
            format!(
                "{}[store]\nbackend = \"postgres\"\nurl = \"{url}\"\nca = \"{ca}\"\n",
                base()
            )
        };
        // Without sslmode=require the CA would be ignored: said so.
        let problems =
            Config::parse(&store("host=/run/postgresql", "ca.pem"), dir.path()).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "store.ca");
        assert!(problems[0].to_string().contains("sslmode=require"));
        // A relative path is the config folder's; a missing file is named.
        let problems = Config::parse(
            &store("host=db.example sslmode=require", "missing.pem"),
            dir.path(),
        )
        .unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "store.ca");
        assert!(problems[0].to_string().contains("missing.pem"));
        let config = Config::parse(
            &store("host=db.example sslmode=require", "ca.pem"),
            dir.path(),
        )
        .unwrap();
        assert_eq!(config.store.ca, Some(dir.path().join("ca.pem")));
    }

    #[test]
    fn a_type_error_names_its_key_and_line() {
        let text = format!("{}[limits]\nmax_recipients = \"many\"\n", base());
        let problems = Config::parse(&text, Path::new("/")).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "limits.max_recipients");
        assert_eq!(problems[0].line, 6);
    }

    #[test]
    fn a_syntax_error_names_its_line() {
        let text = format!("{}[limits\n", base());
        let problems = Config::parse(&text, Path::new("/")).unwrap_err();
        assert_eq!(problems[0].line, 5);
    }

    #[test]
    fn unknown_tenant_keys_and_rules_are_errors() {
        let text = format!(
            "{}[tenants.acme]\nsender_domains = [\"acme.example\"]\nsmtp_pasword_hash = \"x\"\nrules = {{ \"no.such_rule\" = \"warn\" }}\n",
            base()
        );
        let problems = Config::parse(&text, Path::new("/")).unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "tenants.acme.smtp_pasword_hash",
                "tenants.acme.rules.no.such_rule"
            ]
        );
        assert!(problems.iter().all(|p| p.line >= 6));
    }

    #[test]
    fn a_bounce_notify_that_is_no_address_is_named_with_its_line() {
        let text = format!(
            "{}[tenants.acme]\nsender_domains = [\"acme.example\"]\nbounce_notify = \"postmaster\"\n",
            base()
        );
        let problems = Config::parse(&text, Path::new("/")).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "tenants.acme.bounce_notify");
        assert_eq!(problems[0].line, text.lines().count());
        let ok = text.replace("\"postmaster\"", "\"postmaster@acme.example\"");
        assert!(Config::parse(&ok, Path::new("/")).is_ok());
    }

    #[test]
    fn host_port_parsing() {
        assert!(parse_host_port("127.0.0.1:25").is_ok());
        assert!(parse_host_port("[::1]:25").is_ok());
        assert!(parse_host_port("mx.example.test:2525").is_ok());
        assert!(parse_host_port("mx.example.test").is_err());
        assert!(parse_host_port("1.2.3.4:0").is_err());
        assert!(parse_host_port("bad host:25").is_err());
    }
}
