//! The queue: ids, entries, routing, the SMTP client, DKIM and the scheduler.

pub mod admin;
pub mod client;
pub mod delivery;
pub mod dkim;
pub mod domains;
pub mod dsn;
pub mod route;
