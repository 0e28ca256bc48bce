//! Admin subcommands: queue, contacts, suppression, tenants.
//!
//! Reads work while the daemon runs (the spool is opened as a RocksDB
//! secondary instance). Changes go through the daemon's admin API while it
//! runs, else straight into the spool: both run the same library code.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use postwarden::consent::import::{ImportOptions, ImportReport};
use postwarden::consent::ops::{self, Change};
use postwarden::consent::{self, Contact, Suppression};
use postwarden::queue::admin::Action;
use postwarden::store::queue::QueueEntry;
use postwarden::store::retention::Kept;
use postwarden::store::{Store, StoreError};

use super::api_client::{segment, ApiAnswer, ApiClient};
use super::args::{
    AbuseAction, ContactsAction, QueueAction, ShapingAction, SpoolAction, SuppressAction,
    TenantAction, WebhooksAction,
};
use super::load::load_config;

fn open_for_read(config: Option<&Path>) -> anyhow::Result<Store> {
    let config = load_config(config)?;
    Ok(Store::open_for_read_with(
        &config.spool_path(),
        &config.store,
    )?)
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub fn queue(config: Option<&Path>, action: QueueAction) -> anyhow::Result<ExitCode> {
    match action {
        QueueAction::List { json } => {
            let store = open_for_read(config)?;
            let entries = store.queue_entries()?;
            if json {
                print_json(&entries)?;
            } else if entries.is_empty() {
                println!("Mail queue is empty");
            } else {
                for e in &entries {
                    print_entry_summary(e);
                }
                println!("-- {} message(s)", entries.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        QueueAction::Show { queue_id, json } => {
            let store = open_for_read(config)?;
            let Some(entry) = store.queue_entry(&queue_id)? else {
                eprintln!("postwarden: no message {queue_id} in the queue");
                return Ok(ExitCode::from(1));
            };
            if json {
                print_json(&entry)?;
            } else {
                print_entry_summary(&entry);
                if let Some(msg) = store.message(&queue_id)? {
                    let text = String::from_utf8_lossy(&msg);
                    let headers = text.split("\r\n\r\n").next().unwrap_or("");
                    println!("\n{headers}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        QueueAction::Hold { queue_id, all } => change_queue(config, queue_id, all, Action::Hold),
        QueueAction::Release { queue_id, all } => {
            change_queue(config, queue_id, all, Action::Release)
        }
        QueueAction::Flush { queue_id, all } => change_queue(config, queue_id, all, Action::Flush),
        QueueAction::Delete { queue_id, all } => {
            change_queue(config, queue_id, all, Action::Delete)
        }
    }
}

/// A queue change, in the spool or through the running daemon.
fn change_queue(
    config: Option<&Path>,
    queue_id: Option<String>,
    all: bool,
    action: Action,
) -> anyhow::Result<ExitCode> {
    let changed: Vec<String> = match admin(config)? {
        Admin::Local(_, store) => {
            let ids: Vec<String> =
                postwarden::queue::admin::select(&store, queue_id.as_deref(), all)?
                    .into_iter()
                    .map(|e| e.id)
                    .collect();
            postwarden::queue::admin::apply_all(&store, &ids, action)?
        }
        Admin::Remote(api) => {
            let verb = serde_json::to_value(action)?;
            let body = serde_json::to_vec(&serde_json::json!({"queue_id": queue_id, "all": all}))?;
            let v = remote(api.call(
                "POST",
                &format!("/admin/v1/queue/{}", verb.as_str().unwrap_or("")),
                Some(body),
                "application/json",
            )?)?;
            serde_json::from_value(v["changed"].clone())?
        }
    };
    for id in &changed {
        println!("{id}: {}", action.done());
    }
    Ok(ExitCode::SUCCESS)
}

fn print_entry_summary(e: &QueueEntry) {
    let held = if e.held { "!" } else { "" };
    println!(
        "{}{held} {:>8} tenant={} from=<{}> received={} next={}",
        e.id, e.size, e.tenant, e.sender, e.received_at, e.next_attempt
    );
    for r in &e.recipients {
        let status = serde_json::to_value(r.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        println!(
            "    <{}> {status} attempts={}{}",
            r.address,
            r.attempts,
            r.last_reply
                .as_deref()
                .map(|l| format!(" ({l})"))
                .unwrap_or_default()
        );
    }
}

/// Where an admin change goes: into the spool itself when the daemon is
/// stopped, else to the running daemon's admin API (RocksDB has one writer).
/// Both run the same library functions, so the result is the same.
enum Admin {
    Local(Box<postwarden::config::Config>, Store),
    Remote(ApiClient),
}

fn admin(config: Option<&Path>) -> anyhow::Result<Admin> {
    let config = load_config(config)?;
    let spool = config.spool_path();
    match Store::open_with(&spool, &config.store) {
        Ok(store) => Ok(Admin::Local(Box::new(config), store)),
        Err(StoreError::Locked { .. }) => {
            Ok(Admin::Remote(ApiClient::for_daemon(&config, &spool)?))
        }
        Err(e) => Err(e.into()),
    }
}

fn tenant_config(
    config: &postwarden::config::Config,
    tenant: &str,
) -> anyhow::Result<postwarden::config::TenantConfig> {
    config
        .tenant(tenant)
        .cloned()
        .with_context(|| format!("no tenant {tenant:?} in the configuration"))
}

/// The JSON of a remote answer, or its error as this command's error.
fn remote(answer: ApiAnswer) -> anyhow::Result<serde_json::Value> {
    if answer.ok() {
        Ok(answer.body)
    } else {
        bail!("{}", answer.detail())
    }
}

fn api_path(tenant: &str, rest: &str) -> String {
    format!("/api/v1/{}/{rest}", segment(tenant))
}

pub fn contacts(config: Option<&Path>, action: ContactsAction) -> anyhow::Result<ExitCode> {
    match action {
        ContactsAction::Set {
            tenant,
            list,
            state,
            source,
            ip,
            address,
        } => {
            let change = Change {
                list: list.clone(),
                state,
                source: Some("admin".into()),
                ip,
                user_agent: None,
                detail: Some(source),
                at: None,
            };
            let contact: Contact = match admin(config)? {
                Admin::Local(config, store) => {
                    let t = tenant_config(&config, &tenant)?;
                    ops::set_state(&store, &tenant, &t, &address, &change, "admin")?
                }
                Admin::Remote(api) => {
                    let path =
                        api_path(&tenant, &format!("contacts/{}/consent", segment(&address)));
                    let body = serde_json::to_vec(&change)?;
                    serde_json::from_value(remote(api.call(
                        "PUT",
                        &path,
                        Some(body),
                        "application/json",
                    )?)?)?
                }
            };
            println!(
                "<{}> on {tenant}/{list}: {}",
                consent::normalize_address(&address),
                contact.state.as_str()
            );
            Ok(ExitCode::SUCCESS)
        }
        ContactsAction::Show {
            tenant,
            address,
            json,
        } => {
            let loaded = load_config(config)?;
            let store = Store::open_for_read_with(&loaded.spool_path(), &loaded.store)?;
            let report = ops::show(&store, &tenant, &address)?;
            if json {
                print_json(&report)?;
                return Ok(ExitCode::SUCCESS);
            }
            println!("<{}> tenant={tenant}", report.address);
            match &report.suppression {
                Some(s) => println!(
                    "  suppressed: {} (source {}, at {})",
                    s.reason, s.source, s.at
                ),
                None => println!("  not suppressed"),
            }
            // The soft bounces within the tenant's window now: the level a
            // mailing's X-Postwarden-Skip-Soft-Bounces is compared with.
            let window =
                postwarden::config::TenantConfig::soft_bounce_window_of(loaded.tenant(&tenant));
            let now = postwarden::values::now();
            for entry in &report.lists {
                let c = &entry.contact;
                println!(
                    "  list {}: {} (hard bounces {}, soft bounces {} in the last {} days)",
                    entry.list,
                    c.state.as_str(),
                    c.hard_bounces,
                    c.soft_bounce_level(now, window),
                    window / 86400
                );
                for e in &c.evidence {
                    println!(
                        "    {} {} source={}{}{}",
                        e.at,
                        e.state.as_str(),
                        e.source,
                        e.ip.as_deref()
                            .map(|ip| format!(" ip={ip}"))
                            .unwrap_or_default(),
                        e.detail
                            .as_deref()
                            .map(|d| format!(" ({d})"))
                            .unwrap_or_default()
                    );
                    if let Some(line) = consent_line(e) {
                        println!("      consent: {line}");
                    }
                }
            }
            for (hash, w) in &report.consent_texts {
                println!(
                    "  wording {hash}: version {} ({}): {:?}",
                    w.version, w.lang, w.text
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ContactsAction::List { tenant, list, json } => {
            let store = open_for_read(config)?;
            let mut rows = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let (page, next) = store.contacts_page::<Contact>(
                    &tenant,
                    list.as_deref(),
                    after.as_deref(),
                    1000,
                )?;
                rows.extend(page);
                match next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            if json {
                let rows: Vec<_> = rows
                    .iter()
                    .map(|(l, a, c)| serde_json::json!({"list": l, "address": a, "state": c.state}))
                    .collect();
                print_json(&rows)?;
            } else {
                for (l, a, c) in &rows {
                    println!("{l}\t{a}\t{}", c.state.as_str());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ContactsAction::Form { tenant, list, json } => {
            use postwarden::consent::wording;
            use postwarden::http::form;
            let loaded = load_config(config)?;
            let settings = tenant_config(&loaded, &tenant)?;
            if !postwarden::consent::address::is_valid_list_name(&list) {
                bail!("{list:?} is not a valid list name");
            }
            let wordings: Vec<_> = [postwarden::values::Lang::En, postwarden::values::Lang::De]
                .into_iter()
                .map(|lang| wording::current(&settings, &list, lang))
                .collect();
            let url = form::form_url(&loaded, &tenant, &list);
            let snippet = form::snippet(&loaded, &tenant, &list);
            if json {
                print_json(&serde_json::json!({
                    "form_url": url, "snippet": snippet, "consent": wordings,
                    "form_origins": settings.form_origins,
                }))?;
                return Ok(ExitCode::SUCCESS);
            }
            println!("form: {url}");
            for w in &wordings {
                println!("consent ({}): version {}: {:?}", w.lang, w.version, w.text);
            }
            if settings.form_origins.is_empty() {
                println!(
                    "no form_origins: the form can be embedded only on {}",
                    loaded.public_base_url()
                );
            } else {
                println!("may be embedded on: {}", settings.form_origins.join(" "));
            }
            println!("embed with (PAGE-URL: the page's own address, kept as evidence):\n{snippet}");
            Ok(ExitCode::SUCCESS)
        }
        ContactsAction::Export { tenant, address } => {
            let store = open_for_read(config)?;
            let report = ops::show(&store, &tenant, &address)?;
            if report.lists.is_empty() && report.suppression.is_none() {
                bail!("no records of <{}> for {tenant}", report.address);
            }
            print_json(&ops::export(&report, postwarden::values::now()))?;
            Ok(ExitCode::SUCCESS)
        }
        ContactsAction::Import {
            tenant,
            list,
            source,
            attest,
            state,
            skip_refused,
            json,
            file,
        } => {
            let data =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let opts = ImportOptions {
                list,
                source,
                attest,
                state,
                skip_refused,
            };
            let report: ImportReport = match admin(config)? {
                Admin::Local(config, store) => {
                    let t = tenant_config(&config, &tenant)?;
                    postwarden::consent::import::import(&store, &tenant, &t, &opts, &data)?
                }
                Admin::Remote(api) => {
                    let query = serde_urlencoded_query(&opts);
                    let answer = api.call(
                        "POST",
                        &format!("{}?{query}", api_path(&tenant, "imports")),
                        Some(data),
                        "text/csv",
                    )?;
                    if answer.status == 422 && answer.body.get("refused").is_some() {
                        serde_json::from_value(answer.body)?
                    } else {
                        serde_json::from_value(remote(answer)?)?
                    }
                }
            };
            if json {
                print_json(&report)?;
            } else {
                for r in &report.refused {
                    println!("line {}: {} {}", r.line, r.email, r.reason);
                }
                println!(
                    "{} rows, {} imported, {} refused{}",
                    report.rows,
                    report.imported,
                    report.refused.len(),
                    if report.committed {
                        ""
                    } else {
                        "; nothing was imported"
                    }
                );
            }
            Ok(if report.committed || report.refused.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        ContactsAction::Delete {
            tenant,
            list,
            address,
        } => {
            let n = match admin(config)? {
                Admin::Local(_, store) => ops::delete(&store, &tenant, &address, list.as_deref())?,
                Admin::Remote(api) => {
                    let mut path = api_path(&tenant, &format!("contacts/{}", segment(&address)));
                    if let Some(l) = &list {
                        path.push_str(&format!("?list={}", segment(l)));
                    }
                    let v = remote(api.call("DELETE", &path, None, "application/json")?)?;
                    v["deleted"].as_u64().unwrap_or(0) as usize
                }
            };
            println!(
                "<{}>: {n} record(s) deleted",
                consent::normalize_address(&address)
            );
            Ok(ExitCode::SUCCESS)
        }
        ContactsAction::Erase { tenant, address } => {
            let n = match admin(config)? {
                Admin::Local(_, store) => ops::erase(&store, &tenant, &address)?,
                Admin::Remote(api) => {
                    let path = api_path(&tenant, &format!("contacts/{}/erase", segment(&address)));
                    let v = remote(api.call("POST", &path, None, "application/json")?)?;
                    v["erased"].as_u64().unwrap_or(0) as usize
                }
            };
            println!("erased: {n} record(s); the address stays suppressed as a hash");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The import options as a query string for the API.
fn serde_urlencoded_query(opts: &ImportOptions) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("list", &opts.list);
    q.append_pair("source", &opts.source);
    q.append_pair("attest", if opts.attest { "true" } else { "false" });
    q.append_pair(
        "skip_refused",
        if opts.skip_refused { "true" } else { "false" },
    );
    if let Some(s) = &opts.state {
        q.append_pair("state", s);
    }
    q.finish()
}

pub fn suppress(config: Option<&Path>, action: SuppressAction) -> anyhow::Result<ExitCode> {
    match action {
        SuppressAction::Add {
            tenant,
            reason,
            detail,
            json,
            address,
        } => {
            let record = match admin(config)? {
                Admin::Local(_, store) => serde_json::to_value(ops::add_suppression(
                    &store, &tenant, &address, &reason, "admin", detail,
                )?)?,
                Admin::Remote(api) => {
                    let body =
                        serde_json::json!({"email": address, "reason": reason, "detail": detail});
                    remote(api.call(
                        "POST",
                        &api_path(&tenant, "suppression"),
                        Some(serde_json::to_vec(&body)?),
                        "application/json",
                    )?)?
                }
            };
            let address = consent::normalize_address(&address);
            if json {
                print_json(&serde_json::json!({"address": address, "suppression": record}))?;
            } else {
                println!("<{address}> suppressed for {tenant}");
            }
            Ok(ExitCode::SUCCESS)
        }
        SuppressAction::List { tenant, json } => {
            let store = open_for_read(config)?;
            let rows = store.suppressions::<Suppression>(&tenant)?;
            if json {
                let rows: Vec<_> = rows
                    .iter()
                    .map(|(a, s)| serde_json::json!({"address": a, "suppression": s}))
                    .collect();
                print_json(&rows)?;
            } else {
                for (a, s) in &rows {
                    println!("{a}\t{}\t{}\t{}", s.reason, s.source, s.at);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        SuppressAction::Remove {
            tenant,
            reason,
            force,
            json,
            address,
        } => {
            let was = match admin(config)? {
                Admin::Local(_, store) => serde_json::to_value(ops::remove_suppression(
                    &store, &tenant, &address, &reason, force,
                )?)?,
                Admin::Remote(api) => {
                    let path = format!(
                        "{}?reason={}&force={force}",
                        api_path(&tenant, &format!("suppression/{}", segment(&address))),
                        segment(&reason)
                    );
                    remote(api.call("DELETE", &path, None, "application/json")?)?["was"].clone()
                }
            };
            let address = consent::normalize_address(&address);
            if json {
                print_json(&serde_json::json!({"address": address, "removed": true, "was": was}))?;
            } else {
                println!("<{address}> removed from the suppression list of {tenant}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn tenant(config: Option<&Path>, action: TenantAction) -> anyhow::Result<ExitCode> {
    match action {
        TenantAction::Stats { tenant, json } => {
            let loaded = load_config(config)?;
            let settings = tenant_config(&loaded, &tenant)?;
            let store = Store::open_for_read_with(&loaded.spool_path(), &loaded.store)?;
            let state = postwarden::tenant::state(&store, &tenant)?;
            let stats = postwarden::http::api::stats_json(&state, &settings);
            if json {
                print_json(&stats)?;
            } else {
                println!(
                    "{tenant}: submitted={} policy_rejected={} delivered={} deferred={} hard_bounces={} soft_bounces={} complaints={} unsubscribes={} complaint_rate={:.3}% suspended={}",
                    state.submitted,
                    state.policy_rejected,
                    state.delivered,
                    state.deferred,
                    state.hard_bounces,
                    state.soft_bounces,
                    state.complaints,
                    state.unsubscribes,
                    state.complaint_rate() * 100.0,
                    state.suspended.as_deref().unwrap_or("no")
                );
                for (code, n) in &state.rejected_by_reason {
                    println!("  rejected {code}: {n}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        TenantAction::Suspend { tenant, reason } => {
            match admin(config)? {
                Admin::Local(_, store) => {
                    let event = serde_json::json!({"type": "tenant_suspended", "at": postwarden::values::now(), "tenant": tenant, "reason": reason, "source": "admin"});
                    postwarden::tenant::record(&store, &tenant, Some(event), |s| {
                        s.suspended = Some(reason.clone())
                    })
                    .context("cannot suspend")?;
                }
                Admin::Remote(api) => {
                    let body = serde_json::to_vec(&serde_json::json!({"reason": reason}))?;
                    remote(api.call(
                        "PUT",
                        &api_path(&tenant, "suspension"),
                        Some(body),
                        "application/json",
                    )?)?;
                }
            }
            println!("{tenant}: suspended ({reason})");
            Ok(ExitCode::SUCCESS)
        }
        TenantAction::Resume { tenant } => {
            match admin(config)? {
                Admin::Local(_, store) => {
                    let event = serde_json::json!({"type": "tenant_resumed", "at": postwarden::values::now(), "tenant": tenant, "source": "admin"});
                    postwarden::tenant::record(&store, &tenant, Some(event), |s| s.resume())?;
                }
                Admin::Remote(api) => {
                    remote(api.call(
                        "DELETE",
                        &api_path(&tenant, "suspension"),
                        None,
                        "application/json",
                    )?)?;
                }
            }
            println!("{tenant}: resumed");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The egress paths live in the running daemon's memory: these go through
/// its admin API.
pub fn shaping(config: Option<&Path>, action: ShapingAction) -> anyhow::Result<ExitCode> {
    let api = match admin(config)? {
        Admin::Remote(api) => api,
        Admin::Local(..) => bail!(
            "the daemon is not running: egress paths and their holds live in the running daemon (a restart starts them afresh)"
        ),
    };
    let post = |action: &str, body: serde_json::Value| -> anyhow::Result<serde_json::Value> {
        remote(api.call(
            "POST",
            &format!("/admin/v1/shaping/{action}"),
            Some(serde_json::to_vec(&body)?),
            "application/json",
        )?)
    };
    match action {
        ShapingAction::Status { json } => {
            let answer = remote(api.call("GET", "/admin/v1/shaping", None, "application/json")?)?;
            if json {
                print_json(&answer)?;
                return Ok(ExitCode::SUCCESS);
            }
            for s in answer["sources"].as_array().into_iter().flatten() {
                println!(
                    "source {}\taddress={} ehlo={}{}",
                    s["name"].as_str().unwrap_or(""),
                    s["address"].as_str().unwrap_or("(the system's)"),
                    s["ehlo"].as_str().unwrap_or(""),
                    if s["enabled"] == false {
                        " OUT OF ROTATION"
                    } else {
                        ""
                    }
                );
            }
            for w in answer["warmups"].as_array().into_iter().flatten() {
                let today: Vec<String> = w["today"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(_, v)| v[0].as_u64().unwrap_or(0) > 0)
                    .map(|(p, v)| format!("{p}:{}/{}", v[0], v[1]))
                    .collect();
                println!(
                    "warm-up of {}\tday {} of {}{} today={}",
                    w["subject"].as_str().unwrap_or(""),
                    w["day"],
                    w["days"],
                    match w["held_days"].as_u64() {
                        Some(n) if n > 0 => format!(" ({n} day(s) held back)"),
                        _ => String::new(),
                    },
                    if today.is_empty() {
                        "nothing sent".to_string()
                    } else {
                        today.join(",")
                    }
                );
            }
            let paths = answer["paths"].as_array().cloned().unwrap_or_default();
            if paths.is_empty() {
                println!("no egress path in use");
            }
            for p in &paths {
                let mut line = format!(
                    "{}\t{}\tconnections={}/{} sent={}/min,{}/h waiting={} limits=per_minute:{},per_hour:{},tls:{}",
                    p["source"].as_str().unwrap_or(""),
                    p["path"].as_str().unwrap_or(""),
                    p["open_connections"],
                    p["limits"]["connections"],
                    p["sent_last_minute"],
                    p["sent_last_hour"],
                    p["waiting"],
                    p["limits"]["messages_per_minute"],
                    p["limits"]["messages_per_hour"],
                    p["limits"]["tls"].as_str().unwrap_or("")
                );
                for (key, by) in [
                    ("suspended_until", "suspended_by"),
                    ("throttled_until", "throttled_by"),
                ] {
                    if let Some(until) = p[key].as_u64() {
                        line.push_str(&format!(
                            " {}={until} ({})",
                            key.trim_end_matches("_until"),
                            p[by].as_str().unwrap_or("")
                        ));
                    }
                }
                if p["warmup"].is_object() {
                    line.push_str(&format!(
                        " warmup=day {}:{}/{}",
                        p["warmup"]["day"], p["warmup"]["used"], p["warmup"]["cap"]
                    ));
                }
                if let Some(reply) = p["last_reply"].as_str() {
                    line.push_str(&format!(" reply={reply:?}"));
                }
                println!("{line}");
            }
        }
        ShapingAction::Suspend {
            path,
            source,
            duration,
            reason,
        } => {
            let answer = post(
                "suspend",
                serde_json::json!({"path": path, "source": source, "duration": duration, "reason": reason}),
            )?;
            println!(
                "{}: suspended until {} ({reason})",
                answer["path"].as_str().unwrap_or(&path),
                answer["suspended_until"]
            );
        }
        ShapingAction::Resume {
            path,
            source,
            reason,
        } => {
            let answer = post(
                "resume",
                serde_json::json!({"path": path, "source": source, "reason": reason}),
            )?;
            println!(
                "{}: resumed ({} path(s) were held)",
                answer["path"].as_str().unwrap_or(&path),
                answer["resumed"]
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn webhooks(config: Option<&Path>, action: WebhooksAction) -> anyhow::Result<ExitCode> {
    match action {
        WebhooksAction::List { json } => {
            let loaded = load_config(config)?;
            let store = Store::open_for_read_with(&loaded.spool_path(), &loaded.store)?;
            let rows = postwarden::webhooks::status(&store, &loaded)?;
            if json {
                print_json(&rows)?;
            } else if rows.is_empty() {
                println!("no tenant has a webhook_url");
            } else {
                for r in &rows {
                    println!(
                        "{}\t{}\tbacklog={} delivered={} given_up={} failures={}{}",
                        r["tenant"].as_str().unwrap_or(""),
                        r["url"].as_str().unwrap_or(""),
                        r["backlog"],
                        r["delivered"],
                        r["given_up"],
                        r["failures"],
                        r["last_error"]
                            .as_str()
                            .map(|e| format!(" last_error={e}"))
                            .unwrap_or_default()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        WebhooksAction::Retry { tenant } => {
            match admin(config)? {
                Admin::Local(_, store) => postwarden::webhooks::retry_now(&store, &tenant)?,
                Admin::Remote(api) => {
                    remote(api.call(
                        "POST",
                        &format!("/admin/v1/webhooks/{}/retry", segment(&tenant)),
                        None,
                        "application/json",
                    )?)?;
                }
            }
            println!("{tenant}: webhook events will be tried now");
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn spool(config: Option<&Path>, action: SpoolAction) -> anyhow::Result<ExitCode> {
    let json = match action {
        SpoolAction::Stats { json } => json,
        SpoolAction::Prune { json } => return prune(config, json),
    };
    let loaded = load_config(config)?;
    let store = Store::open_for_read_with(&loaded.spool_path(), &loaded.store)?;
    let kinds = postwarden::retention::stats(&store)?;
    let queued = store.queue_counts()?.total();
    let (disk, free) = (store.disk_bytes(), store.free_space()?);
    let now = postwarden::values::now();
    let period = |name: &str| {
        Kept::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .map(|k| postwarden::retention::period(&loaded.retention, k))
    };
    if json {
        print_json(&serde_json::json!({
            "kinds": kinds.iter().map(|(k, s)| (k.to_string(), serde_json::json!({
                "records": s.records, "bytes": s.bytes, "oldest": s.oldest,
                "retention_seconds": period(k),
            }))).collect::<serde_json::Map<_, _>>(),
            "queued_messages": queued,
            "shared_state": store.shared_backend_name(),
            "spool_disk_bytes": disk,
            "free_bytes": free,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<16}{:>12}{:>14}  {:<22}retention",
        "kind", "records", "bytes", "oldest"
    );
    for (kind, s) in &kinds {
        let oldest = s
            .oldest
            .map(|t| format!("{} ago", age(now.saturating_sub(t))))
            .unwrap_or_else(|| "-".into());
        println!(
            "{kind:<16}{:>12}{:>14}  {oldest:<22}{}",
            s.records,
            s.bytes,
            period(kind).map(age).unwrap_or_default()
        );
    }
    println!("queued messages: {queued}");
    println!(
        "shared state: {} · spool on disk: {disk} bytes · free: {free} bytes",
        store.shared_backend_name()
    );
    Ok(ExitCode::SUCCESS)
}

fn prune(config: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let loaded = load_config(config)?;
    let store = match Store::open_with(&loaded.spool_path(), &loaded.store) {
        Err(StoreError::Locked { .. }) => bail!(
            "the daemon holds the spool and prunes it itself every {} s ([retention] interval)",
            loaded.retention.interval
        ),
        other => other?,
    };
    let _lease = store
        .try_shared_lock(postwarden::retention::PRUNE_LOCK_ID)?
        .context("another node of the fleet is pruning the shared state now")?;
    let pass =
        postwarden::retention::prune(&store, &loaded, postwarden::values::now(), &mut || {})?;
    if json {
        print_json(&pass)?;
    } else {
        for (kind, n) in &pass.pruned {
            println!("{kind}: {n} deleted");
        }
        println!("tenant day rows: {} deleted", pass.tenant_days);
        for (tenant, n) in &pass.events_expired {
            println!("tenant {tenant}: {n} events deleted before its webhook took them");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A duration as the largest whole unit: "90 d", "5 h", "42 s".
fn age(seconds: u64) -> String {
    match seconds {
        s if s >= 86_400 && s % 86_400 == 0 || s >= 10 * 86_400 => format!("{} d", s / 86_400),
        s if s >= 3600 => format!("{} h", s / 3600),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

pub fn abuse(config: Option<&Path>, action: AbuseAction) -> anyhow::Result<ExitCode> {
    use postwarden::feedback::processor::AbuseCase;
    let store = open_for_read(config)?;
    match action {
        AbuseAction::List { json } => {
            let cases: Vec<AbuseCase> = store.abuse_cases()?;
            if json {
                let rows: Vec<_> = cases
                    .iter()
                    .map(|c| {
                        let mut v = serde_json::to_value(c).unwrap_or_default();
                        if let Some(m) = v.as_object_mut() {
                            m.remove("message");
                        }
                        v
                    })
                    .collect();
                print_json(&rows)?;
            } else {
                for c in &cases {
                    println!(
                        "{} {} {}/{} from=<{}> [{}] tenant={} recipient={} queue_id={}",
                        c.id,
                        c.at,
                        c.mailbox,
                        c.feedback_type.as_deref().unwrap_or(&c.kind),
                        c.sender,
                        c.client_ip,
                        c.tenant.as_deref().unwrap_or("-"),
                        c.recipient.as_deref().unwrap_or("-"),
                        c.queue_id.as_deref().unwrap_or("-")
                    );
                }
                println!("-- {} case(s)", cases.len());
            }
        }
        AbuseAction::Show { id, json } => {
            let Some(case): Option<AbuseCase> = store.abuse_case(&id)? else {
                bail!("no abuse case {id}");
            };
            if json {
                print_json(&case)?;
            } else {
                println!(
                    "{} {} {}/{} tenant={} recipient={} queue_id={}\n",
                    case.id,
                    case.at,
                    case.mailbox,
                    case.feedback_type.as_deref().unwrap_or(&case.kind),
                    case.tenant.as_deref().unwrap_or("-"),
                    case.recipient.as_deref().unwrap_or("-"),
                    case.queue_id.as_deref().unwrap_or("-")
                );
                print!("{}", case.message);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What an opt-in line of evidence says the person agreed to; None for
/// the other states (an unsubscribe agrees to nothing).
fn consent_line(e: &postwarden::consent::Evidence) -> Option<String> {
    if !e.state.is_opt_in() {
        return None;
    }
    let Some(c) = &e.consent else {
        return Some("not recorded".into());
    };
    let mut line = format!(
        "version {} ({}), wording sha256 {}, {} via {}",
        c.version,
        c.lang,
        c.text_sha256,
        if c.explicit { "ticked" } else { "not ticked" },
        c.via
    );
    for (name, value) in [("page", &c.page), ("origin", &c.origin)] {
        if let Some(v) = value {
            line.push_str(&format!(", {name} {v}"));
        }
    }
    if let Some(t) = c.form_served_at {
        line.push_str(&format!(", form served at {t}"));
    }
    Some(line)
}
