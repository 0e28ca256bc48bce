//! The checks serde cannot make: addresses, domains, files that must exist,
//! rule names and values that must agree. Each problem names its key and line.

use super::*;
use crate::values::address::is_domain;

impl Config {
    /// `[retention]`: every duration at least a second, and the orders
    /// that keep feedback working: a tracking record outlives its message's
    /// time in the queue, a replay mark its tracking record, the events'
    /// cap their usual time.
    fn validate_retention(&self, at: &Locator, problems: &mut Vec<ConfigProblem>) {
        let r = &self.retention;
        for (key, value) in [
            ("tracking", r.tracking),
            ("feedback_marks", r.feedback_marks),
            ("events", r.events),
            ("events_max", r.events_max),
            ("abuse_cases", r.abuse_cases),
            ("tenant_history_days", r.tenant_history_days),
            ("unconfirmed", r.unconfirmed),
            ("interval", r.interval),
            ("batch", r.batch as u64),
        ] {
            if value == 0 {
                problems.push(at.problem_str(&["retention", key], "must be at least 1".into()));
            }
        }
        if r.tracking < self.delivery.expiry {
            problems.push(at.problem_str(
                &["retention", "tracking"],
                format!(
                    "{} s is shorter than [delivery] expiry ({} s): a message still in the queue would lose the record that attributes its bounces",
                    r.tracking, self.delivery.expiry
                ),
            ));
        }
        if r.feedback_marks < r.tracking {
            problems.push(at.problem_str(
                &["retention", "feedback_marks"],
                format!(
                    "{} s is shorter than tracking ({} s): a repeated report would count again",
                    r.feedback_marks, r.tracking
                ),
            ));
        }
        if let Some((name, t)) = self
            .tenants
            .iter()
            .find(|(_, t)| t.confirm_token_ttl > r.unconfirmed)
        {
            problems.push(at.problem_str(
                &["retention", "unconfirmed"],
                format!(
                    "{} s is shorter than tenant {name}'s confirm_token_ttl ({} s): a confirmation link that still works would find its sign-up deleted",
                    r.unconfirmed, t.confirm_token_ttl
                ),
            ));
        }
        if r.events_max < r.events {
            problems.push(at.problem_str(
                &["retention", "events_max"],
                format!("{} s is shorter than events ({} s)", r.events_max, r.events),
            ));
        }
    }

    /// `[delivery.sources]`, and the tenants' pools of them.
    fn validate_sources(&self, at: &Locator, problems: &mut Vec<ConfigProblem>) {
        for (name, source) in &self.delivery.sources {
            let key = |k: &str| {
                [
                    "delivery".to_string(),
                    "sources".into(),
                    name.clone(),
                    k.into(),
                ]
            };
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                problems.push(at.problem_owned(
                    &["delivery".to_string(), "sources".into(), name.clone()],
                    format!("source name {name:?}: use letters, digits, '-', '_' and '.'"),
                ));
            }
            if source.address.parse::<std::net::IpAddr>().is_err() {
                problems.push(at.problem_owned(
                    &key("address"),
                    format!("{:?} is not an IP address", source.address),
                ));
            }
            if !source.ehlo.is_empty() && !is_domain(&source.ehlo) {
                problems.push(at.problem_owned(
                    &key("ehlo"),
                    format!("{:?} is not a domain name", source.ehlo),
                ));
            }
        }
        for (tenant_name, tenant) in &self.tenants {
            for source in &tenant.sources {
                if !self.delivery.sources.contains_key(source) {
                    let known: Vec<&str> =
                        self.delivery.sources.keys().map(String::as_str).collect();
                    problems.push(at.problem_owned(
                        &["tenants".to_string(), tenant_name.clone(), "sources".into()],
                        format!(
                            "unknown source {source:?} (in [delivery.sources]: {})",
                            if known.is_empty() {
                                "none".to_string()
                            } else {
                                known.join(", ")
                            }
                        ),
                    ));
                }
            }
        }
    }

    pub(super) fn validate(&self, at: &Locator, problems: &mut Vec<ConfigProblem>) {
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
        if self.store.memory_budget < MIN_MEMORY_BUDGET {
            problems.push(at.problem_str(
                &["store", "memory_budget"],
                format!("must be at least {MIN_MEMORY_BUDGET} (9 MiB)"),
            ));
        }
        self.validate_retention(at, problems);
        self.validate_sources(at, problems);
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
                if !crate::values::RULE_CODES.contains(&rule.as_str()) {
                    let mut k = str_key("rules").to_vec();
                    k.push(rule.clone());
                    problems.push(at.problem_owned(&k, format!("unknown rule {rule:?}")));
                }
            }
            for state in &tenant.allowed_consent {
                if crate::values::ConsentState::parse(state).is_none() {
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
            let algorithms =
                std::iter::once(("dkim_algorithm", Some(&tenant.dkim_algorithm))).chain(
                    std::iter::once(("dkim_next_algorithm", tenant.dkim_next_algorithm.as_ref())),
                );
            for (key, algorithm) in algorithms {
                if let Some(a) =
                    algorithm.filter(|a| !matches!(a.as_str(), "rsa-sha256" | "ed25519-sha256"))
                {
                    problems.push(at.problem_owned(
                        &str_key(key),
                        format!("{a:?} is not rsa-sha256 or ed25519-sha256"),
                    ));
                }
            }
            match (&tenant.dkim_next_selector, &tenant.dkim_next_key) {
                (Some(_), Some(key)) => {
                    let path = self.resolve(key);
                    if !path.is_file() {
                        problems.push(at.problem_owned(
                            &str_key("dkim_next_key"),
                            format!("file {} does not exist", path.display()),
                        ));
                    }
                }
                (None, None) => {}
                (Some(_), None) => problems.push(at.problem_owned(
                    &str_key("dkim_next_selector"),
                    "a next DKIM selector needs dkim_next_key too".into(),
                )),
                (None, Some(_)) => problems.push(at.problem_owned(
                    &str_key("dkim_next_key"),
                    "a next DKIM key needs dkim_next_selector too".into(),
                )),
            }
            if let Some(until) = &tenant.dkim_previous_until {
                if crate::values::clock::parse_day(until).is_none() {
                    problems.push(at.problem_owned(
                        &str_key("dkim_previous_until"),
                        format!("{until:?} is not a date (YYYY-MM-DD)"),
                    ));
                }
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
                if crate::values::address::validate_address(from).is_err() {
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
}

/// The smallest `[store] memory_budget`: an 8 MiB memtable budget (one
/// memtable of each column family before a flush) and a 1 MiB block cache.
const MIN_MEMORY_BUDGET: u64 = 9 << 20;
