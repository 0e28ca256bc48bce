//! The daemon's side of sender authentication: it looks up every tenant's
//! sender domains at start, periodically and on SIGHUP, and keeps what it
//! found for the rule `from.not_authenticated` and the metrics.

use super::{authentication_of, feedback_mx, no_resolver, Finding, Level};
use crate::config::Config;

/// The daemon's re-check of every tenant's sender domains, for the rule
/// `from.not_authenticated`: at start, every `[policy]
/// authentication_recheck` seconds and on SIGHUP. A change of a domain's
/// standing is logged once.
pub async fn keep_checking(ctx: std::sync::Arc<crate::runtime::Context>) {
    loop {
        let config = ctx.settings().config.clone();
        let every = config.policy.authentication_recheck;
        if every == 0 {
            ctx.sender_auth.retain(|t, d| {
                crate::metrics::sender_authentication(t, d, None);
                false
            });
        } else {
            refresh(&ctx, &config).await;
        }
        let wait = std::time::Duration::from_secs(if every == 0 { 86_400 } else { every });
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = ctx.recheck_auth.notified() => {}
        }
    }
}

/// One look-up of every sender domain. A domain whose look-up failed keeps
/// what was known of it, unless nothing was: then, when the resolver
/// answered other look-ups of the round (so the fault is the domain's own
/// DNS, which receivers meet too), the failure is its standing. A sender
/// whose DNS never answers is not let through by that; a resolver that is
/// down for everyone refuses nobody.
async fn refresh(ctx: &crate::runtime::Context, config: &Config) {
    let Some(resolver) = crate::queue::route::dns_resolver(&config.delivery) else {
        tracing::warn!("sender authentication: {}", no_resolver().detail);
        return;
    };
    let mut rounds = Vec::new();
    for (name, tenant) in &config.tenants {
        for (domain, findings) in authentication_of(config, &resolver, name, tenant).await {
            rounds.push((name.as_str(), domain, findings));
        }
    }
    let mut answered = rounds
        .iter()
        .any(|(_, _, findings)| findings.iter().all(|f| !f.lookup_failed));
    if !answered
        && rounds
            .iter()
            .any(|(_, _, f)| f.iter().any(|f| f.lookup_failed))
    {
        // One look-up of our own domain tells a dead resolver from a dead zone.
        let mut probe = Vec::new();
        feedback_mx(config, &resolver, &mut probe).await;
        answered = probe.iter().all(|f| !f.lookup_failed);
    }
    for (name, domain, findings) in rounds {
        let prefix = format!("{name}: ");
        let said = |f: &Finding| {
            format!(
                "{}: {}",
                f.check.strip_prefix(&prefix).unwrap_or(&f.check),
                f.detail
            )
        };
        let known = ctx.sender_auth.is_known(name, &domain);
        let problem = if let Some(failed) = findings.iter().find(|f| f.lookup_failed) {
            if known || !answered {
                tracing::warn!(
                    "sender authentication: {domain} (tenant {name}): {}; keeping the last result",
                    said(failed)
                );
                continue;
            }
            Some(format!(
                "{}, while other look-ups are answered: receivers cannot verify its mail either",
                said(failed)
            ))
        } else {
            let problems: Vec<String> = findings
                .iter()
                .filter(|f| f.level == Level::Error)
                .map(said)
                .collect();
            (!problems.is_empty()).then(|| problems.join("; "))
        };
        if !known || ctx.sender_auth.problem(name, &domain) != problem {
            match &problem {
                None => tracing::info!("sender authentication: {domain} (tenant {name}): ok"),
                Some(p) => tracing::warn!("sender authentication: {domain} (tenant {name}): {p}"),
            }
        }
        crate::metrics::sender_authentication(name, &domain, Some(problem.is_none()));
        ctx.sender_auth.set(name, &domain, problem);
    }
    ctx.sender_auth.retain(|t, d| {
        let kept = config
            .tenant(t)
            .is_some_and(|tc| tc.sender_domains.iter().any(|x| x.eq_ignore_ascii_case(d)));
        if !kept {
            crate::metrics::sender_authentication(t, d, None);
        }
        kept
    });
}
