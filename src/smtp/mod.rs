//! SMTP: the server shared by the submission and inbound listeners, and TLS.

pub mod server;
pub mod tls;
