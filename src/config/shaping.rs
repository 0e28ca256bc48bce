//! Traffic shaping per mailbox provider: the shipped `conf/shaping.toml`,
//! a site file over it (`[delivery] shaping`) key by key, and what the two
//! resolve to: providers with their limits, and the rules that react to the
//! providers' replies.
//!
//! The file's format is documented in the shipped file itself and in
//! postwarden.toml(5); the scheduler's side is `crate::shaping`.

use std::collections::BTreeMap;
use std::path::Path;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use super::Locator;

/// The shipped shaping file, embedded in the binary.
pub const SHIPPED_SHAPING: &str = include_str!("../../conf/shaping.toml");

/// The name of the catch-all provider: every domain of no named provider,
/// each on a path of its own.
pub const DEFAULT_PROVIDER: &str = "default";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    #[default]
    Opportunistic,
    Required,
}

/// The limits of one egress path; 0 is no limit.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct PathLimits {
    pub connections: u32,
    pub messages_per_connection: u32,
    pub connections_per_minute: u32,
    pub messages_per_minute: u32,
    pub messages_per_hour: u32,
    pub burst: u32,
    pub tls: TlsMode,
}

/// A named group of recipient domains.
#[derive(Debug, Clone, PartialEq)]
pub struct Provider {
    pub name: String,
    /// MX host suffixes: a domain whose MX hosts all end in one of them.
    pub mx: Vec<String>,
    /// Domains that belong to the provider whatever their MX.
    pub domains: Vec<String>,
    pub limits: PathLimits,
    /// Its own warm-up schedule; None: `[warmup] schedule`.
    pub warmup: Option<Vec<u64>>,
}

/// The warm-up of new egress sources and sender domains.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Warmup {
    /// Messages per provider on warm-up day 1, 2, …; after the last day the
    /// warm-up is over.
    pub schedule: Vec<u64>,
    /// A day whose bounce or complaint rate is above these does not count:
    /// the schedule stays on its day.
    pub max_bounce_rate: f64,
    pub max_complaint_rate: f64,
}

/// What a throttle changes for its duration (saved as JSON with a path's
/// holds, see `shaping::SavedHold`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Throttle {
    /// Multiplies the rates and the connections a path has.
    pub factor: Option<f64>,
    pub connections: Option<u32>,
    pub connections_per_minute: Option<u32>,
    pub messages_per_minute: Option<u32>,
    pub messages_per_hour: Option<u32>,
}

impl Throttle {
    /// `limits` as the throttle changes them. A path with no connection
    /// limit of its own has `connections` (the `[delivery]` one) to halve;
    /// a rate with no limit stays without one.
    pub fn apply(&self, limits: &PathLimits, connections: u32) -> PathLimits {
        let scale = |n: u32| -> u32 {
            match self.factor {
                Some(f) if n > 0 => ((f64::from(n) * f).ceil() as u32).max(1),
                _ => n,
            }
        };
        let base_connections = if limits.connections == 0 {
            connections
        } else {
            limits.connections
        };
        PathLimits {
            connections: self.connections.unwrap_or_else(|| scale(base_connections)),
            connections_per_minute: self
                .connections_per_minute
                .unwrap_or_else(|| scale(limits.connections_per_minute)),
            messages_per_minute: self
                .messages_per_minute
                .unwrap_or_else(|| scale(limits.messages_per_minute)),
            messages_per_hour: self
                .messages_per_hour
                .unwrap_or_else(|| scale(limits.messages_per_hour)),
            ..limits.clone()
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Nothing more goes on the path until the duration ends.
    Suspend,
    /// The path's limits change for the duration.
    Throttle(Throttle),
    /// Only the message that got the reply waits the duration.
    Defer,
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Suspend => "suspend",
            Action::Throttle(_) => "throttle",
            Action::Defer => "defer",
        }
    }
}

