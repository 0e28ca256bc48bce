//! The ESMTP server: one session engine (`session.rs`) serving three
//! listeners that differ only in their [`ListenerKind`]. A file per command
//! group, as Stalwart's `inbound/`: `command.rs` parses, `ehlo.rs`,
//! `auth_command.rs`, `mail.rs`, `rcpt.rs` and `data.rs` answer; the end of
//! DATA hands the message to `accept` and turns its outcome into the reply.

mod auth;
mod auth_command;
mod command;
mod data;
mod ehlo;
mod mail;
mod rcpt;
pub(crate) mod session;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::runtime::Context;
use crate::values::ListenerKind;

/// Binds `addr` for `kind`; fails if the address is taken.
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Accepts connections until the task is dropped.
pub async fn serve(listener: TcpListener, kind: ListenerKind, ctx: Arc<Context>) {
    let local = listener.local_addr().ok();
    info!(
        "listening for {} on {}",
        kind.name(),
        local.map(|a| a.to_string()).unwrap_or_default()
    );
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: wait a little instead of spinning.
                warn!("accept on {} failed: {e}", kind.name());
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            handle_connection(stream, peer, kind, ctx).await;
        });
    }
}

async fn handle_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    kind: ListenerKind,
    ctx: Arc<Context>,
) {
    let _ = stream.set_nodelay(true);
    let guard = match ctx.connections.admit(peer.ip()) {
        Ok(g) => g,
        Err(why) => {
            use tokio::io::AsyncWriteExt;
            warn!("reject: connect from [{}]: {why}", peer.ip());
            let mut stream = stream;
            let _ = stream
                .write_all(format!("421 4.7.0 {why}, try again later\r\n").as_bytes())
                .await;
            return;
        }
    };
    session::run(stream, peer, kind, ctx).await;
    drop(guard);
}
