//! `postwarden domains check`: is each tenant's sender domain ready for the
//! bulk-sender rules of Gmail and Yahoo (SPF, DKIM, DMARC), and does the
//! feedback domain's MX reach this host? Looked up with the daemon's own
//! resolver settings; records parsed with mail-auth.

use hickory_resolver::proto::rr::{RData, RecordType};
use mail_auth::common::parse::TxtRecordParser;
use serde::Serialize;

use crate::config::Config;

/// How a finding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warning,
    Error,
}

/// One finding: what was checked, how it stands, and what to publish or
/// change when it is not ok.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub level: Level,
    pub check: String,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish: Option<String>,
}

impl Finding {
    fn new(level: Level, check: String, detail: String, publish: Option<String>) -> Finding {
        Finding {
            level,
            check,
            detail,
            publish,
        }
    }
}

/// The TXT records at `name`, each one's strings joined (RFC 6376
/// §3.6.2.2, RFC 7208 §3.3); None when the name has none (or does not
/// exist); Err when the look-up itself failed.
async fn txt(
    resolver: &hickory_resolver::TokioResolver,
    name: &str,
) -> Result<Vec<String>, String> {
    let name = format!("{}.", name.trim_end_matches('.'));
    match resolver.lookup(name.as_str(), RecordType::TXT).await {
        Ok(answer) => Ok(answer
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(t) => Some(
                    t.txt_data
                        .iter()
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect()),
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    }
}

/// [`txt`], or None with the failed look-up as an error finding of `check`.
async fn txt_or_finding(
    resolver: &hickory_resolver::TokioResolver,
    name: &str,
    check: &str,
    out: &mut Vec<Finding>,
) -> Option<Vec<String>> {
    match txt(resolver, name).await {
        Ok(r) => Some(r),
        Err(e) => {
            out.push(Finding::new(
                Level::Error,
                check.to_string(),
                format!("look-up failed: {e}"),
                None,
            ));
            None
        }
    }
}

/// The `p=` of a DKIM key record, without whitespace.
fn record_key(record: &str) -> Option<String> {
    record.split(';').find_map(|tag| {
        let (k, v) = tag.split_once('=')?;
        (k.trim() == "p").then(|| v.split_whitespace().collect())
    })
}

/// Checks every tenant's sender domains (or `only`'s) and the feedback
/// domain.
pub async fn check(config: &Config, only: Option<&str>) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(resolver) = super::route::resolver(&config.delivery) else {
        out.push(Finding::new(
            Level::Error,
            "dns".into(),
            "no DNS resolver could be built from [delivery] nameservers or /etc/resolv.conf".into(),
            None,
        ));
        return out;
    };
    for (name, tenant) in &config.tenants {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        for domain in &tenant.sender_domains {
            spf(&resolver, name, domain, &config.server.hostname, &mut out).await;
            dmarc(&resolver, name, domain, &mut out).await;
        }
        dkim(config, &resolver, name, tenant, &mut out).await;
    }
    feedback_mx(config, &resolver, &mut out).await;
    out
}

async fn spf(
    resolver: &hickory_resolver::TokioResolver,
    tenant: &str,
    domain: &str,
    host: &str,
    out: &mut Vec<Finding>,
) {
    let check = format!("{tenant}: SPF {domain}");
    let Some(records) = txt_or_finding(resolver, domain, &check, out).await else {
        return;
    };
    let spf: Vec<&String> = records
        .iter()
        .filter(|r| r.to_ascii_lowercase().starts_with("v=spf1"))
        .collect();
    match spf.as_slice() {
        [] => out.push(Finding::new(
            Level::Error,
            check,
            "no SPF record: Gmail and Yahoo refuse bulk mail without one".into(),
            Some(format!("{domain}. IN TXT \"v=spf1 a:{host} ~all\"")),
        )),
        [one] => match mail_auth::spf::Spf::parse(one.as_bytes()) {
            Ok(_) => out.push(Finding::new(Level::Ok, check, (*one).clone(), None)),
            Err(e) => out.push(Finding::new(
                Level::Error,
                check,
                format!("the record does not parse ({e:?}): {one}"),
                None,
            )),
        },
        _ => out.push(Finding::new(
            Level::Error,
            check,
            format!(
                "{} SPF records: RFC 7208 §3.2 makes that a permanent error",
                spf.len()
            ),
            None,
        )),
    }
}

