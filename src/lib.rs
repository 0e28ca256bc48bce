//! postwarden: a mail transfer agent for permission-based senders, with the
//! anti-spam policy of a good mail platform built in. See DESIGN.md for the map.

pub mod accept;
pub mod config;
pub mod consent;
pub mod daemon;
pub mod feedback;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod http_client;
pub mod log;
pub mod message;
pub mod metrics;
pub mod policy;
pub mod queue;
pub mod retention;
pub mod runtime;
pub mod shaping;
pub mod smtp;
pub mod store;
pub mod tenant;
pub mod token;
pub mod values;
pub mod webhooks;
