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
    /// The look-up itself failed (a timeout, SERVFAIL): says nothing about
    /// the records, so the daemon keeps what it knew before.
    #[serde(skip)]
    pub lookup_failed: bool,
}

impl Finding {
    fn new(level: Level, check: String, detail: String, publish: Option<String>) -> Finding {
        Finding {
            level,
            check,
            detail,
            publish,
            lookup_failed: false,
        }
    }

    fn lookup_failed(check: String, error: impl std::fmt::Display) -> Finding {
        Finding {
            lookup_failed: true,
            ..Finding::new(
                Level::Error,
                check,
                format!("look-up failed: {error}"),
                None,
            )
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
            out.push(Finding::lookup_failed(check.to_string(), e));
            None
        }
    }
}

/// Whether a TXT record is of the kind its version tag names (`v=spf1`,
/// `v=DMARC1`, ...): the tag compared without case, as the RFCs say.
fn is_version(record: &str, tag: &str) -> bool {
    record
        .get(..tag.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(tag))
}

/// The record at `name` whose version tag is `tag` (None: there is none);
/// the outer None when the look-up failed, its finding in `out`.
async fn tagged_txt(
    resolver: &hickory_resolver::TokioResolver,
    name: &str,
    tag: &str,
    check: &str,
    out: &mut Vec<Finding>,
) -> Option<Option<String>> {
    let records = txt_or_finding(resolver, name, check, out).await?;
    Some(records.into_iter().find(|r| is_version(r, tag)))
}

/// The `p=` of a DKIM key record, without whitespace.
fn record_key(record: &str) -> Option<String> {
    record.split(';').find_map(|tag| {
        let (k, v) = tag.split_once('=')?;
        (k.trim() == "p").then(|| v.split_whitespace().collect())
    })
}

/// Checks every tenant's sender domains (or `only`'s), the envelope (VERP
/// feedback) domain and the egress addresses.
pub async fn check(config: &Config, only: Option<&str>) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(resolver) = super::route::dns_resolver(&config.delivery) else {
        out.push(no_resolver());
        return out;
    };
    let auth = mail_auth::MessageAuthenticator(resolver.clone());
    let egress = egress_addresses(config, &resolver, &mut out).await;
    let host = &config.server.hostname;
    let envelope = &config.feedback.domain;
    spf(&resolver, "envelope", envelope, host, &mut out).await;
    spf_authorises(
        &auth,
        "envelope",
        envelope,
        host,
        &egress,
        Level::Error,
        "receivers evaluate SPF on the envelope (VERP) domain of every message",
        &mut out,
    )
    .await;
    for (name, tenant) in &config.tenants {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        for domain in &tenant.sender_domains {
            spf(&resolver, name, domain, host, &mut out).await;
            spf_authorises(
                &auth,
                name,
                domain,
                host,
                &egress,
                Level::Warning,
                "the envelope is the VERP domain, so this counts only where a receiver checks the From domain's SPF; DKIM carries DMARC",
                &mut out,
            )
            .await;
        }
        out.extend(
            authentication_of(config, &resolver, name, tenant)
                .await
                .into_iter()
                .flat_map(|(_, f)| f),
        );
    }
    feedback_mx(config, &resolver, &mut out).await;
    inbound_tls(&resolver, envelope, &config.server.hostname, &mut out).await;
    reverse_dns(&resolver, &egress, &mut out).await;
    out
}