/// A reply rule: which replies, how many in what time, and what then.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    /// The provider it watches; None: every path.
    pub provider: Option<String>,
    /// The enhanced status code, e.g. "4.7.28".
    pub code: Option<String>,
    /// On the reply's whole line (code, enhanced code, text), case-insensitive.
    pub text: Option<Regex>,
    pub threshold: u32,
    /// Seconds within which `threshold` matches activate the rule.
    pub period: u64,
    pub action: Action,
    /// Seconds the action lasts.
    pub duration: u64,
}

impl Rule {
    /// Whether the reply `line` with enhanced code `status`, from a path of
    /// `provider`, is one this rule watches for.
    pub fn matches(&self, provider: &str, status: &str, line: &str) -> bool {
        self.provider.as_deref().is_none_or(|p| p == provider)
            && self.code.as_deref().is_none_or(|c| c == status)
            && self.text.as_ref().is_none_or(|r| r.is_match(line))
    }
}

/// The resolved shaping: what the scheduler reads.
#[derive(Debug, Clone, Default)]
pub struct Shaping {
    /// The limits of a domain of no provider.
    pub default: PathLimits,
    pub providers: Vec<Provider>,
    pub rules: Vec<Rule>,
    pub warmup: Warmup,
}

impl Shaping {
    /// The provider that lists `domain` explicitly.
    pub fn provider_by_domain(&self, domain: &str) -> Option<&Provider> {
        self.providers
            .iter()
            .find(|p| p.domains.iter().any(|d| d.eq_ignore_ascii_case(domain)))
    }

    /// The provider every one of `hosts` (a domain's MX hosts) belongs to, by
    /// suffix, as KumoMTA's MX rollup: `aspmx.l.google.com` ends in
    /// `google.com`. A domain whose MX hosts are of two providers (or of one
    /// and of none) is of none.
    pub fn provider_by_mx<S: AsRef<str>>(&self, hosts: &[S]) -> Option<&Provider> {
        if hosts.is_empty() {
            return None;
        }
        self.providers.iter().find(|p| {
            hosts.iter().all(|h| {
                let h = h.as_ref().trim_end_matches('.');
                p.mx.iter().any(|s| host_in(h, s))
            })
        })
    }

    pub fn provider(&self, name: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.name == name)
    }

    /// The warm-up schedule of `provider` (its own, else the file's).
    pub fn warmup_schedule(&self, provider: &str) -> &[u64] {
        self.provider(provider)
            .and_then(|p| p.warmup.as_deref())
            .unwrap_or(&self.warmup.schedule)
    }
}

/// `host` is `suffix` or a name under it.
fn host_in(host: &str, suffix: &str) -> bool {
    let suffix = suffix.trim_end_matches('.');
    host.eq_ignore_ascii_case(suffix)
        || (host.len() > suffix.len()
            && host.is_char_boundary(host.len() - suffix.len() - 1)
            && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            && host.as_bytes()[host.len() - suffix.len() - 1] == b'.')
}

// ---- The files ----

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    mx: Option<Vec<String>>,
    domains: Option<Vec<String>>,
    connections: Option<u32>,
    messages_per_connection: Option<u32>,
    connections_per_minute: Option<u32>,
    messages_per_minute: Option<u32>,
    messages_per_hour: Option<u32>,
    burst: Option<u32>,
    tls: Option<TlsMode>,
    warmup: Option<Vec<u64>>,
}

impl FileLimits {
    /// `self` with the keys it leaves out taken from `under`.
    fn over(self, under: FileLimits) -> FileLimits {
        FileLimits {
            mx: self.mx.or(under.mx),
            domains: self.domains.or(under.domains),
            connections: self.connections.or(under.connections),
            messages_per_connection: self
                .messages_per_connection
                .or(under.messages_per_connection),
            connections_per_minute: self.connections_per_minute.or(under.connections_per_minute),
            messages_per_minute: self.messages_per_minute.or(under.messages_per_minute),
            messages_per_hour: self.messages_per_hour.or(under.messages_per_hour),
            burst: self.burst.or(under.burst),
            tls: self.tls.or(under.tls),
            warmup: self.warmup.or(under.warmup),
        }
    }

