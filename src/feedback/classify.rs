//! Bounce classification as data: a table of rules a postmaster can read and
//! extend, matched in order (KumoMTA's bounce classifier is the model).
//! The status code decides when there is a specific one; the text otherwise.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BounceClass {
    /// The address itself is bad: suppress at the hard limit.
    Hard,
    /// Temporary or not the recipient's fault: counted, suppressed only at the soft limit.
    Soft,
    Complaint,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Classification {
    pub class: BounceClass,
    pub reason: &'static str,
}

impl Classification {
    /// A soft failure for `reason`.
    pub const fn soft(reason: &'static str) -> Classification {
        Classification {
            class: BounceClass::Soft,
            reason,
        }
    }
}

/// (enhanced status prefix, class, reason): most specific first. A prefix
/// ending in "." matches a whole class of codes.
const STATUS_RULES: &[(&str, BounceClass, &str)] = &[
    // Microsoft: "Recipient not found by SMTP address lookup".
    ("5.1.10", BounceClass::Hard, "user_unknown"),
    ("5.1.1", BounceClass::Hard, "user_unknown"),
    ("5.1.2", BounceClass::Hard, "host_unknown"),
    ("5.1.3", BounceClass::Hard, "user_unknown"),
    ("5.1.6", BounceClass::Hard, "user_unknown"),
    ("5.4.4", BounceClass::Hard, "host_unknown"),
    ("5.1.7", BounceClass::Soft, "policy_blocked"),
    ("5.1.8", BounceClass::Soft, "policy_blocked"),
    ("5.2.1", BounceClass::Soft, "mailbox_disabled"),
    ("5.2.2", BounceClass::Soft, "mailbox_full"),
    ("4.2.2", BounceClass::Soft, "mailbox_full"),
    ("5.2.3", BounceClass::Soft, "message_too_large"),
    ("5.3.4", BounceClass::Soft, "message_too_large"),
    // RFC 3463's registry: X.7.13 "User Account Disabled".
    ("5.7.13", BounceClass::Soft, "mailbox_disabled"),
    ("4.7.13", BounceClass::Soft, "mailbox_disabled"),
    // Microsoft: "temporarily rate limited due to IP reputation".
    ("4.7.650", BounceClass::Soft, "policy_blocked"),
    ("5.7.509", BounceClass::Soft, "auth_failure"),
    ("5.7.26", BounceClass::Soft, "auth_failure"),
    ("5.7.23", BounceClass::Soft, "auth_failure"),
    ("5.7.25", BounceClass::Soft, "policy_blocked"),
    ("5.7.1", BounceClass::Soft, "policy_blocked"),
    ("4.4.7", BounceClass::Soft, "expired"),
    ("5.4.7", BounceClass::Soft, "expired"),
    ("4.7.", BounceClass::Soft, "rate_limited"),
    ("4.4.", BounceClass::Soft, "network_error"),
    ("5.4.", BounceClass::Soft, "network_error"),
    ("5.6.", BounceClass::Soft, "content_rejected"),
    ("5.7.", BounceClass::Soft, "policy_blocked"),
    ("4.2.", BounceClass::Soft, "mailbox_full"),
];

/// Codes too general to decide alone: the text is read first, and the code
/// decides only when no text rule matches.
const AMBIGUOUS_STATUS: &[&str] = &[
    "5.0.0", "4.0.0", "5.5.0", "5.1.0", "5.2.0", "5.2.1", "5.7.0", "5.7.1", "5.4.0", "4.4.0",
    "5.6.0", "4.7.0", "5.3.0", "4.3.0", "5.5.1", "5.5.2", "4.4.1", "5.4.1", "5.4.4",
];

