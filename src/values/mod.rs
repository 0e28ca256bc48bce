//! The ground floor: small value types and pure helpers that every part
//! shares (addresses, consent states, reason codes, the clock). Nothing here
//! imports anything of ours (docs/architecture.md).

pub mod address;
pub mod clock;
mod consent_state;
mod lang;
mod listener;
pub mod queue_id;
#[cfg(test)]
pub(crate) mod random;
mod reasons;

pub use clock::now;
pub use consent_state::ConsentState;
pub use lang::Lang;
pub use listener::ListenerKind;
pub use reasons::RULE_CODES;
