//! Contact imports from CSV (`email,state,opted_in_at,opted_in_ip,confirmed_at`).
//!
//! An import is checked whole before anything is written: every refused row
//! is reported with its line number and reason, and then either nothing is
//! written or, when the importer asks to skip the refused rows, the rest goes
//! in one atomic batch. Nothing is ever half-imported.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::ops::{contact_count, erased_key, ConsentError};
use super::{lock, now, ConsentState, Contact, Evidence, Suppression};
use crate::config::TenantConfig;
use crate::store::{Op, Store};

/// What the importer declares about the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportOptions {
    pub list: String,
    /// Where the addresses were collected ("shop checkout 2024", "old ESP export").
    pub source: String,
    /// The importer confirms the addresses were collected with lawful opt-in
    /// and their owners were told of the move. Needed for opt-in states.
    #[serde(default)]
    pub attest: bool,
    /// A state for every row, overriding the file's column (e.g. `none`).
    #[serde(default)]
    pub state: Option<String>,
    /// Import the good rows even when some are refused.
    #[serde(default)]
    pub skip_refused: bool,
}

/// One row that was not imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The line of the file (1 is the first line).
    pub line: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImportReport {
    /// Rows read (without the header line).
    pub rows: u64,
    /// Contacts written (0 when refused rows stopped the import).
    pub imported: u64,
    pub refused: Vec<Refusal>,
    /// Whether anything was written.
    pub committed: bool,
}

/// Role accounts: addresses of a function, not of a person who could opt in.
const ROLE_ACCOUNTS: &[&str] = &[
    "abuse",
    "postmaster",
    "hostmaster",
    "webmaster",
    "noreply",
    "no-reply",
    "donotreply",
    "do-not-reply",
    "mailer-daemon",
    "root",
    "nobody",
    "security",
];

pub fn is_role_account(address: &str) -> bool {
    let local = address.rsplit_once('@').map(|(l, _)| l).unwrap_or(address);
    let local = local.split('+').next().unwrap_or(local);
    ROLE_ACCOUNTS.contains(&local.to_ascii_lowercase().as_str())
}

/// A time given as unix seconds or RFC 3339 (`2025-03-01T10:00:00Z`).
fn parse_time(s: &str) -> Option<u64> {
    if let Ok(n) = s.parse::<u64>() {
        return Some(n);
    }
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp()).ok()
}

/// A row that passed the checks.
struct Row {
    address: String,
    evidence: Vec<Evidence>,
}

/// Checks one CSV record; the reason when it is refused.
fn check_row(
    record: &csv::StringRecord,
    columns: &HashMap<String, usize>,
    opts: &ImportOptions,
    detail: &str,
    now: u64,
) -> Result<Row, (String, String)> {
    let field = |name: &str| {
        columns
            .get(name)
            .and_then(|&i| record.get(i))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let raw = field("email").unwrap_or("");
    let address = super::address::validate_address(raw)
        .map_err(|why| (raw.to_string(), format!("invalid address: {why}")))?;
    if is_role_account(&address) {
        return Err((address, "role account (not a person who can opt in)".into()));
    }
    let state_text = opts
        .state
        .as_deref()
        .or(field("state"))
        .ok_or_else(|| (address.clone(), "no state".to_string()))?;
    let state = ConsentState::parse(state_text)
        .filter(|s| *s != ConsentState::Suppressed)
        .ok_or_else(|| (address.clone(), format!("unknown state {state_text:?}")))?;
    let bad_time = |name: &str, v: &str| (address.clone(), format!("{name} is not a time: {v:?}"));
    let opted_in_at = match field("opted_in_at") {
        Some(v) => Some(parse_time(v).ok_or_else(|| bad_time("opted_in_at", v))?),
        None => None,
    };
    let confirmed_at = match field("confirmed_at") {
        Some(v) => Some(parse_time(v).ok_or_else(|| bad_time("confirmed_at", v))?),
        None => None,
    };
    let ip = field("opted_in_ip").map(str::to_string);
    if let Some(ip) = &ip {
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Err((address, format!("opted_in_ip is not an IP address: {ip:?}")));
        }
    }
    let opt_in = state.is_opt_in();
    if opt_in {
        if !opts.attest {
            return Err((
                address,
                "opt-in rows need --attest (lawful opt-in, owners told of the move)".into(),
            ));
        }
        if opted_in_at.is_none() {
            return Err((address, "no consent evidence: opted_in_at is empty".into()));
        }
        if state == ConsentState::DoubleOptInConfirmed && confirmed_at.is_none() {
            return Err((
                address,
                "no consent evidence: confirmed_at is empty for double_opt_in_confirmed".into(),
            ));
        }
    }
    let mut evidence = Vec::new();
    let base = |at: u64, state: ConsentState, ip: Option<String>| Evidence {
        at,
        state,
        source: "import".into(),
        ip,
        user_agent: None,
        detail: Some(detail.to_string()),
        consent: None,
    };
    match state {
        ConsentState::DoubleOptInConfirmed => {
            evidence.push(base(
                opted_in_at.unwrap_or(now),
                ConsentState::DoubleOptInPending,
                ip,
            ));
            evidence.push(base(confirmed_at.unwrap_or(now), state, None));
        }
        _ => evidence.push(base(opted_in_at.unwrap_or(now), state, ip)),
    }
    Ok(Row { address, evidence })
}