/// (pattern on the diagnostic text, class, reason), in order.
const TEXT_RULES: &[(&str, BounceClass, &str)] = &[
    // Google Groups answers in the sender's language; its help link is the
    // constant: no such group, or no permission to post to it.
    (
        r"(?i)groups\.google\.com/support",
        BounceClass::Soft,
        "policy_blocked",
    ),
    // Orange (orange.fr, wanadoo.fr) names its refusals with codes such as
    // "OFR_506" or "OFR004_506"; 506 is its spam refusal.
    (r"(?i)\bOFR\d*_506\b", BounceClass::Soft, "spam_blocked"),
    (
        r"(?i)retry time(out)? (was )?(exceeded|reached)|too long in (the )?queue|in the queue too long|failing for a long time|envelope expired|aborted after|warning message only|will be retried|still undelivered|will keep trying|has been delayed|delivery.{0,30}delayed|message expired|could not be delivered (within|for) |delivery (time|period) (has )?expired|message (has )?expired|giving up|retry limit|exceeded the maximum time|was not delivered within|delivery time expired|no delivery for",
        BounceClass::Soft,
        "expired",
    ),
    // A message refused for breaking the message format: content, even when
    // the reply goes on to say that such messages are often spam (Gmail) or
    // names the field (a duplicate DKIM-Signature).
    (
        r"(?i)not (rfc ?(5322|2822|822) )?compliant|not compliant with rfc|multiple (subject|from|date|to|sender|message-id) (headers|fields)|multiple addresses in from|duplicate header|headers? too (large|long|many)",
        BounceClass::Soft,
        "content_rejected",
    ),
    (
        r"(?i)\bspf\b|\bdkim\b|\bdmarc\b|sender policy framework|not authenticated|authentication (check )?fail|unauthenticated (e-?mail|mail|message)s? from",
        BounceClass::Soft,
        "auth_failure",
    ),
    (
        r"(?i)(mailbox|inbox|quota|disk|storage).{0,30}(full|exceeded|over)|over ?quota|exceed(s|ed)? (the |his |her |their )?(storage|quota)|insufficient (storage|space)|mailbox size limit",
        BounceClass::Soft,
        "mailbox_full",
    ),
    (
        r"(?i)(account|mailbox|user|address).{0,30}(disabled|suspended|inactive|deactivated|locked|frozen|expired|closed|no longer active|not active)|disabled (recipient|user|mailbox|account|address)",
        BounceClass::Soft,
        "mailbox_disabled",
    ),
    (
        r"(?i)(message|mail|email).{0,30}(too (large|big)|size exceeds|exceeds.{0,20}(size|limit))|message size|exceeds (the )?maximum (message )?size|too large|(size|line) limit exceeded",
        BounceClass::Soft,
        "message_too_large",
    ),
    // The *sender's* address refused (sender verification): nothing is wrong
    // with the recipient, who must not be suppressed for it.
    (
        r"(?i)(unroutable|invalid|unknown|unverified|bad) sender|sender (address|domain) (rejected|unroutable|invalid|unknown|does not exist)",
        BounceClass::Soft,
        "policy_blocked",
    ),
    // Postfix's "Recipient address rejected" alone, or with Microsoft's
    // directory-based edge blocking ("Access denied"), names the recipient.
    (
        r"(?i)recipient address rejected: access denied|recipient address rejected\.?\s*$",
        BounceClass::Hard,
        "user_unknown",
    ),
    (
        r"(?i)(user|mailbox|recipient|address|account)\s+(is\s+)?(unknown|not found|does not exist|doesn't exist|invalid|not exist|no such|unavailable)|no such (user|mailbox|recipient|person|address|account)|unknown (user|recipient|mailbox|local|address)|undeliverable address|user doesn't have|not a valid (mailbox|recipient|user)|invalid (recipient|mailbox|address)|account does not exist|does not have an account|addressee unknown|user not found|recipient not found|no mailbox|mailbox unavailable|no longer (valid|available)|has moved|doesn't have a .* account|not listed in|unrouteable address|no valid recipients|(ユーザ|アドレス|宛先|ディレクトリ).{0,40}(見つかりません|存在しません|ありません)|宛先不明",
        BounceClass::Hard,
        "user_unknown",
    ),
    // A DNS server that failed to answer (SERVFAIL, a broken reply) says
    // nothing about the domain: try later, unlike "host not found".
    (
        r"(?i)malformed or unexpected name server reply|name server (failure|timed? ?out)|servfail|host\s+not\s+found,\s+try\s+again",
        BounceClass::Soft,
        "network_error",
    ),
    (
        r"(?i)host (or domain name )?(not found|unknown)|domain (not found|does not exist|name not found)|no mx|unroutable|name or service not known|dns (error|failure)|host name lookup failure|unknown host|no route to host|domain .* (not|isn't) (valid|exist)|(?:^|[\s:])[a-z0-9-]+(?:\.[a-z0-9-]+)+ does not exist|does not accept (any )?mail|not accepting network messages|null mx|indicated no smtp service",
        BounceClass::Hard,
        "host_unknown",
    ),
    (
        r"(?i)spam|junk|bulk mail|unsolicited|\bube\b|spamassassin|scored",
        BounceClass::Soft,
        "spam_blocked",
    ),
    (
        r"(?i)virus|malware|content (was )?rejected|rejected (due to|because of) content|forbidden (attachment|content)|attachment|message content|content filter|filtered|not compliant with rfc|rfc ?(5322|2822|822)|header (error|syntax|invalid|too)|(invalid|malformed|bad) header|mime (error|violation)",
        BounceClass::Soft,
        "content_rejected",
    ),
    // Reputation before rate: "rate limited due to IP reputation" is a block.
    (
        r"(?i)reputation|user complaints|blacklist|blocklist|block list|black list|spamhaus|dnsbl|\brbl\b",
        BounceClass::Soft,
        "policy_blocked",
    ),
    (
        r"(?i)too many (connections|messages|recipients|sessions)|rate limit|throttl|try (again )?later|temporarily (deferred|rejected)|exceeded .* (rate|limit)|frequency",
        BounceClass::Soft,
        "rate_limited",
    ),
    (
        r"(?i)permission to post|not have permission|not a member of|unverif|mismatch|protocol violation|not accepting (connections|mail)|invalid ip|\(bl\)|access denied|blacklist|blocklist|block list|black list|blocked|reputation|\brbl\b|dnsbl|spamhaus|denied|not allowed|refused|relay|policy|prohibited|reverse dns|ptr|not permitted|rejected",
        BounceClass::Soft,
        "policy_blocked",
    ),
    (
        r"(?i)timed? ?out|hop count exceeded|routing loop|mail loop|connection (refused|reset|lost|closed)|network|tls|starttls|lost connection",
        BounceClass::Soft,
        "network_error",
    ),
];

