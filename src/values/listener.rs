//! The listeners mail comes in on.

/// What a listener is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// Port 587: plain text, STARTTLS offered, AUTH required before MAIL.
    Submission,
    /// Port 465: implicit TLS, AUTH required.
    Submissions,
    /// Port 25: no AUTH; only the feedback domain's mailboxes.
    Inbound,
}

impl ListenerKind {
    pub fn name(self) -> &'static str {
        match self {
            ListenerKind::Submission => "submission",
            ListenerKind::Submissions => "submissions",
            ListenerKind::Inbound => "inbound",
        }
    }

    pub fn is_submission(self) -> bool {
        !matches!(self, ListenerKind::Inbound)
    }
}