/// Checks the whole file and, if it may, writes it in one batch.
pub fn import(
    store: &Store,
    tenant: &str,
    tenant_config: &TenantConfig,
    opts: &ImportOptions,
    csv_data: &[u8],
) -> Result<ImportReport, ConsentError> {
    super::ops::list_name(&opts.list)?;
    if opts.source.trim().is_empty() {
        return Err(ConsentError::MissingEvidence("import (give --source)"));
    }
    let detail = format!(
        "import source: {}{}",
        opts.source.trim(),
        if opts.attest {
            "; attested: lawful opt-in, owners informed"
        } else {
            ""
        }
    );
    let now = now();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(csv_data);
    let mut report = ImportReport::default();
    let mut columns: HashMap<String, usize> = HashMap::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = record
            .as_ref()
            .ok()
            .and_then(|r| r.position())
            .map(|p| p.line())
            .unwrap_or(i as u64 + 1);
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                report.rows += 1;
                report.refused.push(Refusal {
                    line,
                    email: String::new(),
                    reason: format!("not CSV: {e}"),
                });
                continue;
            }
        };
        if columns.is_empty() {
            let header: Vec<String> = record.iter().map(|h| h.to_ascii_lowercase()).collect();
            if header.iter().any(|h| h == "email") {
                columns = header
                    .into_iter()
                    .enumerate()
                    .map(|(i, h)| (h, i))
                    .collect();
                continue;
            }
            // No header line: the documented column order.
            columns = [
                "email",
                "state",
                "opted_in_at",
                "opted_in_ip",
                "confirmed_at",
            ]
            .iter()
            .enumerate()
            .map(|(i, h)| (h.to_string(), i))
            .collect();
        }
        if record.iter().all(str::is_empty) {
            continue;
        }
        report.rows += 1;
        match check_row(&record, &columns, opts, &detail, now) {
            Ok(row) => {
                if let Some(first) = seen.get(&row.address) {
                    report.refused.push(Refusal {
                        line,
                        email: row.address,
                        reason: format!("duplicate of line {first}"),
                    });
                    continue;
                }
                seen.insert(row.address.clone(), line);
                rows.push((line, row));
            }
            Err((email, reason)) => report.refused.push(Refusal {
                line,
                email,
                reason,
            }),
        }
    }
    let _guard = lock(store)?;
    let count = contact_count(store, tenant)?;
    // Erased addresses and suppressed ones stay out.
    let mut ops: Vec<Op> = Vec::new();
    let mut new_records = 0u64;
    let mut accepted = 0u64;
    for (line, row) in rows {
        if store
            .suppression::<Suppression>(tenant, &erased_key(&row.address))?
            .is_some()
        {
            report.refused.push(Refusal {
                line,
                email: row.address,
                reason: "erased at the owner's request (GDPR); cannot be imported".into(),
            });
            continue;
        }
        if let Some(s) = store.suppression::<Suppression>(tenant, &row.address)? {
            report.refused.push(Refusal {
                line,
                email: row.address,
                reason: format!("suppressed ({}); an import does not lift that", s.reason),
            });
            continue;
        }
        let existing = store.contact::<Contact>(tenant, &opts.list, &row.address)?;
        if existing.is_none() {
            new_records += 1;
        }
        let mut contact = existing.unwrap_or_else(Contact::new);
        if let Some(last) = row.evidence.last() {
            contact.state = last.state;
        }
        contact.evidence.extend(row.evidence);
        ops.push(Store::put_contact_op(
            tenant,
            &opts.list,
            &row.address,
            &contact,
        ));
        accepted += 1;
    }
    report.refused.sort_by_key(|r| r.line);
    if !report.refused.is_empty() && !opts.skip_refused {
        return Ok(report);
    }
    if let Some(max) = tenant_config.max_contacts {
        if count + new_records > max {
            return Err(ConsentError::QuotaExceeded {
                max,
                count: count + new_records,
            });
        }
    }
    if ops.is_empty() {
        return Ok(report);
    }
    ops.push(Store::event_op(&serde_json::json!({
        "type": "imported", "at": now, "tenant": tenant, "list": opts.list,
        "source": opts.source, "attest": opts.attest, "imported": accepted,
        "refused": report.refused.len(),
    })));
    store.commit_blocking(ops)?;
    super::ops::count_added(store, tenant, new_records)?;
    report.imported = accepted;
    report.committed = true;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_accounts_are_recognised() {
        assert!(is_role_account("postmaster@x.test"));
        assert!(is_role_account("NoReply@x.test"));
        assert!(is_role_account("abuse+x@x.test"));
        assert!(!is_role_account("jane@x.test"));
    }

    #[test]
    fn times_are_unix_seconds_or_rfc3339() {
        assert_eq!(parse_time("1700000000"), Some(1_700_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(parse_time("2023-11-14T23:13:20+01:00"), Some(1_700_000_000));
        assert_eq!(parse_time("yesterday"), None);
    }
}
