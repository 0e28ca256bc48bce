//! A message to the feedback domain's mailboxes (bounces, ARF reports, abuse
//! forwards, mailto unsubscribes): stored as it came for the feedback
//! processor, which reads it after the `250`.

use std::time::Instant;

use tracing::info;

use super::{Client, Envelope, Outcome};
use crate::consent::normalize_address;
use crate::runtime::{Context, Settings};
use crate::store::queue::InboundItem;
use crate::store::Store;

/// Stores an inbound message and wakes the feedback processor.
pub async fn accept(
    ctx: &Context,
    settings: &Settings,
    client: &Client,
    envelope: Envelope,
    message: Vec<u8>,
) -> Outcome {
    let started = Instant::now();
    let id = crate::values::queue_id::new_queue_id();
    if let Err(outcome) = super::first_checks(ctx, settings, &id, client, &message) {
        return outcome;
    }
    let rcpts: Vec<String> = envelope
        .recipients
        .iter()
        .map(|r| normalize_address(&r.address))
        .collect();
    let received = super::received_header(client, &settings.config.server.hostname, &id, &rcpts);
    let stored = crate::message::prepend_headers(&received, &message);
    let item = InboundItem {
        id: id.clone(),
        sender: envelope.sender,
        recipients: rcpts,
        received_at: crate::values::now(),
        size: stored.len(),
        client_ip: client.ip.to_string(),
    };
    if let Err(e) = ctx.store.commit(Store::inbound_ops(&item, &stored)).await {
        return Outcome::TempFailure(super::store_failure(&id, &e));
    }
    info!("{id}: client=[{}]", client.ip);
    info!(
        service = "qmgr",
        "{id}: from=<{}>, size={}, nrcpt={} (inbound feedback)",
        item.sender,
        item.size,
        item.recipients.len()
    );
    ctx.inbound.notify_one();
    crate::metrics::accepted("inbound", started.elapsed().as_secs_f64());
    Outcome::Queued { id }
}
