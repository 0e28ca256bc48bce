//! Admin subcommands: queue, contacts, suppression, tenants.
//!
//! Reads work while the daemon runs (the spool is opened as a RocksDB
//! secondary instance); writes open the spool as its one writer, so they need
//! the daemon stopped until the admin API carries them.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use postwarden::consent::{self, ConsentState, Contact, Evidence, Suppression};
use postwarden::queue::entry::QueueEntry;
use postwarden::store::{Store, StoreError};

use crate::cli::{load_config, ContactsAction, QueueAction, SuppressAction, TenantAction};

fn open_for_read(config: Option<&Path>) -> anyhow::Result<Store> {
    let config = load_config(config)?;
    Ok(Store::open_for_read(&config.spool_path())?)
}

fn open_for_write(config: Option<&Path>) -> anyhow::Result<(postwarden::config::Config, Store)> {
    let config = load_config(config)?;
    match Store::open(&config.spool_path()) {
        Ok(s) => Ok((config, s)),
        Err(StoreError::Locked { path }) => bail!(
            "the spool {} is in use by the running daemon; this change needs the daemon stopped in this version",
            path.display()
        ),
        Err(e) => Err(e.into()),
    }
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
        QueueAction::Hold { queue_id, all } => change_entries(config, queue_id, all, "held", |e| {
            e.held = true;
            true
        }),
        QueueAction::Release { queue_id, all } => {
            change_entries(config, queue_id, all, "released", |e| {
                let was = e.held;
                e.held = false;
                was
            })
        }
        QueueAction::Flush { queue_id, all } => {
            change_entries(config, queue_id, all, "scheduled now", |e| {
                e.next_attempt = consent::now();
                !e.held
            })
        }
        QueueAction::Delete { queue_id, all } => {
            let (_, store) = open_for_write(config)?;
            let entries = select(&store, queue_id, all)?;
            for e in &entries {
                store.commit_blocking(Store::delete_entry_ops(e))?;
                println!("{}: deleted", e.id);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn select(store: &Store, queue_id: Option<String>, all: bool) -> anyhow::Result<Vec<QueueEntry>> {
    match (queue_id, all) {
        (Some(id), false) => match store.queue_entry(&id)? {
            Some(e) => Ok(vec![e]),
            None => bail!("no message {id} in the queue"),
        },
        (None, true) => Ok(store.queue_entries()?),
        _ => bail!("name one QUEUEID or --all"),
    }
}

fn change_entries(
    config: Option<&Path>,
    queue_id: Option<String>,
    all: bool,
    what: &str,
    change: impl Fn(&mut QueueEntry) -> bool,
) -> anyhow::Result<ExitCode> {
    let (_, store) = open_for_write(config)?;
    for mut e in select(&store, queue_id, all)? {
        let old = e.next_attempt;
        if change(&mut e) {
            store.commit_blocking(Store::update_entry_ops(&e, Some(old)))?;
            println!("{}: {what}", e.id);
        }
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

pub fn contacts(config: Option<&Path>, action: ContactsAction) -> anyhow::Result<ExitCode> {
    match action {
        ContactsAction::Set {
            tenant,
            list,
            state,
            source,
            address,
        } => {
            let (config, store) = open_for_write(config)?;
            if config.tenant(&tenant).is_none() {
                bail!("no tenant {tenant:?} in the configuration");
            }
            let Some(state) = ConsentState::parse(&state) else {
                bail!("unknown consent state {state:?} (none, single_opt_in, double_opt_in_pending, double_opt_in_confirmed, unsubscribed)");
            };
            if state == ConsentState::Suppressed {
                bail!("use `postwarden suppress add` to suppress an address");
            }
            let contact = consent::record_transition(
                &store,
                &tenant,
                &list,
                &address,
                Evidence {
                    at: consent::now(),
                    state,
                    source: "admin".into(),
                    ip: None,
                    user_agent: None,
                    detail: Some(source),
                },
            )?;
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
            let store = open_for_read(config)?;
            let address = consent::normalize_address(&address);
            let lists: Vec<(String, String, Contact)> = store
                .contacts::<Contact>(&tenant)?
                .into_iter()
                .filter(|(_, a, _)| *a == address)
                .collect();
            let suppression: Option<Suppression> = store.suppression(&tenant, &address)?;
            if json {
                let lists: Vec<_> = lists
                    .iter()
                    .map(|(l, _, c)| serde_json::json!({"list": l, "contact": c}))
                    .collect();
                print_json(&serde_json::json!({
                    "tenant": tenant, "address": address, "lists": lists, "suppression": suppression,
                }))?;
            } else {
                println!("<{address}> tenant={tenant}");
                match &suppression {
                    Some(s) => println!(
                        "  suppressed: {} (source {}, at {})",
                        s.reason, s.source, s.at
                    ),
                    None => println!("  not suppressed"),
                }
                for (list, _, c) in &lists {
                    println!(
                        "  list {list}: {} (hard bounces {}, soft bounces {})",
                        c.state.as_str(),
                        c.hard_bounces,
                        c.soft_bounces
                    );
                    for e in &c.evidence {
                        println!(
                            "    {} {} source={}{}",
                            e.at,
                            e.state.as_str(),
                            e.source,
                            e.detail
                                .as_deref()
                                .map(|d| format!(" ({d})"))
                                .unwrap_or_default()
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ContactsAction::List { tenant, json } => {
            let store = open_for_read(config)?;
            let contacts = store.contacts::<Contact>(&tenant)?;
            if json {
                let rows: Vec<_> = contacts
                    .iter()
                    .map(|(l, a, c)| serde_json::json!({"list": l, "address": a, "state": c.state}))
                    .collect();
                print_json(&rows)?;
            } else {
                for (l, a, c) in &contacts {
                    println!("{l}\t{a}\t{}", c.state.as_str());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn suppress(config: Option<&Path>, action: SuppressAction) -> anyhow::Result<ExitCode> {
    match action {
        SuppressAction::Add {
            tenant,
            reason,
            address,
        } => {
            let (_, store) = open_for_write(config)?;
            consent::suppress(
                &store,
                &tenant,
                &address,
                Suppression {
                    reason,
                    at: consent::now(),
                    source: "admin".into(),
                    detail: None,
                },
            )?;
            println!(
                "<{}> suppressed for {tenant}",
                consent::normalize_address(&address)
            );
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
        SuppressAction::Remove { tenant, address } => {
            let (_, store) = open_for_write(config)?;
            let address = consent::normalize_address(&address);
            store.commit_blocking(vec![Store::delete_suppression_op(&tenant, &address)])?;
            println!("<{address}> removed from the suppression list of {tenant}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn tenant(config: Option<&Path>, action: TenantAction) -> anyhow::Result<ExitCode> {
    match action {
        TenantAction::Stats { tenant, json } => {
            let store = open_for_read(config)?;
            let state = postwarden::tenant::state(&store, &tenant)?;
            if json {
                print_json(&state)?;
            } else {
                println!(
                    "{tenant}: submitted={} policy_rejected={} delivered={} bounced={} suspended={}",
                    state.submitted,
                    state.policy_rejected,
                    state.delivered,
                    state.bounced,
                    state.suspended.as_deref().unwrap_or("no")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        TenantAction::Suspend { tenant, reason } => {
            let (_, store) = open_for_write(config)?;
            let event = serde_json::json!({"type": "tenant_suspended", "at": consent::now(), "tenant": tenant, "reason": reason, "source": "admin"});
            postwarden::tenant::record(&store, &tenant, Some(event), |s| {
                s.suspended = Some(reason.clone())
            })
            .context("cannot suspend")?;
            println!("{tenant}: suspended ({reason})");
            Ok(ExitCode::SUCCESS)
        }
        TenantAction::Resume { tenant } => {
            let (_, store) = open_for_write(config)?;
            let event = serde_json::json!({"type": "tenant_resumed", "at": consent::now(), "tenant": tenant, "source": "admin"});
            postwarden::tenant::record(&store, &tenant, Some(event), |s| s.suspended = None)?;
            println!("{tenant}: resumed");
            Ok(ExitCode::SUCCESS)
        }
    }
}
