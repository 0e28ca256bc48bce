//! End-to-end tests: the real daemon binary over loopback sockets.

mod architecture;
mod browser;
mod clients;
mod consent;
mod corpus;
mod delivery;
mod dns;
mod docs;
mod fleet;
mod fuzz;
mod harness;
mod international;
mod logs;
mod policy;
mod reliability;
mod retention;
mod scale;
mod security;
mod shaping;
mod signup;
mod smtp;
mod webhooks;