/// MTA-STS (RFC 8461) and TLS-RPT (RFC 8460) of the feedback domain, the
/// one domain that receives mail here: optional, so a missing record is
/// only noted; a record that does not parse is an error. The policy file
/// itself (https://mta-sts.DOMAIN/.well-known/mta-sts.txt) is not fetched.
async fn inbound_tls(
    resolver: &hickory_resolver::TokioResolver,
    domain: &str,
    host: &str,
    out: &mut Vec<Finding>,
) {
    let check = format!("feedback domain MTA-STS _mta-sts.{domain}");
    let name = format!("_mta-sts.{domain}");
    if let Some(record) = tagged_txt(resolver, &name, "v=STSv1", &check, out).await {
        out.push(match record {
            None => Finding::new(
                Level::Ok,
                check,
                "none (optional: senders may then fall back to plain text when delivering bounces and reports here)".into(),
                None,
            ),
            Some(r) => match mail_auth::mta_sts::MtaSts::parse(r.as_bytes()) {
                // mail-auth takes any id; RFC 8461 §3.1 allows 1 to 32
                // letters and digits, and a sender that caches the policy
                // compares it.
                Ok(sts)
                    if sts.id.is_empty()
                        || sts.id.len() > 32
                        || !sts.id.bytes().all(|b| b.is_ascii_alphanumeric()) =>
                {
                    Finding::new(
                        Level::Error,
                        check,
                        format!("id {:?} is not 1 to 32 letters and digits (RFC 8461 §3.1): {r}", sts.id),
                        None,
                    )
                }
                Ok(sts) => Finding::new(
                    Level::Ok,
                    check,
                    format!("id {}; the policy at https://mta-sts.{domain}/.well-known/mta-sts.txt must list mx: {host} (not fetched here)", sts.id),
                    None,
                ),
                Err(e) => Finding::new(Level::Error, check, format!("the record does not parse ({e:?}): {r}"), None),
            },
        });
    }
    let check = format!("feedback domain TLS-RPT _smtp._tls.{domain}");
    let name = format!("_smtp._tls.{domain}");
    if let Some(record) = tagged_txt(resolver, &name, "v=TLSRPTv1", &check, out).await {
        out.push(match record {
            None => Finding::new(
                Level::Ok,
                check,
                "none (optional: senders' TLS failures here are then not reported)".into(),
                None,
            ),
            Some(r) => match mail_auth::mta_sts::TlsRpt::parse(r.as_bytes()) {
                Ok(rpt) => Finding::new(
                    Level::Ok,
                    check,
                    format!("{} report address(es): {r}", rpt.rua.len()),
                    None,
                ),
                Err(e) => Finding::new(
                    Level::Error,
                    check,
                    format!("the record does not parse ({e:?}): {r}"),
                    None,
                ),
            },
        });
    }
}

fn no_resolver() -> Finding {
    Finding::new(
        Level::Error,
        "dns".into(),
        "no DNS resolver could be built from [delivery] nameservers or /etc/resolv.conf".into(),
        None,
    )
}

/// What makes a From domain verifiable (the rule `from.not_authenticated`):
/// its DMARC record, the tenant's DKIM key record, and DKIM's (or SPF's)
/// alignment with it; per sender domain of the tenant.
pub async fn authentication_of(
    config: &Config,
    resolver: &hickory_resolver::TokioResolver,
    name: &str,
    tenant: &crate::config::TenantConfig,
) -> Vec<(String, Vec<Finding>)> {
    let mut key = Vec::new();
    dkim(config, resolver, name, tenant, &mut key).await;
    let mut by_domain = Vec::new();
    for (i, domain) in tenant.sender_domains.iter().enumerate() {
        let mut found = Vec::new();
        dmarc(resolver, name, domain, &mut found).await;
        alignment(name, domain, tenant, &config.feedback.domain, &mut found);
        // The key is the tenant's: shown once, counted for every domain.
        if i == 0 {
            found.extend(key.iter().cloned());
        } else {
            found.extend(key.iter().filter(|f| f.level == Level::Error).cloned());
        }
        by_domain.push((domain.to_ascii_lowercase(), found));
    }
    by_domain
}

/// The organisational domain (RFC 7489 §3.2): the public suffix plus one
/// label, from the Public Suffix List; a name under no listed suffix takes
/// its last label as the suffix, as the list's own `*` rule says.
pub fn organisational_domain(domain: &str) -> String {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    psl::domain_str(&d).map_or(d.clone(), str::to_string)
}