    fn resolve(&self) -> PathLimits {
        PathLimits {
            connections: self.connections.unwrap_or(0),
            messages_per_connection: self.messages_per_connection.unwrap_or(0),
            connections_per_minute: self.connections_per_minute.unwrap_or(0),
            messages_per_minute: self.messages_per_minute.unwrap_or(0),
            messages_per_hour: self.messages_per_hour.unwrap_or(0),
            burst: self.burst.unwrap_or(0),
            tls: self.tls.unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRule {
    name: String,
    provider: Option<String>,
    code: Option<String>,
    text: Option<String>,
    threshold: Option<u32>,
    period: Option<u64>,
    action: Option<String>,
    duration: Option<u64>,
    factor: Option<f64>,
    connections: Option<u32>,
    connections_per_minute: Option<u32>,
    messages_per_minute: Option<u32>,
    messages_per_hour: Option<u32>,
    enabled: Option<bool>,
}

impl FileRule {
    fn over(self, under: FileRule) -> FileRule {
        FileRule {
            name: self.name,
            provider: self.provider.or(under.provider),
            code: self.code.or(under.code),
            text: self.text.or(under.text),
            threshold: self.threshold.or(under.threshold),
            period: self.period.or(under.period),
            action: self.action.or(under.action),
            duration: self.duration.or(under.duration),
            factor: self.factor.or(under.factor),
            connections: self.connections.or(under.connections),
            connections_per_minute: self.connections_per_minute.or(under.connections_per_minute),
            messages_per_minute: self.messages_per_minute.or(under.messages_per_minute),
            messages_per_hour: self.messages_per_hour.or(under.messages_per_hour),
            enabled: self.enabled.or(under.enabled),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    default: FileLimits,
    #[serde(default)]
    providers: BTreeMap<String, FileLimits>,
    #[serde(default)]
    rules: Vec<FileRule>,
    #[serde(default)]
    warmup: FileWarmup,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWarmup {
    schedule: Option<Vec<u64>>,
    max_bounce_rate: Option<f64>,
    max_complaint_rate: Option<f64>,
}

impl FileWarmup {
    fn over(self, under: FileWarmup) -> FileWarmup {
        FileWarmup {
            schedule: self.schedule.or(under.schedule),
            max_bounce_rate: self.max_bounce_rate.or(under.max_bounce_rate),
            max_complaint_rate: self.max_complaint_rate.or(under.max_complaint_rate),
        }
    }
}

/// One shaping file, parsed, with what finds its lines.
struct Parsed {
    name: String,
    file: File,
    locator: Locator,
}

impl Parsed {
    fn read(name: &str, text: &str) -> Result<Parsed, String> {
        let locator =
            Locator::new(text).map_err(|p| format!("{name} line {}: {}", p.line, p.message))?;
        let file: File = toml::from_str(text).map_err(|e| {
            let p = locator.problem_at_span(e.span(), e.message());
            format!("{name} line {}: {}: {}", p.line, p.key, p.message)
        })?;
        Ok(Parsed {
            name: name.to_string(),
            file,
            locator,
        })
    }

    fn problem(&self, path: &[String], message: &str) -> String {
        format!(
            "{} line {}: {}: {message}",
            self.name,
            self.locator.line_of_path(path),
            path.join(".")
        )
    }
}

/// Reads the shipped file and, when given, the site file over it. Every
/// problem is one line naming the file, its line and its key.
pub fn load(site: Option<&Path>) -> Result<Shaping, Vec<String>> {
    let shipped = Parsed::read("shipped shaping.toml", SHIPPED_SHAPING).map_err(|e| vec![e])?;
    let site = match site {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| vec![format!("{}: cannot read: {e}", path.display())])?;
            Some(Parsed::read(&path.display().to_string(), &text).map_err(|e| vec![e])?)
        }
    };
    resolve(&shipped, site.as_ref())
}

/// Reads shaping text as a site file over the shipped one (for tests and
/// `config check` of a file given as text).
pub fn load_text(name: &str, text: &str) -> Result<Shaping, Vec<String>> {
    let shipped = Parsed::read("shipped shaping.toml", SHIPPED_SHAPING).map_err(|e| vec![e])?;
    let site = Parsed::read(name, text).map_err(|e| vec![e])?;
    resolve(&shipped, Some(&site))
}

fn resolve(shipped: &Parsed, site: Option<&Parsed>) -> Result<Shaping, Vec<String>> {
    let mut problems = Vec::new();
    // Where a key came from, for the line of a problem with it.
    let origin = |in_site: bool| -> &Parsed {
        match site {
            Some(s) if in_site => s,
            _ => shipped,
        }
    };
    let site_file = site.map(|s| s.file.clone()).unwrap_or_default();
    let default = site_file.default.clone().over(shipped.file.default.clone());
    for key in ["mx", "domains", "warmup"] {
        let set = |d: &FileLimits| match key {
            "mx" => d.mx.is_some(),
            "domains" => d.domains.is_some(),
            _ => d.warmup.is_some(),
        };
        if set(&default) {
            problems.push(origin(set(&site_file.default)).problem(
                &["default".into(), key.into()],
                if key == "warmup" {
                    "the schedule of [default] is [warmup] schedule"
                } else {
                    "[default] is every domain of no provider: it takes no mx or domains"
                },
            ));
        }
    }
    let mut providers = Vec::new();
    let mut names: Vec<&String> = shipped.file.providers.keys().collect();
    for name in site_file.providers.keys() {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    for name in names {
        let in_site = site_file.providers.contains_key(name);
        let merged = site_file
            .providers
            .get(name)
            .cloned()
            .unwrap_or_default()
            .over(
                shipped
                    .file
                    .providers
                    .get(name)
                    .cloned()
                    .unwrap_or_default(),
            );
        let at = origin(in_site);
        let path = ["providers".to_string(), name.clone()];
        if name == DEFAULT_PROVIDER || name == "*" {
            problems.push(at.problem(&path, "is a reserved name: write [default] instead"));
            continue;
        }
        let mx: Vec<String> = merged
            .mx
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|s| s.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        let domains: Vec<String> = merged
            .domains
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect();
        if mx.is_empty() && domains.is_empty() {
            problems.push(at.problem(&path, "names no mx suffix and no domain"));
        }
        for (key, list) in [("mx", &mx), ("domains", &domains)] {
            if let Some(bad) = list.iter().find(|d| !crate::values::address::is_domain(d)) {
                problems.push(at.problem(
                    &[path[0].clone(), path[1].clone(), key.to_string()],
                    &format!("{bad:?} is not a domain name"),
                ));
            }
        }
        if let Some(schedule) = &merged.warmup {
            if let Err(m) = check_schedule(schedule) {
                problems.push(at.problem(&[path[0].clone(), path[1].clone(), "warmup".into()], &m));
            }
        }
        providers.push(Provider {
            name: name.clone(),
            mx,
            domains,
            warmup: merged.warmup.clone(),
            limits: merged.over(default.clone()).resolve(),
        });
    }
    // Rules: the shipped ones in order, each with the site's rule of the
    // same name over it, then the site's new ones.
    let mut rules = Vec::new();
    let mut merged_rules: Vec<(FileRule, bool, usize)> = Vec::new();
    for (i, rule) in shipped.file.rules.iter().enumerate() {
        match site_file.rules.iter().position(|r| r.name == rule.name) {
            Some(j) => merged_rules.push((site_file.rules[j].clone().over(rule.clone()), true, j)),
            None => merged_rules.push((rule.clone(), false, i)),
        }
    }
    for (j, rule) in site_file.rules.iter().enumerate() {
        if !shipped.file.rules.iter().any(|r| r.name == rule.name) {
            merged_rules.push((rule.clone(), true, j));
        }
    }
    let mut seen = Vec::new();
    for (rule, in_site, index) in merged_rules {
        let at = origin(in_site);
        let key = |k: &str| -> Vec<String> {
            let mut p = vec!["rules".to_string(), index.to_string()];
            if !k.is_empty() {
                p.push(k.to_string());
            }
            p
        };
        if seen.contains(&rule.name) {
            problems.push(at.problem(&key("name"), "a second rule of this name"));
            continue;
        }
        seen.push(rule.name.clone());
        if rule.enabled == Some(false) {
            continue;
        }
        match build_rule(&rule, &providers) {
            Ok(r) => rules.push(r),
            Err((k, message)) => problems.push(at.problem(&key(k), &message)),
        }
    }
    let warmup = site_file.warmup.clone().over(shipped.file.warmup.clone());
    let schedule = warmup.schedule.unwrap_or_default();
    if let Err(m) = check_schedule(&schedule) {
        let at = origin(site_file.warmup.schedule.is_some());
        problems.push(at.problem(&["warmup".into(), "schedule".into()], &m));
    }
    let mut rate = |key: &str, value: Option<f64>, site: Option<f64>| -> f64 {
        let v = value.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&v) {
            problems.push(origin(site.is_some()).problem(
                &["warmup".into(), key.into()],
                &format!("{v} is not a rate between 0 and 1 (0.05 is 5 %)"),
            ));
        }
        v
    };
    let warmup = Warmup {
        schedule,
        max_bounce_rate: rate(
            "max_bounce_rate",
            warmup.max_bounce_rate,
            site_file.warmup.max_bounce_rate,
        ),
        max_complaint_rate: rate(
            "max_complaint_rate",
            warmup.max_complaint_rate,
            site_file.warmup.max_complaint_rate,
        ),
    };
    if problems.is_empty() {
        Ok(Shaping {
            default: default.resolve(),
            providers,
            rules,
            warmup,
        })
    } else {
        Err(problems)
    }
}

/// A warm-up schedule: daily caps that never fall.
fn check_schedule(schedule: &[u64]) -> Result<(), String> {
    if schedule.contains(&0) {
        return Err(
            "a day's cap is at least 1 (a day of 0 would stop the warm-up for good)".into(),
        );
    }
    if let Some(w) = schedule.windows(2).find(|w| w[1] < w[0]) {
        return Err(format!(
            "falls from {} to {}: a schedule only grows",
            w[0], w[1]
        ));
    }
    Ok(())
}

/// One rule from its merged keys, or the key that is wrong and why.
fn build_rule(r: &FileRule, providers: &[Provider]) -> Result<Rule, (&'static str, String)> {
    if r.name.trim().is_empty() {
        return Err(("name", "must not be empty".into()));
    }
    let provider = match r.provider.as_deref() {
        None | Some("*") => None,
        Some(p) if p == DEFAULT_PROVIDER || providers.iter().any(|x| x.name == p) => {
            Some(p.to_string())
        }
        Some(p) => return Err(("provider", format!("{p:?} is no provider of the file"))),
    };
    if let Some(code) = &r.code {
        let parts: Vec<&str> = code.split('.').collect();
        let ok = parts.len() == 3
            && matches!(parts[0], "2" | "4" | "5")
            && parts[1..]
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            return Err((
                "code",
                format!("{code:?} is not an enhanced status code (RFC 3463, e.g. \"4.7.28\")"),
            ));
        }
    }
    let text = match &r.text {
        None => None,
        Some(t) => Some(
            RegexBuilder::new(t)
                .case_insensitive(true)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| ("text", format!("not a regular expression: {e}")))?,
        ),
    };
    if r.code.is_none() && text.is_none() {
        return Err((
            "",
            "matches every reply: give a code, a text or both".to_string(),
        ));
    }
    let threshold = r.threshold.unwrap_or(1);
    if threshold == 0 {
        return Err(("threshold", "must be at least 1".into()));
    }
    let period = r.period.unwrap_or(300);
    if period == 0 {
        return Err(("period", "must be at least 1 second".into()));
    }
    let duration = r.duration.unwrap_or(0);
    if duration == 0 {
        return Err(("duration", "must be at least 1 second".into()));
    }
    let throttle = Throttle {
        factor: r.factor,
        connections: r.connections,
        connections_per_minute: r.connections_per_minute,
        messages_per_minute: r.messages_per_minute,
        messages_per_hour: r.messages_per_hour,
    };
    let action = match r.action.as_deref() {
        Some("suspend") => Action::Suspend,
        Some("defer") => Action::Defer,
        Some("throttle") => {
            if let Some(f) = throttle.factor {
                if !(f > 0.0 && f <= 10.0) {
                    return Err(("factor", format!("{f} is not within (0, 10]")));
                }
            }
            if throttle == Throttle::default() {
                return Err((
                    "action",
                    "throttle needs a factor or a limit (connections, connections_per_minute, messages_per_minute, messages_per_hour)".into(),
                ));
            }
            if throttle.connections == Some(0) {
                return Err(("connections", "must be at least 1".into()));
            }
            Action::Throttle(throttle)
        }
        Some(other) => {
            return Err((
                "action",
                format!("{other:?} is not suspend, throttle or defer"),
            ))
        }
        None => return Err(("action", "is missing (suspend, throttle or defer)".into())),
    };
    Ok(Rule {
        name: r.name.clone(),
        provider,
        code: r.code.clone(),
        text,
        threshold,
        period,
        action,
        duration,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_file_resolves() {
        let s = load(None).expect("shipped shaping");
        let google = s.provider("google").expect("google");
        assert_eq!(google.limits.tls, TlsMode::Required);
        assert_eq!(google.limits.messages_per_hour, 0, "from [default]");
        for name in [
            "google",
            "microsoft",
            "yahoo",
            "apple",
            "gmx-webde",
            "t-online",
            "orange",
            "comcast",
        ] {
            assert!(s.provider(name).is_some(), "{name}");
        }
        assert!(s.rules.len() >= 10);
        assert_eq!(s.default, PathLimits::default());
    }

    #[test]
    fn mx_rollup_needs_every_host_under_one_provider() {
        let s = load(None).expect("shipped");
        let name = |hosts: &[&str]| s.provider_by_mx(hosts).map(|p| p.name.clone());
        assert_eq!(
            name(&["aspmx.l.google.com.", "alt1.aspmx.l.google.com"]).as_deref(),
            Some("google")
        );
        assert_eq!(
            name(&["example-com.mail.protection.outlook.com"]).as_deref(),
            Some("microsoft")
        );
        // A suffix is a whole label: notgoogle.com is not google.com.
        assert_eq!(name(&["mx.notgoogle.com"]), None);
        // Google first, a backup elsewhere: not all of it is Google's.
        assert_eq!(name(&["aspmx.l.google.com", "backup.example.net"]), None);
        assert_eq!(name(&[] as &[&str]), None);
        assert_eq!(
            s.provider_by_domain("GMAIL.com").map(|p| p.name.as_str()),
            Some("google")
        );
    }

    #[test]
    fn the_rules_match_the_documented_replies() {
        let s = load(None).expect("shipped");
        let first = |provider: &str, status: &str, line: &str| {
            s.rules
                .iter()
                .find(|r| r.matches(provider, status, line))
                .map(|r| r.name.clone())
        };
        assert_eq!(
            first("google", "4.7.28", "421 4.7.28 [192.0.2.1] Our system has detected an unusual rate of unsolicited mail originating from your IP address.").as_deref(),
            Some("google-rate-limited")
        );
        assert_eq!(
            first("microsoft", "4.7.650", "451 4.7.650 The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation.").as_deref(),
            Some("microsoft-ip-reputation")
        );
        assert_eq!(
            first("yahoo", "4.7.0", "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1").as_deref(),
            Some("yahoo-tss04")
        );
        // The same words from another provider's path are not Yahoo's rule.
        assert_eq!(first("google", "4.7.0", "421 4.7.0 [TSS04] deferred"), None);
        // A user unknown is the recipient's, not the path's.
        assert_eq!(
            first(
                "google",
                "5.1.1",
                "550 5.1.1 The email account that you tried to reach does not exist."
            ),
            None
        );
        assert_eq!(
            first(
                "default",
                "4.3.2",
                "421 4.3.2 Too many concurrent connections from your IP"
            )
            .as_deref(),
            Some("too-many-connections")
        );
    }

    #[test]
    fn a_site_file_overrides_key_by_key() {
        let s = load_text(
            "site.toml",
            r#"
[default]
connections = 4
[providers.google]
tls = "opportunistic"
[providers.example]
domains = ["example.org"]
messages_per_minute = 10
[[rules]]
name = "google-rate-limited"
duration = 60
[[rules]]
name = "yahoo-tss09"
enabled = false
[[rules]]
name = "example-slow"
provider = "example"
text = "slow"
action = "throttle"
messages_per_minute = 2
duration = 600
"#,
        )
        .expect("site file");
        let google = s.provider("google").expect("google");
        assert_eq!(google.limits.tls, TlsMode::Opportunistic);
        assert_eq!(google.limits.connections, 20, "the shipped value stays");
        assert_eq!(google.mx, vec!["google.com", "googlemail.com"]);
        let example = s.provider("example").expect("example");
        assert_eq!(example.limits.connections, 4, "from the site's [default]");
        assert_eq!(s.default.connections, 4);
        let rate = s
            .rules
            .iter()
            .find(|r| r.name == "google-rate-limited")
            .expect("rule");
        assert_eq!(rate.duration, 60);
        assert_eq!(
            rate.code.as_deref(),
            Some("4.7.28"),
            "the shipped code stays"
        );
        assert!(!s.rules.iter().any(|r| r.name == "yahoo-tss09"));
        let slow = s
            .rules
            .iter()
            .find(|r| r.name == "example-slow")
            .expect("new");
        assert_eq!(
            slow.action,
            Action::Throttle(Throttle {
                messages_per_minute: Some(2),
                ..Throttle::default()
            })
        );
    }

    #[test]
    fn problems_name_the_file_the_line_and_the_key() {
        let err = |text: &str| load_text("site.toml", text).expect_err(text).join("\n");
        let e = err("[providers.google]\nconections = 3\n");
        assert!(
            e.contains("site.toml line 2") && e.contains("conections"),
            "{e}"
        );
        let e = err("[[rules]]\nname = \"a\"\ntext = \"(\"\naction = \"suspend\"\nduration = 5\n");
        assert!(
            e.contains("site.toml line 3: rules.0.text: not a regular"),
            "{e}"
        );
        let e =
            err("\n[[rules]]\nname = \"b\"\ncode = \"4.7\"\naction = \"suspend\"\nduration = 5\n");
        assert!(e.contains("line 4: rules.0.code"), "{e}");
        let e =
            err("[[rules]]\nname = \"c\"\ncode = \"4.7.1\"\naction = \"throttle\"\nduration = 5\n");
        assert!(e.contains("line 4: rules.0.action: throttle needs"), "{e}");
        let e = err("[[rules]]\nname = \"d\"\nprovider = \"nobody\"\ncode = \"4.7.1\"\naction = \"defer\"\nduration = 5\n");
        assert!(e.contains("line 3: rules.0.provider"), "{e}");
        let e = err("[providers.x]\nconnections = 2\n");
        assert!(e.contains("providers.x: names no mx"), "{e}");
        let e = err("[default]\nmx = [\"a.example\"]\n");
        assert!(e.contains("line 2: default.mx"), "{e}");
        let e = err("[[rules]]\nname = \"e\"\naction = \"suspend\"\nduration = 5\n");
        assert!(e.contains("matches every reply"), "{e}");
        let e = err("[providers.google]\ntls = \"sometimes\"\n");
        assert!(e.contains("line 2") && e.contains("tls"), "{e}");
    }

    #[test]
    fn a_throttle_scales_what_a_path_has() {
        let limits = PathLimits {
            connections: 10,
            messages_per_minute: 300,
            ..PathLimits::default()
        };
        let half = Throttle {
            factor: Some(0.5),
            ..Throttle::default()
        };
        let t = half.apply(&limits, 10);
        assert_eq!(
            (t.connections, t.messages_per_minute, t.messages_per_hour),
            (5, 150, 0)
        );
        // No connection limit of its own: the [delivery] one is halved.
        let t = half.apply(&PathLimits::default(), 7);
        assert_eq!(t.connections, 4);
        // Never below one.
        let t = Throttle {
            factor: Some(0.01),
            ..Throttle::default()
        }
        .apply(&limits, 10);
        assert_eq!((t.connections, t.messages_per_minute), (1, 3));
    }
}
