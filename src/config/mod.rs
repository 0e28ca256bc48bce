//! The one TOML configuration file: schema, defaults and validation.
//!
//! Loading never stops at the first problem: unknown keys, type errors and
//! semantic errors (bad addresses, missing files) are all collected, and each
//! names its key path and line so that `postwarden config check` can print one
//! line per problem.

mod defaults;
mod locate;
mod schema;
pub mod shaping;
mod signup;
mod validate;

use crate::values::address::is_domain;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use defaults::{DEFAULT_SOFT_BOUNCE_WINDOW, DEFAULT_SUSPENSION_WINDOW_DAYS};
pub use locate::Locator;
pub use schema::*;

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
        config.load_signup(&locator, &mut problems);
        config.load_shaping(&locator, &mut problems);
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

    /// `[delivery] shaping` over the shipped shaping file; a problem in it
    /// is reported at that key, naming the shaping file's own line.
    fn load_shaping(&mut self, at: &Locator, problems: &mut Vec<ConfigProblem>) {
        let site = self.delivery.shaping.as_deref().map(|p| self.resolve(p));
        match shaping::load(site.as_deref()) {
            Ok(s) => self.shaping = std::sync::Arc::new(s),
            Err(found) => problems.extend(
                found
                    .into_iter()
                    .map(|m| at.problem_str(&["delivery", "shaping"], m)),
            ),
        }
        self.delivery.shaping = site;
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

    /// The node's egress sources in name order: those of
    /// `[delivery.sources]`, or with none, `default` (the system's address,
    /// `[server] hostname`, never on warm-up).
    pub fn egress_sources(&self) -> Vec<EgressSource> {
        if self.delivery.sources.is_empty() {
            return vec![EgressSource {
                name: DEFAULT_SOURCE.into(),
                address: None,
                ehlo: self.server.hostname.clone(),
                enabled: true,
                warmup: false,
            }];
        }
        self.delivery
            .sources
            .iter()
            .map(|(name, s)| EgressSource {
                name: name.clone(),
                // Checked when the file was read.
                address: s.address.parse().ok(),
                ehlo: if s.ehlo.is_empty() {
                    self.server.hostname.clone()
                } else {
                    s.ehlo.clone()
                },
                enabled: s.enabled,
                warmup: s.warmup,
            })
            .collect()
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

#[cfg(test)]
mod tests;