/// DMARC passes when DKIM or SPF passes for a domain with the From
/// domain's organisational domain (relaxed alignment, RFC 7489 §3.1): the
/// DKIM `d=` is the tenant's `dkim_domain` (else its first sender domain),
/// SPF's is the VERP feedback domain of the envelope.
fn alignment(
    tenant: &str,
    domain: &str,
    t: &crate::config::TenantConfig,
    envelope: &str,
    out: &mut Vec<Finding>,
) {
    let from = organisational_domain(domain);
    let spf_aligned = organisational_domain(envelope) == from;
    let check = format!("{tenant}: DMARC alignment {domain}");
    let signing = signing_domain(t).filter(|_| t.dkim_key.is_some());
    let spf_note = if spf_aligned {
        format!("SPF of the VERP domain {envelope} aligns too")
    } else {
        format!("SPF of the VERP domain {envelope} does not align (organisational domain {}), so DMARC rests on DKIM alone", organisational_domain(envelope))
    };
    match signing {
        Some(d) if organisational_domain(&d) == from => out.push(Finding::new(
            Level::Ok,
            check,
            format!("DKIM d={d} aligns with From {domain} (relaxed); {spf_note}"),
            None,
        )),
        Some(d) => out.push(Finding::new(
            if spf_aligned { Level::Warning } else { Level::Error },
            check,
            format!(
                "DKIM d={d} is of another organisational domain than From {domain} ({from}); {}",
                if spf_aligned {
                    format!("only SPF of the VERP domain {envelope} aligns")
                } else {
                    format!("SPF of the VERP domain {envelope} does not align either: DMARC fails")
                }
            ),
            Some(format!("postwarden dkim keygen --tenant {tenant} --domain {domain}")),
        )),
        None if spf_aligned => out.push(Finding::new(
            Level::Warning,
            check,
            format!("no DKIM signature; only SPF of the VERP domain {envelope} aligns with From {domain}"),
            Some(format!("postwarden dkim keygen --tenant {tenant} --domain {domain}")),
        )),
        // The missing key is its own finding (see dkim()).
        None => {}
    }
}

/// One egress address and the source that sends from it.
struct Egress {
    source: String,
    ehlo: String,
    ip: std::net::IpAddr,
}

/// The addresses receivers see: each enabled source's address; a source
/// without one (the implicit default) sends from what the system picks,
/// taken to be the addresses of `[server] hostname`.
async fn egress_addresses(
    config: &Config,
    resolver: &hickory_resolver::TokioResolver,
    out: &mut Vec<Finding>,
) -> Vec<Egress> {
    let mut list = Vec::new();
    for source in config.egress_sources().into_iter().filter(|s| s.enabled) {
        if let Some(ip) = source.address {
            list.push(Egress {
                source: source.name,
                ehlo: source.ehlo,
                ip,
            });
            continue;
        }
        let host = format!("{}.", config.server.hostname.trim_end_matches('.'));
        match resolver.lookup_ip(host.as_str()).await {
            Ok(ips) => list.extend(ips.iter().map(|ip| Egress {
                source: source.name.clone(),
                ehlo: source.ehlo.clone(),
                ip,
            })),
            Err(e) => out.push(Finding {
                lookup_failed: !(e.is_no_records_found() || e.is_nx_domain()),
                ..Finding::new(
                    Level::Warning,
                    format!("egress source {}", source.name),
                    format!(
                        "no address set and {} does not resolve ({e}): SPF and reverse DNS of the sending address are not checked",
                        config.server.hostname
                    ),
                    Some(format!("[delivery.sources.{}] address = \"...\"", source.name)),
                )
            }),
        }
    }
    list
}

/// Evaluates `domain`'s SPF (mail-auth's check_host, RFC 7208 §4, with its
/// 10-look-up limit) for every egress address, as a receiver would for
/// `MAIL FROM:<postmaster@domain>`.
#[allow(clippy::too_many_arguments)]
async fn spf_authorises(
    auth: &mail_auth::MessageAuthenticator,
    tenant: &str,
    domain: &str,
    host: &str,
    egress: &[Egress],
    level: Level,
    why: &str,
    out: &mut Vec<Finding>,
) {
    use mail_auth::{spf::verify::SpfParameters, SpfResult};
    let sender = format!("postmaster@{domain}");
    for e in egress {
        let check = format!("{tenant}: SPF {domain} for {} (source {})", e.ip, e.source);
        let result = auth
            .verify_spf(SpfParameters::verify_mail_from(
                e.ip, &e.ehlo, host, &sender,
            ))
            .await
            .result();
        let mechanism = match e.ip {
            std::net::IpAddr::V4(ip) => format!("ip4:{ip}"),
            std::net::IpAddr::V6(ip) => format!("ip6:{ip}"),
        };
        out.push(match result {
            SpfResult::Pass => Finding::new(Level::Ok, check, "pass".into(), None),
            SpfResult::TempError => Finding::lookup_failed(check, "temperror"),
            SpfResult::PermError => Finding::new(
                level,
                check,
                format!("permerror: the record is broken or needs more than 10 DNS look-ups (RFC 7208 §4.6.4); {why}"),
                None,
            ),
            other => Finding::new(
                level,
                check,
                format!("{}: the address is not authorised; {why}", format!("{other:?}").to_ascii_lowercase()),
                Some(format!("add {mechanism} to the SPF record of {domain}, before its all")),
            ),
        });
    }
}