/// The public blocklists by their domain (see [`classify`]); not the word
/// "blacklisted", which notices also use loosely ("they may be blacklisted").
static BLOCKLIST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)spamhaus\.org|spamcop\.net|barracudacentral\.org|sorbs\.net")
        .expect("a valid pattern")
});

static COMPILED_TEXT_RULES: LazyLock<Vec<(Regex, BounceClass, &'static str)>> =
    LazyLock::new(|| {
        TEXT_RULES
            .iter()
            .filter_map(|(p, c, r)| Regex::new(p).ok().map(|re| (re, *c, *r)))
            .collect()
    });

fn status_rule(status: &str) -> Option<Classification> {
    STATUS_RULES.iter().find_map(|(prefix, class, reason)| {
        let matches = if prefix.ends_with('.') {
            status.starts_with(prefix)
        } else {
            status == *prefix
        };
        matches.then_some(Classification {
            class: *class,
            reason,
        })
    })
}

fn text_rule(text: &str) -> Option<Classification> {
    COMPILED_TEXT_RULES
        .iter()
        .find(|(re, _, _)| re.is_match(text))
        .map(|(_, class, reason)| Classification {
            class: *class,
            reason,
        })
}

/// The reply was to DATA: Postfix's "(in reply to end of DATA command)"
/// (wrapped across lines in its bounce text), Exim's "after end of data",
/// Sendmail's transcript (">>> DATA" then the refusal as the "<<<" reply,
/// not "no valid recipients", which is what follows refused RCPTs) and
/// m-FILTER's "SMTP command" section naming DATA.
static AFTER_DATA: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)in\s+reply\s+to\s+(end\s+of\s+)?data\s+command|after\s+end\s+of\s+data|(?m:^>>>\s*DATA\s*\r?\n<<<\s*5\d\d\b[^\n]*(unknown|no such)[^\n]*$)|(?m:smtp\s+command\s*\r?\n\s*DATA\s*$)",
    )
    .expect("a valid pattern")
});

