//! Concurrent connection limits, in total and per client IP.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

pub struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    counts: Arc<Mutex<(usize, HashMap<IpAddr, usize>)>>,
}

/// Holds one connection's place; dropping it frees the place.
pub struct ConnectionGuard {
    ip: IpAddr,
    counts: Arc<Mutex<(usize, HashMap<IpAddr, usize>)>>,
}

impl ConnectionLimits {
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        ConnectionLimits {
            max_total,
            max_per_ip,
            counts: Arc::new(Mutex::new((0, HashMap::new()))),
        }
    }

    /// Admits a connection from `ip`, or says which limit it hit.
    pub fn admit(&self, ip: IpAddr) -> Result<ConnectionGuard, &'static str> {
        let mut guard = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per_ip) = &mut *guard;
        if *total >= self.max_total {
            return Err("too many connections");
        }
        let n = per_ip.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            return Err("too many connections from your address");
        }
        *n += 1;
        *total += 1;
        Ok(ConnectionGuard {
            ip,
            counts: self.counts.clone(),
        })
    }

    pub fn active(&self) -> usize {
        self.counts.lock().map(|c| c.0).unwrap_or(0)
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut guard = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per_ip) = &mut *guard;
        *total = total.saturating_sub(1);
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}
