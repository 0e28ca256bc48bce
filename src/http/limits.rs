//! Daily limits on confirmation mails, per address and per client IP, so
//! that a subscribe form cannot be turned into a mail bomb. Counted in memory
//! per UTC day: a restart forgets the counts, which at worst allows one more
//! day's quota.

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
    /// Counts one confirmation mail for (tenant, address) and for the client
    /// IP; false, and nothing counted, when either is over its limit.
    pub fn allow(&self, tenant: &str, address: &str, ip: &str, config: &TenantConfig) -> bool {
        self.allow_at(crate::values::now() / 86400, tenant, address, ip, config)
    }

    fn allow_at(
        &self,
        day: u64,
        tenant: &str,
        address: &str,
        ip: &str,
        config: &TenantConfig,
    ) -> bool {
        let mut d = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if d.day != day {
            d.day = day;
            d.counts.clear();
        }
        let by_address = format!("a\0{tenant}\0{address}");
        let by_ip = format!("i\0{ip}");
        let a = d.counts.get(&by_address).copied().unwrap_or(0);
        let i = d.counts.get(&by_ip).copied().unwrap_or(0);
        if a >= config.confirm_limit_per_address || i >= config.confirm_limit_per_ip {
            return false;
        }
        d.counts.insert(by_address, a + 1);
        d.counts.insert(by_ip, i + 1);
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
        assert!(l.allow_at(1, "t", "a@x.test", "192.0.2.1", &config));
        assert!(l.allow_at(1, "t", "a@x.test", "192.0.2.1", &config));
        assert!(!l.allow_at(1, "t", "a@x.test", "192.0.2.2", &config));
        // Another address from the first IP: its third and last.
        assert!(l.allow_at(1, "t", "b@x.test", "192.0.2.1", &config));
        assert!(!l.allow_at(1, "t", "c@x.test", "192.0.2.1", &config));
        // The same address of another tenant is counted apart.
        assert!(l.allow_at(1, "u", "a@x.test", "192.0.2.3", &config));
        // A new day.
        assert!(l.allow_at(2, "t", "a@x.test", "192.0.2.1", &config));
    }
}