/// "User unknown" in reply to DATA: the server accepted the recipient at
/// RCPT TO, so what it refused after seeing the message is the content (what
/// mobile carriers' recipient-side filters do), not the address. Unless the
/// server said so with a specific code (5.1.1, "bad destination mailbox"):
/// then it meant the address, whichever command it answered.
pub fn after_data(c: Classification, status: &str, transcript: &str) -> Classification {
    let said_address =
        !is_ambiguous(status) && status_rule(status).is_some_and(|s| s.reason == "user_unknown");
    if c.reason == "user_unknown" && !said_address && AFTER_DATA.is_match(transcript) {
        Classification::soft("content_rejected")
    } else {
        c
    }
}

/// The reply was to MAIL FROM: Exim's "after MAIL FROM", Postfix's "(in
/// reply to MAIL FROM command)", a Sendmail transcript's refusal right
/// after ">>> MAIL From:".
static AFTER_MAIL_FROM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)after\s+mail\s+from|in\s+reply\s+to\s+mail\s+from\s+command|(?m:^>>>\s*MAIL\s+From:[^\n]*\r?\n<<<\s*5\d\d\b)",
    )
    .expect("a valid pattern")
});

/// An address refused in reply to MAIL FROM is the *sender's*: the server
/// had not yet heard of the recipient, who must not be suppressed for it.
/// Other reasons (size, rate) stay what the reply says.
pub fn after_mail_from(c: Classification, transcript: &str) -> Classification {
    let about_an_address = matches!(c.reason, "user_unknown" | "host_unknown");
    if about_an_address && AFTER_MAIL_FROM.is_match(transcript) {
        Classification::soft("policy_blocked")
    } else {
        c
    }
}

/// A DSN's Diagnostic-Code of type X-Unix is a local delivery program's
/// complaint (procmail, a pipe's exit code): the MTA had already accepted
/// the address, so a "no such user" there is the program's own lookup, a
/// mailer error rather than a bad recipient. A full disk stays full.
pub fn local_program(c: Classification, diagnostic_field: &str) -> Classification {
    let local = diagnostic_field
        .trim_start()
        .get(..7)
        .is_some_and(|t| t.eq_ignore_ascii_case("x-unix;"));
    if local && matches!(c.reason, "user_unknown" | "host_unknown") {
        Classification::soft("other")
    } else {
        c
    }
}

/// What the notice says about the failure's context changes what its
/// reply means: the command it answered (DATA, MAIL FROM) and who wrote
/// it (a local delivery program, `diagnostic_field` of type X-Unix; empty
/// where the notice has no Diagnostic-Code field). See [`after_data`],
/// [`after_mail_from`] and [`local_program`]; every reader of bounces
/// applies these, in this order.
pub fn in_context(
    c: Classification,
    status: &str,
    transcript: &str,
    diagnostic_field: &str,
) -> Classification {
    let c = after_data(c, status, transcript);
    let c = after_mail_from(c, transcript);
    local_program(c, diagnostic_field)
}