async fn dmarc(
    resolver: &hickory_resolver::TokioResolver,
    tenant: &str,
    domain: &str,
    out: &mut Vec<Finding>,
) {
    let check = format!("{tenant}: DMARC _dmarc.{domain}");
    let Some(records) = txt_or_finding(resolver, &format!("_dmarc.{domain}"), &check, out).await
    else {
        return;
    };
    let Some(record) = records
        .iter()
        .find(|r| r.to_ascii_lowercase().starts_with("v=dmarc1"))
    else {
        out.push(Finding::new(
            Level::Error,
            check,
            "no DMARC record: Gmail and Yahoo require one of bulk senders".into(),
            Some(format!(
                "_dmarc.{domain}. IN TXT \"v=DMARC1; p=none; rua=mailto:dmarc@{domain}\""
            )),
        ));
        return;
    };
    match mail_auth::dmarc::Dmarc::parse(record.as_bytes()) {
        Ok(d) => out.push(Finding::new(
            Level::Ok,
            check,
            format!(
                "policy {}: {record}",
                format!("{:?}", d.p).to_ascii_lowercase()
            ),
            None,
        )),
        Err(e) => out.push(Finding::new(
            Level::Error,
            check,
            format!("the record does not parse ({e:?}): {record}"),
            None,
        )),
    }
}

async fn dkim(
    config: &Config,
    resolver: &hickory_resolver::TokioResolver,
    tenant: &str,
    t: &crate::config::TenantConfig,
    out: &mut Vec<Finding>,
) {
    let (Some(key), Some(selector)) = (t.dkim_key.as_ref(), t.dkim_selector.as_deref()) else {
        out.push(Finding::new(
            Level::Error,
            format!("{tenant}: DKIM"),
            "no dkim_key and dkim_selector: mail goes out unsigned".into(),
            Some(format!("postwarden dkim keygen --tenant {tenant}")),
        ));
        return;
    };
    let Some(domain) = t
        .dkim_domain
        .clone()
        .or_else(|| t.sender_domains.first().cloned())
    else {
        return;
    };
    let name = format!("{selector}._domainkey.{domain}");
    let check = format!("{tenant}: DKIM {name}");
    let path = config.resolve(key);
    let expected = match super::dkim::public_record(&path, &t.dkim_algorithm) {
        Ok(r) => r,
        Err(e) => {
            out.push(Finding::new(Level::Error, check, e, None));
            return;
        }
    };
    let publish = Some(super::dkim::zone_line(selector, &domain, &expected));
    let Some(records) = txt_or_finding(resolver, &name, &check, out).await else {
        return;
    };
    let Some(record) = records.first() else {
        out.push(Finding::new(
            Level::Error,
            check,
            "no key record: receivers cannot verify the signature".into(),
            publish,
        ));
        return;
    };
    if let Err(e) = mail_auth::common::verify::DomainKey::parse(record.as_bytes()) {
        out.push(Finding::new(
            Level::Error,
            check,
            format!("the record does not parse ({e:?}): {record}"),
            publish,
        ));
        return;
    }
    if record_key(record) == record_key(&expected) {
        out.push(Finding::new(
            Level::Ok,
            check,
            format!("the published key is {}'s", path.display()),
            None,
        ));
    } else {
        out.push(Finding::new(
            Level::Error,
            check,
            format!("the published key is not {}'s", path.display()),
            publish,
        ));
    }
}

async fn feedback_mx(
    config: &Config,
    resolver: &hickory_resolver::TokioResolver,
    out: &mut Vec<Finding>,
) {
    let domain = &config.feedback.domain;
    let host = config
        .server
        .hostname
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let check = format!("feedback domain MX {domain}");
    let publish = Some(format!("{domain}. IN MX 10 {host}."));
    let name = format!("{}.", domain.trim_end_matches('.'));
    match resolver.lookup(name.as_str(), RecordType::MX).await {
        Ok(answer) => {
            let hosts: Vec<String> = answer
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some(
                        mx.exchange
                            .to_ascii()
                            .trim_end_matches('.')
                            .to_ascii_lowercase(),
                    ),
                    _ => None,
                })
                .collect();
            if hosts.contains(&host) {
                out.push(Finding::new(
                    Level::Ok,
                    check,
                    format!("points at {host}"),
                    None,
                ));
            } else {
                out.push(Finding::new(
                    Level::Error,
                    check,
                    format!(
                        "points at {} and not at this host ({host}): bounces and ARF reports go elsewhere",
                        hosts.join(", ")
                    ),
                    publish,
                ));
            }
        }
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => out.push(Finding::new(
            Level::Error,
            check,
            "no MX: bounces and ARF reports to the VERP addresses cannot arrive".into(),
            publish,
        )),
        Err(e) => out.push(Finding::new(
            Level::Error,
            check,
            format!("look-up failed: {e}"),
            None,
        )),
    }
}
