//! Subcommands (DESIGN.md "Interfaces other tools rely on").

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use postwarden::config::{Config, ConfigError};
use postwarden::log::LogFormat;
use postwarden::store::Store;

#[derive(Parser)]
#[command(
    name = "postwarden",
    version,
    about = "A mail transfer agent for permission-based senders, with the anti-spam policy built in"
)]
pub struct Cli {
    /// Log format: one text line per event (Postfix style) or JSON lines.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
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
    /// The abuse desk: complaint and abuse reports as received, with whom they name.
    Abuse {
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: AbuseAction,
    },
    /// Webhook delivery per tenant: list (backlog, failures), retry (now).
    Webhooks {
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: WebhooksAction,
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
pub enum WebhooksAction {
    List {
        #[arg(long)]
        json: bool,
    },
    /// Try a tenant's waiting events now instead of after the backoff.
    Retry { tenant: String },
}

#[derive(Subcommand)]
pub enum FeedbackAction {
    /// Print what the feedback processor would record for a message.
    Parse {
        #[arg(long)]
        json: bool,
        message: PathBuf,
    },
}

/// Loads `--config`, else `conf/postwarden.toml`, else the embedded defaults.
pub fn load_config(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        Some(p) => Config::load(p),
        None => {
            let default = Path::new("conf/postwarden.toml");
            if default.is_file() {
                Config::load(default)
            } else {
                let base = std::env::current_dir()
                    .unwrap_or_else(|_| PathBuf::from("."))
                    .join("conf");
                Config::embedded_default(&base).map_err(|problems| ConfigError {
                    file: PathBuf::from("(embedded defaults)"),
                    problems,
                })
            }
        }
    }
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { config } => {
            let config = load_config(config.as_deref())?;
            let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
            runtime.block_on(postwarden::daemon::run(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            action: ConfigAction::Check { config },
        } => match load_config(config.as_deref()) {
            Ok(c) => {
                println!(
                    "configuration ok: {} tenant(s), spool {}",
                    c.tenants.len(),
                    c.spool_path().display()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                for p in &e.problems {
                    println!("{}: {p}", e.file.display());
                }
                Ok(ExitCode::from(1))
            }
        },
        Command::ApiToken => {
            let token = postwarden::token::random_hex(24);
            println!("token: {token}");
            println!(
                "api_token_sha256 = [\"{}\"]",
                postwarden::http::api::sha256_hex(&token)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::HashPassword => {
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("cannot read the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                bail!("empty password on standard input");
            }
            println!("{}", hash_password(password)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            tenant,
            config,
            json,
            message,
            rcpt,
        } => check(&tenant, config.as_deref(), json, &message, &rcpt),
        Command::Queue { config, action } => crate::cli_admin::queue(config.as_deref(), action),
        Command::Contacts { config, action } => {
            crate::cli_admin::contacts(config.as_deref(), action)
        }
        Command::Suppress { config, action } => {
            crate::cli_admin::suppress(config.as_deref(), action)
        }
        Command::Tenant { config, action } => crate::cli_admin::tenant(config.as_deref(), action),
        Command::Abuse { config, action } => crate::cli_admin::abuse(config.as_deref(), action),
        Command::Webhooks { config, action } => {
            crate::cli_admin::webhooks(config.as_deref(), action)
        }
        Command::Feedback {
            action: FeedbackAction::Parse { json, message },
        } => {
            let raw = std::fs::read(&message)
                .with_context(|| format!("cannot read {}", message.display()))?;
            let report = postwarden::feedback::report::parse(&raw);
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                let v = serde_json::to_value(&report)?;
                for (k, val) in v.as_object().into_iter().flatten() {
                    if k != "recipients" {
                        println!(
                            "{k}: {}",
                            val.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| val.to_string())
                        );
                    }
                }
                for r in &report.recipients {
                    println!(
                        "recipient <{}>: {} {:?} {}",
                        r.recipient, r.status, r.class, r.reason
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    let hash = argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("cannot hash: {e}"))?;
    Ok(hash.to_string())
}

fn check(
    tenant: &str,
    config: Option<&Path>,
    json: bool,
    message: &Path,
    rcpt: &[String],
) -> anyhow::Result<ExitCode> {
    let result = (|| -> anyhow::Result<(bool, String)> {
        let config = load_config(config)?;
        let Some(tenant_config) = config.tenant(tenant) else {
            bail!("no tenant {tenant:?} in the configuration");
        };
        let raw =
            std::fs::read(message).with_context(|| format!("cannot read {}", message.display()))?;
        let policy = postwarden::policy::TenantPolicy::new(tenant, tenant_config, &config);
        let view = postwarden::policy::MessageView::parse(&raw);
        let verdict = if rcpt.is_empty() {
            postwarden::policy::check_message(&policy, &view, &[], &NoConsent)?
        } else {
            // Read-only: works while the daemon holds the spool.
            let store = Store::open_for_read_with(&config.spool_path(), &config.store)?;
            let mut verdict = postwarden::policy::check_message(&policy, &view, rcpt, &store)?;
            for r in rcpt {
                if let Some(reason) = postwarden::policy::check_recipient(&policy, r, &store)? {
                    verdict.reasons.insert(0, reason);
                }
            }
            verdict
        };
        let out = if json {
            verdict.to_json().to_string()
        } else if verdict.reasons.is_empty() {
            "accept: the message passes every rule".to_string()
        } else {
            let mut lines = vec![if verdict.is_reject() {
                "reject:"
            } else {
                "accept, with warnings:"
            }
            .to_string()];
            for r in &verdict.reasons {
                let action = match r.action {
                    postwarden::config::RuleAction::Reject => "reject",
                    _ => "warn",
                };
                lines.push(format!("  {} ({action}, {}): {}", r.code, r.smtp, r.detail));
            }
            lines.join("\n")
        };
        Ok((verdict.is_reject(), out))
    })();
    match result {
        Ok((reject, out)) => {
            println!("{out}");
            Ok(ExitCode::from(u8::from(reject)))
        }
        Err(e) => {
            eprintln!("postwarden: {e:#}");
            Ok(ExitCode::from(2))
        }
    }
}

/// Consent look-ups for a check without recipients: never asked.
struct NoConsent;

impl postwarden::consent::ConsentLookup for NoConsent {
    fn state(
        &self,
        _: &str,
        _: &str,
        _: &str,
    ) -> Result<postwarden::consent::ConsentState, postwarden::store::StoreError> {
        Ok(postwarden::consent::ConsentState::None)
    }
    fn suppression(
        &self,
        _: &str,
        _: &str,
    ) -> Result<Option<postwarden::consent::Suppression>, postwarden::store::StoreError> {
        Ok(None)
    }
}