/// A final failure with a temporary code means the sending MTA gave up
/// retrying: the message expired, whatever the last attempt said about the
/// network. A rate limit the remote named stays a rate limit.
pub fn gave_up(c: Classification, status: &str, action: &str) -> Classification {
    let temporary = status.starts_with('4');
    let vague = matches!(c.reason, "network_error" | "other");
    if action == "expired" || (action == "failed" && temporary && vague) {
        Classification::soft("expired")
    } else {
        c
    }
}

/// Whether `status` (empty: none) leaves the reason to the text: a general
/// code (see [`AMBIGUOUS_STATUS`]), or a network and routing code (x.4.x),
/// which covers both "host unknown" and "gave up after days".
pub fn is_ambiguous(status: &str) -> bool {
    status.is_empty()
        || status.ends_with(".0.0")
        || status.starts_with("5.4.")
        || status.starts_with("4.4.")
        || AMBIGUOUS_STATUS.contains(&status)
}

/// Classifies a failure from its enhanced status (e.g. "5.1.1") and text:
/// a specific status decides; for a general one (see [`AMBIGUOUS_STATUS`])
/// the text decides first and the status only when no text rule matches.
pub fn classify(status: Option<&str>, text: &str) -> Classification {
    let status = status.unwrap_or("");
    // A blocklist named by its domain decides whatever the code: the refusal
    // is about the sending server's reputation, not the recipient (some
    // servers answer it with 5.1.x codes).
    if BLOCKLIST.is_match(text) {
        return Classification::soft("policy_blocked");
    }
    let found = if is_ambiguous(status) {
        text_rule(text).or_else(|| status_rule(status))
    } else {
        status_rule(status).or_else(|| text_rule(text))
    };
    found.unwrap_or(Classification {
        class: if status.starts_with('4') || status.starts_with('5') {
            BounceClass::Soft
        } else {
            BounceClass::Unknown
        },
        reason: "other",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_decide_when_specific() {
        assert_eq!(classify(Some("5.1.1"), "whatever").class, BounceClass::Hard);
        assert_eq!(classify(Some("5.2.2"), "").reason, "mailbox_full");
        assert_eq!(classify(Some("5.7.1"), "").class, BounceClass::Soft);
        assert_eq!(classify(Some("5.1.10"), "").reason, "user_unknown");
    }

    #[test]
    fn user_unknown_in_reply_to_data_is_the_content() {
        let unknown = classify(Some("5.1.1"), "550 Unknown user");
        for transcript in [
            "550 Unknown user kijitora@example.net (in reply to end of DATA\n    command)",
            "SMTP error from remote mail server after end of data: 550 unknown user",
            "... while talking to mx.example.jp.:\n>>> DATA\n<<< 550 Unknown user k@example.jp\n554 5.0.0 Service unavailable",
            "-------server message\n550 unknown user <k@example.com>\n\n-------SMTP command\nDATA\n",
        ] {
            let c = after_data(unknown, "5.0.0", transcript);
            assert_eq!(
                (c.class, c.reason),
                (BounceClass::Soft, "content_rejected"),
                "{transcript}"
            );
        }
        // At RCPT TO it is the address.
        let c = after_data(
            unknown,
            "5.0.0",
            "550 Unknown user (in reply to RCPT TO command)",
        );
        assert_eq!(c.reason, "user_unknown");
        // A server that said 5.1.1 meant the address, whichever command it answered.
        let c = after_data(
            unknown,
            "5.1.1",
            ">>> DATA\n<<< 550 5.1.1 <u@example.org>... User unknown",
        );
        assert_eq!((c.class, c.reason), (BounceClass::Hard, "user_unknown"));
        // Sendmail's reply to DATA after refused recipients is about them.
        let c = after_data(
            unknown,
            "5.0.0",
            ">>> DATA\n<<< 554 5.5.1 Error: no valid recipients",
        );
        assert_eq!(c.reason, "user_unknown");
    }

    #[test]
    fn an_address_refused_in_reply_to_mail_from_is_the_senders() {
        for transcript in [
            "SMTP error from remote mail server after MAIL FROM:<s@example.com> SIZE=1022:\n553 5.1.0 example.com does not exist",
            "550 5.1.1 unknown sender (in reply to MAIL FROM command)",
            ">>> MAIL From:<s@example.jp> SIZE=100\n<<< 553 Domain of sender address does not exist",
        ] {
            let c = classify(Some("5.1.0"), transcript);
            let c = after_mail_from(c, transcript);
            assert_eq!((c.class, c.reason), (BounceClass::Soft, "policy_blocked"), "{transcript}");
        }
        // A Sendmail transcript whose MAIL FROM was accepted: the RCPT refusal stands.
        let t = ">>> MAIL From:<s@example.jp>\n<<< 250 OK\n>>> RCPT To:<u@example.org>\n<<< 550 User unknown";
        assert_eq!(after_mail_from(classify(None, t), t).reason, "user_unknown");
        // A size refusal at MAIL FROM stays one.
        let t =
            "SMTP error from remote mail server after MAIL FROM: 552 message size exceeds limit";
        assert_eq!(
            after_mail_from(classify(None, t), t).reason,
            "message_too_large"
        );
    }

    #[test]
    fn a_local_programs_no_such_user_is_a_mailer_error() {
        let field = "x-unix; procmail: Couldn't create \"/var/spool/mail/u\" id: No such user";
        let c = local_program(classify(Some("5.1.1"), field), field);
        assert_eq!((c.class, c.reason), (BounceClass::Soft, "other"));
        let field = "X-Unix; /home/u/Maildir/tmp/1.x: Disk quota exceeded";
        assert_eq!(
            local_program(classify(None, field), field).reason,
            "mailbox_full"
        );
        let field = "smtp; 550 5.1.1 User unknown";
        assert_eq!(
            local_program(classify(Some("5.1.1"), field), field).reason,
            "user_unknown"
        );
    }

    #[test]
    fn provider_texts_without_a_specific_code() {
        for (text, class, reason) in [
            ("Mail size limit exceeded. For explanation visit", BounceClass::Soft, "message_too_large"),
            ("500 Line limit exceeded", BounceClass::Soft, "message_too_large"),
            ("an MX or SRV record indicated no SMTP service", BounceClass::Hard, "host_unknown"),
            ("Name service error for domain example.com: Host not\n    found, try again", BounceClass::Soft, "network_error"),
            ("Name service error for name=example.org type=MX: Malformed or unexpected name server reply", BounceClass::Soft, "network_error"),
            ("Host or domain name not found. Name service error for name=x.example", BounceClass::Hard, "host_unknown"),
            ("You are not a member of this mailing list", BounceClass::Soft, "policy_blocked"),
        ] {
            let c = classify(None, text);
            assert_eq!((c.class, c.reason), (class, reason), "{text}");
        }
    }

    #[test]
    fn every_text_rule_compiles() {
        assert_eq!(COMPILED_TEXT_RULES.len(), TEXT_RULES.len());
    }

    #[test]
    fn the_text_decides_for_generic_codes() {
        let c = classify(
            Some("5.7.1"),
            "554 5.7.1 Your message was rejected due to example.org's DMARC policy",
        );
        assert_eq!(c.reason, "auth_failure");
        let c = classify(Some("5.0.0"), "550 sorry, no such user here");
        assert_eq!((c.class, c.reason), (BounceClass::Hard, "user_unknown"));
        let c = classify(None, "mailbox is full");
        assert_eq!(c.reason, "mailbox_full");
    }

    #[test]
    fn a_format_violation_is_content_even_when_the_reply_mentions_spam() {
        let gmail = "550-5.7.1 This message is not RFC 5322 compliant. There are multiple Subject \
                     550-5.7.1 headers. To reduce the amount of spam sent to Gmail, this message has \
                     550-5.7.1 been blocked.";
        assert_eq!(classify(Some("5.7.1"), gmail).reason, "content_rejected");
        let from = "550-5.7.1 Messages with multiple addresses in From: are not accepted";
        assert_eq!(classify(Some("5.7.1"), from).reason, "content_rejected");
        // Spam alone stays spam.
        assert_eq!(
            classify(Some("5.7.1"), "550 5.7.1 message looks like spam").reason,
            "spam_blocked"
        );
    }

    #[test]
    fn frozen_mailboxes_and_unauthenticated_domains() {
        let frozen = "550 Mailbox is frozen. See http://mail.i.ua/err/3/";
        assert_eq!(classify(Some("5.0.0"), frozen).reason, "mailbox_disabled");
        let dmarc =
            "550-5.7.1 Unauthenticated email from example.com is not accepted due to domain's";
        assert_eq!(classify(Some("5.7.1"), dmarc).reason, "auth_failure");
        // An unauthenticated *sender* (no SMTP AUTH) is a policy refusal.
        let relay = "550 Unauthenticated senders not allowed";
        assert_eq!(classify(Some("5.0.0"), relay).reason, "policy_blocked");
    }

    #[test]
    fn disabled_accounts_format_errors_and_provider_codes() {
        let c = classify(Some("5.7.13"), "525 5.7.13 Disabled recipient address");
        assert_eq!((c.class, c.reason), (BounceClass::Soft, "mailbox_disabled"));
        assert_eq!(
            classify(None, "550 Disabled user").reason,
            "mailbox_disabled"
        );
        // The field's name must not make a format error an authentication one.
        let dup = "554 Transaction failed: Duplicate header 'DKIM-Signature'.";
        assert_eq!(classify(Some("5.0.0"), dup).reason, "content_rejected");
        let many = "552 5.6.0 Headers too large (3 max)";
        assert_eq!(classify(Some("5.6.0"), many).reason, "content_rejected");
        assert_eq!(
            classify(Some("5.3.4"), "552 5.3.4 Message too large").reason,
            "message_too_large"
        );
        let orange = "550 5.2.0 Mail rejete. Mail rejected. OFR_506 [506]";
        assert_eq!(classify(Some("5.2.0"), orange).reason, "spam_blocked");
        let orange = "421 4.2.0 Service refuse. OFR005_505 [505]";
        assert_ne!(classify(Some("4.2.0"), orange).reason, "spam_blocked");
    }

    #[test]
    fn a_refused_sender_is_not_the_recipients_fault() {
        let c = classify(None, "550 Unroutable sender address");
        assert_eq!((c.class, c.reason), (BounceClass::Soft, "policy_blocked"));
        let c = classify(
            Some("5.1.0"),
            "553 5.1.0 Sender address rejected: Domain not found",
        );
        assert_eq!(c.class, BounceClass::Soft);
        // A rate limit named by the remote is kept when the sender gave up.
        let c = classify(Some("4.3.2"), "452 4.3.2 Connection rate limit exceeded.");
        assert_eq!(gave_up(c, "4.3.2", "failed").reason, "rate_limited");
        let c = classify(Some("4.4.1"), "connection timed out");
        assert_eq!(gave_up(c, "4.4.1", "failed").reason, "expired");
    }

    #[test]
    fn a_blocklist_named_by_its_domain_decides_whatever_the_code() {
        let c = classify(
            Some("5.1.3"),
            "553 http://www.spamhaus.org/query/bl?ip=192.0.2.222",
        );
        assert_eq!((c.class, c.reason), (BounceClass::Soft, "policy_blocked"));
        // The loose word in a notice's prose does not.
        let prose = "The account or domain may not exist, they may be blacklisted";
        assert_eq!(classify(Some("5.1.1"), prose).reason, "user_unknown");
    }
}
