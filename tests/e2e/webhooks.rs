//! Webhooks against a local HTTP receiver that checks signatures: events
//! arrive in order, a failing receiver gets them again, a restart in the
//! middle loses none.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::*;

pub(crate) const SECRET: &str = "webhook-secret-for-tests";

/// What the receiver got: (event id, body) of each request it accepted.
pub(crate) type Got = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

/// Answers 500 to the first `fail` requests, then 200; rejects (401) any
/// request whose signature does not verify.
pub(crate) async fn receiver(fail: usize) -> (u16, Got) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let failed = Arc::new(Mutex::new(0usize));
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let (g, failed) = (g.clone(), failed.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body) = loop {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..p]).to_string();
                        let len: usize = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        while buf.len() < p + 4 + len {
                            let n = s.read(&mut chunk).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            buf.extend_from_slice(&chunk[..n]);
                        }
                        break (head, buf[p + 4..p + 4 + len].to_vec());
                    }
                };
                let header = |name: &str| {
                    head.lines().find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                    })
                };
                let sig = header("x-postwarden-signature").unwrap_or_default();
                let t: u64 = sig
                    .split(',')
                    .find_map(|p| p.strip_prefix("t="))
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                let valid = sig == postwarden::webhooks::signature(SECRET, t, &body);
                let status = if !valid {
                    "401 Unauthorized"
                } else {
                    let mut f = failed.lock().unwrap();
                    if *f < fail {
                        *f += 1;
                        "500 Internal Server Error"
                    } else {
                        let id = header("x-postwarden-event-id").unwrap_or_default();
                        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                        assert_eq!(v["id"], id.as_str());
                        // Delivery is at least once: a receiver keeps the
                        // first of a repeated event id.
                        let mut g = g.lock().unwrap();
                        if !g.iter().any(|(seen, _)| *seen == id) {
                            g.push((id, v));
                        }
                        "200 OK"
                    }
                };
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    (port, got)
}

fn wait_for(got: &Got, n: usize) -> Vec<(String, serde_json::Value)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let g = got.lock().unwrap().clone();
        if g.len() >= n {
            return g;
        }
        assert!(
            Instant::now() < deadline,
            "receiver got {} of {n}: {g:?}",
            g.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn set(d: &Daemon, address: &str) {
    set_state(&d.config_path, address, "double_opt_in_confirmed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_the_receiver_signed_in_order_through_failures_and_a_restart() {
    let (port, got) = receiver(1).await;
    let mut d = Daemon::start(Options {
        tenant: format!(
            "webhook_url = \"http://127.0.0.1:{port}/hooks/postwarden\"\nwebhook_secret = \"{SECRET}\"\nwebhook_retry_base = 1\n"
        ),
        ..Options::default()
    });
    set(&d, "a@example.test");
    set(&d, "b@example.test");
    // The first POST fails (500); the retry delivers both, in order.
    let g = wait_for(&got, 2);
    assert_eq!(g[0].1["type"], "consent_changed");
    assert_eq!(g[0].1["address"], "a@example.test");
    assert_eq!(g[1].1["address"], "b@example.test");
    assert_eq!(g[0].1["tenant"], "acme");
    assert!(g[0].0 < g[1].0, "ids sort in event order");
    d.wait_for_log("webhook acme");
    // Killed with events still waiting, restarted: nothing is lost.
    d.kill();
    d.spawn();
    set(&d, "c@example.test");
    set(&d, "d@example.test");
    let g = wait_for(&got, 4);
    let addresses: Vec<&str> = g
        .iter()
        .map(|(_, v)| v["address"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        addresses,
        vec![
            "a@example.test",
            "b@example.test",
            "c@example.test",
            "d@example.test"
        ]
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = d.cli(&["webhooks", "list", "--json"]);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(list[0]["tenant"], "acme");
        if list[0]["backlog"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "backlog stays: {list}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
