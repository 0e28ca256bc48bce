//! Daily limits on confirmation mails, per address (of one tenant and of all
//! tenants together) and per client IP, so that a subscribe form cannot be
//! turned into a mail bomb. A refused sign-up counts against its IP too, so
//! that a bot that tries without end is soon answered 429 and writes no more
//! events. Counted in memory per UTC day: a restart forgets the counts, which
//! at worst allows one more day's quota.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::config::TenantConfig;

#[derive(Default)]
pub struct DailyLimiter {
    inner: Mutex<Day>,
}

#[derive(Default)]
struct Day {
    day: u64,
    counts: HashMap<String, u32>,
}

impl DailyLimiter {
    /// Counts one confirmation mail for (tenant, address), for the address
    /// on the whole site (`site_limit`) and for the client IP (None: a CRM's
    /// API call that did not say); false, and nothing counted, when one of
    /// them is over its limit.
    pub fn allow(
        &self,
        tenant: &str,
        address: &str,
        ip: Option<&str>,
        config: &TenantConfig,
        site_limit: u32,
    ) -> bool {
        let day = crate::values::now() / 86400;
        self.allow_on(day, tenant, address, ip, config, site_limit)
    }

    fn allow_on(
        &self,
        day: u64,
        tenant: &str,
        address: &str,
        ip: Option<&str>,
        config: &TenantConfig,
        site_limit: u32,
    ) -> bool {
        let limits = [
            (
                format!("a\0{tenant}\0{address}"),
                config.confirm_limit_per_address,
            ),
            (format!("s\0{address}"), site_limit),
        ];
        let by_ip = ip.map(|ip| (format!("i\0{ip}"), config.confirm_limit_per_ip));
        self.count_at(day, limits.into_iter().chain(by_ip))
    }

    /// Counts a refused sign-up against the client IP; false when the IP is
    /// over its limit (the refusal is then answered 429 and not recorded).
    pub fn refused(&self, ip: &str, config: &TenantConfig) -> bool {
        self.count_at(
            crate::values::now() / 86400,
            [(format!("i\0{ip}"), config.confirm_limit_per_ip)],
        )
    }

    /// Counts one for every key if each is under its limit on `day`.
    fn count_at(&self, day: u64, keys: impl IntoIterator<Item = (String, u32)>) -> bool {
        let mut d = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if d.day != day {
            d.day = day;
            d.counts.clear();
        }
        let keys: Vec<_> = keys.into_iter().collect();
        if keys
            .iter()
            .any(|(k, limit)| d.counts.get(k).copied().unwrap_or(0) >= *limit)
        {
            return false;
        }
        for (k, _) in keys {
            *d.counts.entry(k).or_insert(0) += 1;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_address_and_per_ip_reset_each_day() {
        let config = TenantConfig {
            confirm_limit_per_address: 2,
            confirm_limit_per_ip: 3,
            ..TenantConfig::default()
        };
        let l = DailyLimiter::default();
        assert!(l.allow_on(1, "t", "a@x.test", Some("192.0.2.1"), &config, 4));
        assert!(l.allow_on(1, "t", "a@x.test", Some("192.0.2.1"), &config, 4));
        assert!(!l.allow_on(1, "t", "a@x.test", Some("192.0.2.2"), &config, 4));
        // Another address from the first IP: its third and last.
        assert!(l.allow_on(1, "t", "b@x.test", Some("192.0.2.1"), &config, 4));
        assert!(!l.allow_on(1, "t", "c@x.test", Some("192.0.2.1"), &config, 4));
        // The same address of another tenant is counted apart, up to the
        // site's limit for the address (4 here).
        assert!(l.allow_on(1, "u", "a@x.test", Some("192.0.2.3"), &config, 4));
        assert!(l.allow_on(1, "v", "a@x.test", Some("192.0.2.4"), &config, 4));
        assert!(!l.allow_on(1, "w", "a@x.test", Some("192.0.2.5"), &config, 4));
        // A new day.
        assert!(l.allow_on(2, "t", "a@x.test", Some("192.0.2.1"), &config, 4));
    }
}
