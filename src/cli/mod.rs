//! The `postwarden` command's subcommands: each turns its arguments into a
//! call of the library and the answer into output and an exit code.
//! `args` is what clap reads, `admin` the queue/contacts/tenant commands
//! (over the daemon's API while it runs), `api_client` that API's client.

mod admin;
mod api_client;
mod args;
mod load;

pub use args::Cli;
use args::*;
use load::load_config;

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};

use postwarden::store::Store;

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
        Command::Queue { config, action } => admin::queue(config.as_deref(), action),
        Command::Contacts { config, action } => admin::contacts(config.as_deref(), action),
        Command::Suppress { config, action } => admin::suppress(config.as_deref(), action),
        Command::Tenant { config, action } => admin::tenant(config.as_deref(), action),
        Command::Abuse { config, action } => admin::abuse(config.as_deref(), action),
        Command::Dkim { config, action } => dkim(config.as_deref(), action),
        Command::Domains {
            config,
            action: DomainsAction::Check { tenant, json },
        } => domains_check(config.as_deref(), tenant.as_deref(), json),
        Command::Webhooks { config, action } => admin::webhooks(config.as_deref(), action),
        Command::Shaping { config, action } => admin::shaping(config.as_deref(), action),
        Command::Spool { config, action } => admin::spool(config.as_deref(), action),
        Command::Feedback {
            action:
                FeedbackAction::Parse {
                    json,
                    explain,
                    rules,
                    message,
                },
        } => {
            postwarden::feedback::classify::install_site_rules(rules.as_deref())?;
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
                    let why = if explain {
                        format!(" (decided by: {})", r.rule)
                    } else {
                        String::new()
                    };
                    println!(
                        "recipient <{}>: {} {:?} {}{why}",
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
            postwarden::policy::check_message(&policy, &view, &[], &NoConsent, None)?
        } else {
            // Read-only: works while the daemon holds the spool.
            let store = Store::open_for_read_with(&config.spool_path(), &config.store)?;
            let mut verdict =
                postwarden::policy::check_message(&policy, &view, rcpt, &store, None)?;
            for r in rcpt {
                if let Some(reason) = postwarden::policy::check_recipient(&policy, r, &store)? {
                    verdict.reasons.insert(0, reason);
                }
            }
            verdict
        };
        // Which list consent was judged for: what integrators most often get
        // wrong in List-Id (README "What makes a message pass").
        let list = policy.list_of(&view);
        let list_line = match (&list, &view.list_id) {
            (Some(l), Some(_)) => format!("list: {l} (from List-Id)"),
            (Some(l), None) => format!("list: {l} (the tenant's default_list; no List-Id)"),
            (None, _) => "list: none (no List-Id and no default_list)".to_string(),
        };
        let out = if json {
            let mut v = verdict.to_json();
            v["list"] = serde_json::json!(list);
            v.to_string()
        } else if verdict.reasons.is_empty() {
            format!("accept: the message passes every rule\n{list_line}")
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
            lines.push(list_line);
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

/// `postwarden dkim keygen`: a new key beside the configuration (never over
/// an existing file), mode 0600, and what to publish and configure.
fn dkim(config: Option<&Path>, action: DkimAction) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let (tenant, domain, selector, algorithm, bits, dir, next) = match action {
        DkimAction::Keygen {
            tenant,
            domain,
            selector,
            algorithm,
            bits,
            dir,
            next,
        } => (tenant, domain, selector, algorithm, bits, dir, next),
        DkimAction::Rotate { tenant, overlap } => return dkim_rotate(config, &tenant, overlap),
    };
    let cfg = load_config(config)?;
    let t = cfg
        .tenant(&tenant)
        .with_context(|| format!("no tenant {tenant:?} in the configuration"))?;
    let domain = domain
        .or_else(|| t.dkim_domain.clone())
        .or_else(|| t.sender_domains.first().cloned())
        .with_context(|| format!("tenant {tenant} has no sender domain: give --domain"))?
        .to_ascii_lowercase();
    let selector = selector.unwrap_or_else(|| {
        let now = time::OffsetDateTime::now_utc();
        format!("pw{}{:02}", now.year(), u8::from(now.month()))
    });
    if !postwarden::values::address::is_domain(&selector) {
        bail!("selector {selector:?} is not a DNS label");
    }
    if next && t.dkim_selector.as_deref() == Some(selector.as_str()) {
        bail!("selector {selector:?} is the current one: give the next key another --selector");
    }
    let key = postwarden::queue::dkim::generate(&algorithm, bits)?;
    let dir = match dir {
        Some(d) => d,
        None => cfg.resolve(Path::new(".")),
    };
    let file = format!("{selector}.{domain}.dkim.pem");
    let path = dir.join(&file);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| {
            format!(
                "cannot create {} (an existing key is never replaced)",
                path.display()
            )
        })?;
    out.write_all(key.pem.as_bytes())
        .and_then(|_| out.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {} (mode 0600)", path.display());
    println!();
    println!("Publish this DNS record (the strings are joined by receivers):");
    println!(
        "{}",
        postwarden::queue::dkim::zone_line(&selector, &domain, &key.record)
    );
    println!();
    println!("Then under [tenants.{tenant}] in the configuration (and reload):");
    let prefix = if next { "dkim_next_" } else { "dkim_" };
    println!("{prefix}selector = \"{selector}\"");
    println!("{prefix}key = \"{}\"", path.display());
    println!("{prefix}algorithm = \"{algorithm}\"");
    if next {
        println!();
        println!("Once `postwarden domains check` shows the record, `postwarden dkim rotate --tenant {tenant}` switches to it.");
    }
    if t.dkim_domain.is_none() && t.sender_domains.first() != Some(&domain) {
        println!("dkim_domain = \"{domain}\"");
    }
    Ok(ExitCode::SUCCESS)
}

/// `postwarden dkim rotate`: the next key becomes the signing key once its
/// record is published; the configuration file is changed in place with
/// toml_edit (comments and layout kept), checked as a whole before it
/// replaces the old one.
fn dkim_rotate(config: Option<&Path>, tenant: &str, overlap: u32) -> anyhow::Result<ExitCode> {
    let cfg = load_config(config)?;
    let Some(path) = cfg.source.clone() else {
        bail!("running on the embedded defaults: there is no configuration file to change");
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the resolver's runtime")?;
    match runtime.block_on(postwarden::queue::domains::next_key_ready(&cfg, tenant)) {
        Ok(f) => println!("ok      {}: {}", f.check, f.detail),
        Err(f) => {
            println!("error   {}: {}", f.check, f.detail);
            if let Some(p) = &f.publish {
                println!("        publish: {p}");
            }
            println!("not rotated: publish the next key's record first");
            return Ok(ExitCode::FAILURE);
        }
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("cannot parse {}", path.display()))?;
    let table = doc
        .get_mut("tenants")
        .and_then(|t| t.get_mut(tenant))
        .and_then(|t| t.as_table_like_mut())
        .with_context(|| format!("no [tenants.{tenant}] table in {}", path.display()))?;
    let text_of = |t: &dyn toml_edit::TableLike, key: &str| {
        t.get(key).and_then(|v| v.as_str()).map(str::to_string)
    };
    let old = text_of(table, "dkim_selector");
    let (Some(selector), Some(key)) = (
        text_of(table, "dkim_next_selector"),
        text_of(table, "dkim_next_key"),
    ) else {
        bail!(
            "dkim_next_selector and dkim_next_key are not under [tenants.{tenant}] in {}",
            path.display()
        );
    };
    table.insert("dkim_selector", toml_edit::value(selector.clone()));
    table.insert("dkim_key", toml_edit::value(key));
    if let Some(algorithm) = text_of(table, "dkim_next_algorithm") {
        table.insert("dkim_algorithm", toml_edit::value(algorithm));
    }
    for k in ["dkim_next_selector", "dkim_next_key", "dkim_next_algorithm"] {
        table.remove(k);
    }
    let until = time::OffsetDateTime::now_utc().date() + time::Duration::days(i64::from(overlap));
    let until = postwarden::values::clock::format_day(until);
    if let Some(old) = &old {
        table.insert("dkim_previous_selector", toml_edit::value(old.clone()));
        table.insert("dkim_previous_until", toml_edit::value(until.clone()));
    }
    let tmp = path.with_extension("toml.rotate");
    std::fs::write(&tmp, doc.to_string())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    if let Err(e) = postwarden::config::Config::load(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        let problems: Vec<String> = e.problems.iter().map(|p| p.to_string()).collect();
        bail!(
            "the changed configuration would not load, nothing changed: {}",
            problems.join("; ")
        );
    }
    if let Ok(meta) = std::fs::metadata(&path) {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot replace {}", path.display()))?;
    println!("{}: tenant {tenant} signs with selector {selector} after a reload (systemctl reload postwarden, or SIGHUP)", path.display());
    if let Some(old) = old {
        println!("keep the record of {old} published until {until} (mail it signed may still be under way); then remove it: `domains check` says when");
    }
    Ok(ExitCode::SUCCESS)
}

/// `postwarden domains check`: one line per finding (or JSON), the record
/// to publish under each that is not ok; exit 1 when one is an error.
fn domains_check(
    config: Option<&Path>,
    tenant: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use postwarden::queue::domains::{check, Level};
    let cfg = load_config(config)?;
    if let Some(t) = tenant {
        if cfg.tenant(t).is_none() {
            bail!("no tenant {t:?} in the configuration");
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the resolver's runtime")?;
    let findings = runtime.block_on(check(&cfg, tenant));
    if json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else {
        for f in &findings {
            let level = match f.level {
                Level::Ok => "ok",
                Level::Warning => "warning",
                Level::Error => "error",
            };
            println!("{level:<7} {}: {}", f.check, f.detail);
            if let Some(p) = &f.publish {
                println!("        publish: {p}");
            }
        }
    }
    Ok(if findings.iter().any(|f| f.level == Level::Error) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
