//! The consent states of DESIGN.md's consent model, shared by the
//! configuration (which states a profile allows), the policy and the records.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ConsentState {
    None,
    SingleOptIn,
    DoubleOptInPending,
    DoubleOptInConfirmed,
    Unsubscribed,
    Suppressed,
}

impl ConsentState {
    /// Every state, each at the index of its discriminant.
    pub const ALL: [ConsentState; 6] = [
        ConsentState::None,
        ConsentState::SingleOptIn,
        ConsentState::DoubleOptInPending,
        ConsentState::DoubleOptInConfirmed,
        ConsentState::Unsubscribed,
        ConsentState::Suppressed,
    ];

    pub fn parse(s: &str) -> Option<ConsentState> {
        Some(match s {
            "none" => ConsentState::None,
            "single_opt_in" => ConsentState::SingleOptIn,
            "double_opt_in_pending" => ConsentState::DoubleOptInPending,
            "double_opt_in_confirmed" => ConsentState::DoubleOptInConfirmed,
            "unsubscribed" => ConsentState::Unsubscribed,
            "suppressed" => ConsentState::Suppressed,
            _ => return None,
        })
    }

    /// A state that lets mail go out (and so needs evidence of consent).
    pub fn is_opt_in(self) -> bool {
        matches!(
            self,
            ConsentState::SingleOptIn
                | ConsentState::DoubleOptInPending
                | ConsentState::DoubleOptInConfirmed
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ConsentState::None => "none",
            ConsentState::SingleOptIn => "single_opt_in",
            ConsentState::DoubleOptInPending => "double_opt_in_pending",
            ConsentState::DoubleOptInConfirmed => "double_opt_in_confirmed",
            ConsentState::Unsubscribed => "unsubscribed",
            ConsentState::Suppressed => "suppressed",
        }
    }
}
