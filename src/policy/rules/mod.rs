//! The message rules, one file per group. Each `check` calls `push(code,
//! Some(detail))` for every rule that fails; the tenant's profile then decides
//! whether that rejects, warns or is off.

pub mod from;
pub mod subject;
pub mod unsubscribe;
