//! The policy's reason codes: stable names that replies, events, metrics and
//! the configuration's `[tenants.X.rules]` share.

/// Every rule's reason code, in the order replies list them.
pub const RULE_CODES: &[&str] = &[
    "tenant.suspended",
    "recipient.suppressed",
    "from.missing",
    "from.multiple",
    "from.malformed",
    "from.domain_not_verified",
    "from.not_authenticated",
    "from.display_name_spoof",
    "from.display_name_confusable",
    "reply_to.foreign",
    "sender.foreign",
    "subject.missing",
    "subject.empty",
    "subject.fake_reply",
    "subject.hidden_characters",
    "subject.confusable",
    "subject.deceptive",
    "unsubscribe.header_missing",
    "unsubscribe.no_https",
    "unsubscribe.one_click_missing",
    "unsubscribe.url_invalid",
    "unsubscribe.body_link_missing",
    "unsubscribe.link_hidden",
    "unsubscribe.link_text_too_long",
    "message.list_missing",
    "recipient.no_consent",
];
