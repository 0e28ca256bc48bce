//! Where mail for a domain goes: a static route, the smarthost, or the MX
//! hosts from DNS (RFC 5321 §5.1), with implicit MX and null MX (RFC 7505).

use std::net::SocketAddr;

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};

use crate::config::{parse_host_port, Delivery};

/// One host to try, with its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub addrs: Vec<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// RFC 7505: the domain accepts no mail.
    #[error("domain {0} does not accept mail (null MX)")]
    NullMx(String),
    #[error("domain {0} does not exist")]
    NoSuchDomain(String),
    #[error("DNS look-up for {domain} failed: {reason}")]
    Temporary { domain: String, reason: String },
}

impl RouteError {
    /// The enhanced status code and whether the failure is permanent.
    pub fn status(&self) -> (&'static str, bool) {
        match self {
            RouteError::NullMx(_) => ("5.1.10", true),
            RouteError::NoSuchDomain(_) => ("5.1.2", true),
            RouteError::Temporary { .. } => ("4.4.3", false),
        }
    }
}

/// The DNS resolver delivery uses: `[delivery] nameservers` (host:port),
/// else the system's (/etc/resolv.conf). None when none can be built.
pub fn resolver(delivery: &Delivery) -> Option<TokioResolver> {
    builder(delivery).and_then(|b| b.build().ok())
}

/// [`resolver`] that asks DNS only, never /etc/hosts: what a receiver sees
/// of our records (`domains check`, the sender-authentication re-check).
pub fn dns_resolver(delivery: &Delivery) -> Option<TokioResolver> {
    let mut b = builder(delivery)?;
    b.options_mut().use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
    b.build().ok()
}

fn builder(delivery: &Delivery) -> Option<hickory_resolver::ResolverBuilder<TokioRuntimeProvider>> {
    if delivery.nameservers.is_empty() {
        TokioResolver::builder_tokio().ok()
    } else {
        let servers = delivery
            .nameservers
            .iter()
            .filter_map(|s| s.parse::<SocketAddr>().ok())
            .map(|sa| {
                let mut ns = NameServerConfig::udp_and_tcp(sa.ip());
                for c in &mut ns.connections {
                    c.port = sa.port();
                }
                ns
            })
            .collect();
        Some(Resolver::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        ))
    }
}

pub struct Router {
    delivery: Delivery,
    resolver: Option<TokioResolver>,
}

impl Router {
    pub fn new(delivery: &Delivery) -> Router {
        Router {
            delivery: delivery.clone(),
            resolver: resolver(delivery),
        }
    }

    /// The key under which connections to `domain` are pooled and limited.
    pub fn destination_key(&self, domain: &str) -> String {
        if let Some(r) = self.delivery.routes.get(domain) {
            return format!("route:{r}");
        }
        if let Some(r) = &self.delivery.relay_host {
            return format!("relay:{r}");
        }
        format!("mx:{domain}")
    }

    /// The hosts to try for `domain`, in order.
    pub async fn resolve(&self, domain: &str) -> Result<Vec<Target>, RouteError> {
        let fixed = self
            .delivery
            .routes
            .get(domain)
            .or(self.delivery.relay_host.as_ref());
        if let Some(hostport) = fixed {
            let (host, port) = parse_host_port(hostport).map_err(|e| RouteError::Temporary {
                domain: domain.into(),
                reason: e,
            })?;
            return Ok(vec![self.target(&host, port).await?]);
        }
        let Some(resolver) = &self.resolver else {
            return Err(RouteError::Temporary {
                domain: domain.into(),
                reason: "no DNS resolver configured".into(),
            });
        };
        let fqdn = format!("{}.", domain.trim_end_matches('.'));
        let mut mxs: Vec<(u16, String)> = match resolver.lookup(fqdn.as_str(), RecordType::MX).await
        {
            Ok(lookup) => lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                    _ => None,
                })
                .collect(),
            Err(e) if e.is_nx_domain() => return Err(RouteError::NoSuchDomain(domain.into())),
            Err(e) if e.is_no_records_found() => Vec::new(),
            Err(e) => {
                return Err(RouteError::Temporary {
                    domain: domain.into(),
                    reason: e.to_string(),
                })
            }
        };
        if mxs.len() == 1 && (mxs[0].1 == "." || mxs[0].1.is_empty()) {
            return Err(RouteError::NullMx(domain.into()));
        }
        if mxs.is_empty() {
            // Implicit MX: the domain's own address records (RFC 5321 §5.1).
            mxs.push((0, fqdn.clone()));
        }
        mxs.sort_by_key(|(pref, _)| *pref);
        let mut targets = Vec::new();
        let mut last_error = None;
        for (_, host) in mxs {
            match resolver.lookup_ip(host.as_str()).await {
                Ok(ips) => targets.push(Target {
                    host: host.trim_end_matches('.').to_string(),
                    addrs: ips
                        .iter()
                        .map(|ip| SocketAddr::new(ip, self.delivery.mx_port))
                        .collect(),
                }),
                Err(e) => last_error = Some(e.to_string()),
            }
        }
        if targets.is_empty() {
            return Err(RouteError::Temporary {
                domain: domain.into(),
                reason: last_error.unwrap_or_else(|| "no address for any MX host".into()),
            });
        }
        Ok(targets)
    }

    async fn target(&self, host: &str, port: u16) -> Result<Target, RouteError> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| RouteError::Temporary {
                domain: host.into(),
                reason: e.to_string(),
            })?
            .collect();
        Ok(Target {
            host: host.to_string(),
            addrs,
        })
    }
}