/// The terms of an SPF record that cost a DNS look-up (RFC 7208 §4.6.4:
/// include, a, mx, ptr, exists and redirect), counted over the record and
/// every record it includes or redirects to. mail-auth stops at the limit
/// with a permerror but does not say how far over a record is; the count
/// is made here over its parsed records. A term whose domain holds a macro
/// counts once and is not followed (it depends on the message).
fn lookup_terms<'a>(
    resolver: &'a hickory_resolver::TokioResolver,
    record: mail_auth::spf::Spf,
    depth: u8,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = usize> + Send + 'a>> {
    use mail_auth::spf::{Macro, Mechanism};
    Box::pin(async move {
        let literal = |m: &Macro| match m {
            Macro::Literal(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        };
        let mut followed = Vec::new();
        let mut n = 0;
        for d in record.directives.iter() {
            match &d.mechanism {
                Mechanism::Include { macro_string } => {
                    n += 1;
                    followed.extend(literal(macro_string));
                }
                Mechanism::A { .. }
                | Mechanism::Mx { .. }
                | Mechanism::Ptr { .. }
                | Mechanism::Exists { .. } => n += 1,
                _ => {}
            }
        }
        if let Some(redirect) = &record.redirect {
            n += 1;
            followed.extend(literal(redirect));
        }
        // Beyond the limit the count is only "too many".
        if depth >= 10 {
            return n;
        }
        for domain in followed {
            let Ok(records) = txt(resolver, &domain).await else {
                continue;
            };
            if let Some(spf) = records
                .iter()
                .find(|r| is_version(r, "v=spf1"))
                .and_then(|r| mail_auth::spf::Spf::parse(r.as_bytes()).ok())
            {
                n += lookup_terms(resolver, spf, depth + 1).await;
            }
        }
        n
    })
}

/// Forward-confirmed reverse DNS of every egress address: its PTR names
/// one that resolves back to it (Gmail and Yahoo require it), and that
/// name is best the source's EHLO name.
async fn reverse_dns(
    resolver: &hickory_resolver::TokioResolver,
    egress: &[Egress],
    out: &mut Vec<Finding>,
) {
    let mut seen = std::collections::BTreeSet::new();
    for e in egress {
        if !seen.insert(e.ip) {
            continue;
        }
        let check = format!("reverse DNS {} (source {})", e.ip, e.source);
        let arpa = hickory_resolver::proto::rr::Name::from(e.ip);
        let publish = Some(format!(
            "{} IN PTR {}.",
            arpa.to_ascii(),
            e.ehlo.trim_end_matches('.')
        ));
        let names: Vec<String> = match resolver.lookup(arpa.clone(), RecordType::PTR).await {
            Ok(answer) => answer
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::PTR(p) => {
                        Some(p.0.to_ascii().trim_end_matches('.').to_ascii_lowercase())
                    }
                    _ => None,
                })
                .collect(),
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Vec::new(),
            Err(e) => {
                out.push(Finding::lookup_failed(check, e));
                continue;
            }
        };
        if names.is_empty() {
            out.push(Finding::new(
                Level::Error,
                check,
                "no PTR record: Gmail and Yahoo refuse mail from addresses without one".into(),
                publish,
            ));
            continue;
        }
        let mut confirmed = Vec::new();
        for name in &names {
            if let Ok(ips) = resolver.lookup_ip(format!("{name}.").as_str()).await {
                if ips.iter().any(|ip| ip == e.ip) {
                    confirmed.push(name.clone());
                }
            }
        }
        let ehlo = e.ehlo.trim_end_matches('.').to_ascii_lowercase();
        out.push(if confirmed.contains(&ehlo) {
            Finding::new(Level::Ok, check, format!("{ehlo}, forward-confirmed, the EHLO name"), None)
        } else if let Some(name) = confirmed.first() {
            Finding::new(
                Level::Warning,
                check,
                format!("{name}, forward-confirmed, but the source says EHLO {ehlo}: some receivers want the two to match"),
                None,
            )
        } else {
            Finding::new(
                Level::Error,
                check,
                format!("PTR {} does not resolve back to {}: not forward-confirmed", names.join(", "), e.ip),
                Some(format!("{}. IN {} {}", names[0], if e.ip.is_ipv4() { "A" } else { "AAAA" }, e.ip)),
            )
        });
    }
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
    let spf: Vec<&String> = records.iter().filter(|r| is_version(r, "v=spf1")).collect();
    match spf.as_slice() {
        [] => out.push(Finding::new(
            Level::Error,
            check,
            "no SPF record: Gmail and Yahoo refuse bulk mail without one".into(),
            Some(format!("{domain}. IN TXT \"v=spf1 a:{host} ~all\"")),
        )),
        [one] => match mail_auth::spf::Spf::parse(one.as_bytes()) {
            Ok(record) => {
                let n = lookup_terms(resolver, record, 0).await;
                out.push(if n > 10 {
                    Finding::new(
                        Level::Error,
                        check,
                        format!("{one}: {n} DNS look-ups with its includes, RFC 7208 §4.6.4 allows 10: receivers answer permerror"),
                        Some(format!("replace includes of {domain}'s record by the ip4:/ip6: ranges they stand for")),
                    )
                } else {
                    Finding::new(Level::Ok, check, format!("{one} ({n} of 10 DNS look-ups)"), None)
                });
            }
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
    let Some(record) = tagged_txt(
        resolver,
        &format!("_dmarc.{domain}"),
        "v=DMARC1",
        &check,
        out,
    )
    .await
    else {
        return;
    };
    // RFC 7489 §6.6.3: without a record of its own, the organisational
    // domain's applies (its sp= for a subdomain).
    let org = organisational_domain(domain);
    let (record, inherited) = match record {
        Some(r) => (Some(r), false),
        None if org != domain.to_ascii_lowercase() => {
            let name = format!("_dmarc.{org}");
            let Some(r) = tagged_txt(resolver, &name, "v=DMARC1", &check, out).await else {
                return;
            };
            (r, true)
        }
        None => (None, false),
    };
    let Some(record) = record else {
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
                "policy {}: {}{record}",
                format!("{:?}", if inherited { d.sp } else { d.p }).to_ascii_lowercase(),
                if inherited {
                    format!(
                        "no record of its own, the organisational domain's applies: _dmarc.{org}: "
                    )
                } else {
                    String::new()
                }
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

/// The tenant's signing domain: `dkim_domain`, else its first sender domain.
fn signing_domain(t: &crate::config::TenantConfig) -> Option<String> {
    t.dkim_domain
        .clone()
        .or_else(|| t.sender_domains.first().cloned())
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
    let Some(domain) = signing_domain(t) else {
        return;
    };
    let current = Key {
        selector,
        path: config.resolve(key),
        algorithm: &t.dkim_algorithm,
    };
    out.push(key_record(resolver, tenant, &domain, &current, Level::Error, "").await);
    if let Some(next) = next_key(config, t) {
        let mut f = key_record(resolver, tenant, &domain, &next, Level::Warning, "next ").await;
        if f.level == Level::Ok {
            f.detail += &format!("; `postwarden dkim rotate --tenant {tenant}` may switch to it");
        } else if !f.lookup_failed {
            f.detail += "; publish it before `dkim rotate`";
        }
        out.push(f);
    }
    if let Some(previous) = t.dkim_previous_selector.as_deref() {
        out.push(
            previous_key(
                resolver,
                tenant,
                &domain,
                previous,
                t.dkim_previous_until.as_deref(),
            )
            .await,
        );
    }
}

/// One DKIM key of a tenant: its selector, PEM file and algorithm.
pub struct Key<'a> {
    pub selector: &'a str,
    pub path: std::path::PathBuf,
    pub algorithm: &'a str,
}

/// The tenant's next key (`dkim keygen --next`), if it has one.
pub fn next_key<'a>(config: &Config, t: &'a crate::config::TenantConfig) -> Option<Key<'a>> {
    Some(Key {
        selector: t.dkim_next_selector.as_deref()?,
        path: config.resolve(t.dkim_next_key.as_ref()?),
        algorithm: t
            .dkim_next_algorithm
            .as_deref()
            .unwrap_or(&t.dkim_algorithm),
    })
}

/// Is `key`'s record published at `selector._domainkey.domain`, and is it
/// that key? `missing` is the level of a record that is absent or another.
async fn key_record(
    resolver: &hickory_resolver::TokioResolver,
    tenant: &str,
    domain: &str,
    key: &Key<'_>,
    missing: Level,
    which: &str,
) -> Finding {
    let name = format!("{}._domainkey.{domain}", key.selector);
    let check = format!("{tenant}: DKIM {which}{name}");
    let expected = match super::dkim::public_record(&key.path, key.algorithm) {
        Ok(r) => r,
        Err(e) => return Finding::new(Level::Error, check, e, None),
    };
    let publish = Some(super::dkim::zone_line(key.selector, domain, &expected));
    let records = match txt(resolver, &name).await {
        Ok(r) => r,
        Err(e) => return Finding::lookup_failed(check, e),
    };
    let Some(record) = records.first() else {
        return Finding::new(
            missing,
            check,
            "no key record: receivers cannot verify the signature".into(),
            publish,
        );
    };
    if let Err(e) = mail_auth::common::verify::DomainKey::parse(record.as_bytes()) {
        return Finding::new(
            missing,
            check,
            format!("the record does not parse ({e:?}): {record}"),
            publish,
        );
    }
    if record_key(record) == record_key(&expected) {
        Finding::new(
            Level::Ok,
            check,
            format!("the published key is {}'s", key.path.display()),
            None,
        )
    } else {
        Finding::new(
            missing,
            check,
            format!("the published key is not {}'s", key.path.display()),
            publish,
        )
    }
}

/// The selector a rotation replaced: its record stays published through the
/// overlap (mail it signed may still sit in queues, or be verified again
/// when forwarded) and goes after it.
async fn previous_key(
    resolver: &hickory_resolver::TokioResolver,
    tenant: &str,
    domain: &str,
    selector: &str,
    until: Option<&str>,
) -> Finding {
    let name = format!("{selector}._domainkey.{domain}");
    let check = format!("{tenant}: DKIM previous {name}");
    let published = match txt(resolver, &name).await {
        Ok(r) => !r.is_empty(),
        Err(e) => return Finding::lookup_failed(check, e),
    };
    let today = time::OffsetDateTime::now_utc().date();
    let over = until
        .and_then(crate::values::clock::parse_day)
        .is_none_or(|d| today > d);
    let until = until.unwrap_or("(no dkim_previous_until)");
    match (over, published) {
        (false, true) => Finding::new(
            Level::Ok,
            check,
            format!("stays published until {until}: mail signed with it may still be in queues"),
            None,
        ),
        (false, false) => Finding::new(
            Level::Warning,
            check,
            format!("removed before {until}: mail signed with it and still under way fails DKIM"),
            None,
        ),
        (true, true) => Finding::new(
            Level::Warning,
            check,
            format!("its overlap ended {until}: remove the record and the dkim_previous_ lines"),
            None,
        ),
        (true, false) => Finding::new(
            Level::Ok,
            check,
            "removed after its overlap: the dkim_previous_ lines can go".into(),
            None,
        ),
    }
}

/// For `dkim rotate`: whether the tenant's next key is published and is
/// that key, with the finding that says so.
pub async fn next_key_ready(config: &Config, tenant: &str) -> Result<Finding, Finding> {
    let fail =
        |detail: String| Finding::new(Level::Error, format!("{tenant}: DKIM next"), detail, None);
    let t = config
        .tenant(tenant)
        .ok_or_else(|| fail(format!("no tenant {tenant:?}")))?;
    let next = next_key(config, t).ok_or_else(|| {
        fail(format!(
            "no next key (dkim_next_selector, dkim_next_key): make one with `postwarden dkim keygen --tenant {tenant} --next --selector S`"
        ))
    })?;
    let domain = signing_domain(t).ok_or_else(|| fail("no signing domain".into()))?;
    let resolver = super::route::dns_resolver(&config.delivery).ok_or_else(no_resolver)?;
    let f = key_record(&resolver, tenant, &domain, &next, Level::Error, "next ").await;
    if f.level == Level::Ok {
        Ok(f)
    } else {
        Err(f)
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
        Err(e) => out.push(Finding::lookup_failed(check, e)),
    }
}

mod recheck;
pub use recheck::keep_checking;

#[cfg(test)]
mod tests;
