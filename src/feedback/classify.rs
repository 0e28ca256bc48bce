//! Bounce classification as data: a table of rules a postmaster can read and
//! extend, matched in order (KumoMTA's bounce classifier is the model).
//! The status code decides when there is a specific one; the text otherwise.

use std::sync::{Arc, LazyLock, RwLock};

use regex::Regex;
use serde::{Deserialize, Serialize};

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
    /// What decided, for `feedback parse --explain`: a rule of the table
    /// (`status 5.1.1`, `text user-unknown`) or a step of the decision
    /// (`context: after DATA`).
    #[serde(skip)]
    pub rule: &'static str,
}

impl Classification {
    /// A soft failure for `reason`, decided by `rule`.
    pub const fn soft(reason: &'static str, rule: &'static str) -> Classification {
        Classification {
            class: BounceClass::Soft,
            reason,
            rule,
        }
    }
}

/// Codes too general to decide alone: the text is read first, and the code
/// decides only when no text rule matches.
const AMBIGUOUS_STATUS: &[&str] = &[
    "5.0.0", "4.0.0", "5.5.0", "5.1.0", "5.2.0", "5.2.1", "5.7.0", "5.7.1", "5.4.0", "4.4.0",
    "5.6.0", "4.7.0", "5.3.0", "4.3.0", "5.5.1", "5.5.2", "4.4.1", "5.4.1", "5.4.4", "4.2.1",
    // Microsoft's "recipient not found", RFC 7505's null MX.
    "5.1.10",
];

/// The public blocklists by their domain (see [`classify`]); not the word
/// "blacklisted", which notices also use loosely ("they may be blacklisted").
static BLOCKLIST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)spamhaus\.org|spamcop\.net|barracudacentral\.org|sorbs\.net")
        .expect("a valid pattern")
});

/// The reasons a rule may give: the closed set that events, metrics and
/// webhooks carry.
pub const REASONS: &[&str] = &[
    "user_unknown",
    "host_unknown",
    "mailbox_full",
    "mailbox_disabled",
    "message_too_large",
    "spam_blocked",
    "policy_blocked",
    "auth_failure",
    "rate_limited",
    "content_rejected",
    "network_error",
    "expired",
    "other",
];

/// The rules shipped with postwarden (conf/bounce-rules.toml).
pub const SHIPPED_RULES: &str = include_str!("../../conf/bounce-rules.toml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    status: Vec<StatusSpec>,
    #[serde(default)]
    text: Vec<TextSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusSpec {
    code: String,
    class: ClassName,
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextSpec {
    name: String,
    class: ClassName,
    reason: String,
    pattern: String,
    /// The words are strong enough to beat a code that condemns the
    /// address (see [`classify`]).
    #[serde(default)]
    beats_status: bool,
    /// The words say how the delivery ended, not why (see
    /// [`text_rule_of`]): a later rule that names the cause decides.
    #[serde(default)]
    yields: bool,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum ClassName {
    Hard,
    Soft,
}

/// A rules file that cannot be used, naming the file and the rule.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("{file}: {message}")]
    Read { file: String, message: String },
    #[error("{file}: rule {rule}: reason {reason:?} is not one of {}", REASONS.join(", "))]
    Reason {
        file: String,
        rule: String,
        reason: String,
    },
    #[error("{file}: rule {rule}: {message}")]
    Pattern {
        file: String,
        rule: String,
        message: String,
    },
}

#[derive(Clone)]
struct StatusRule {
    code: String,
    class: BounceClass,
    reason: &'static str,
    name: &'static str,
}

#[derive(Clone)]
struct TextRule {
    pattern: Regex,
    class: BounceClass,
    reason: &'static str,
    name: &'static str,
    beats_status: bool,
    yields: bool,
}

/// A table of rules: status rules and text rules, each in order.
#[derive(Clone)]
pub struct Rules {
    status: Vec<StatusRule>,
    text: Vec<TextRule>,
}

/// Rule names live as long as the process: a [`Classification`] stays
/// `Copy` and names its rule. The shipped rules are parsed once; a site
/// file at start and at each reload, so what this keeps is a few bytes per
/// site rule per reload.
fn leak(name: String) -> &'static str {
    Box::leak(name.into_boxed_str())
}

impl Rules {
    /// Reads a rules file's text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Rules, RulesError> {
        let spec: RulesFile = toml::from_str(text).map_err(|e| RulesError::Read {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        let reason = |rule: &str, reason: &str| {
            REASONS
                .iter()
                .find(|r| **r == reason)
                .copied()
                .ok_or_else(|| RulesError::Reason {
                    file: file.to_string(),
                    rule: rule.to_string(),
                    reason: reason.to_string(),
                })
        };
        let class = |c: ClassName| match c {
            ClassName::Hard => BounceClass::Hard,
            ClassName::Soft => BounceClass::Soft,
        };
        let mut status = Vec::new();
        for s in spec.status {
            let name = format!("status {}", s.code);
            status.push(StatusRule {
                reason: reason(&name, &s.reason)?,
                class: class(s.class),
                code: s.code,
                name: leak(name),
            });
        }
        let mut text_rules = Vec::new();
        for t in spec.text {
            let pattern = Regex::new(&t.pattern).map_err(|e| RulesError::Pattern {
                file: file.to_string(),
                rule: t.name.clone(),
                message: e.to_string(),
            })?;
            text_rules.push(TextRule {
                pattern,
                class: class(t.class),
                reason: reason(&t.name, &t.reason)?,
                name: leak(format!("text {}", t.name)),
                beats_status: t.beats_status,
                yields: t.yields,
            });
        }
        Ok(Rules {
            status,
            text: text_rules,
        })
    }

    /// Reads a site's rules file.
    pub fn load(path: &std::path::Path) -> Result<Rules, RulesError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| RulesError::Read {
            file: file.clone(),
            message: e.to_string(),
        })?;
        Rules::parse(&text, &file)
    }

    /// These rules, then `after`'s.
    fn then(mut self, after: Rules) -> Rules {
        self.status.extend(after.status);
        self.text.extend(after.text);
        self
    }
}

/// The shipped rules, parsed (and their patterns compiled) once.
static SHIPPED: LazyLock<Rules> = LazyLock::new(|| {
    // The shipped file is part of the binary; a unit test parses it.
    Rules::parse(SHIPPED_RULES, "conf/bounce-rules.toml").unwrap_or(Rules {
        status: Vec::new(),
        text: Vec::new(),
    })
});

fn shipped() -> Rules {
    SHIPPED.clone()
}

static ACTIVE: LazyLock<RwLock<Arc<Rules>>> = LazyLock::new(|| RwLock::new(Arc::new(shipped())));

thread_local! {
    /// Rules used on this thread instead of the active ones (see
    /// [`without_rules`]).
    static OVERRIDE: std::cell::RefCell<Option<Arc<Rules>>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` on this thread with the shipped rules less those named in
/// `left_out` (`status 5.1.1`, `text mailbox-full`): how the corpus test
/// measures each source with the rules that only that source supports left
/// out. Other threads keep the active rules.
pub fn without_rules<T>(left_out: &[&str], f: impl FnOnce() -> T) -> T {
    let mut rules = shipped();
    rules.status.retain(|r| !left_out.contains(&r.name));
    rules.text.retain(|r| !left_out.contains(&r.name));
    let before = OVERRIDE.with(|o| o.replace(Some(Arc::new(rules))));
    let out = f();
    OVERRIDE.with(|o| *o.borrow_mut() = before);
    out
}

fn active() -> Arc<Rules> {
    if let Some(rules) = OVERRIDE.with(|o| o.borrow().clone()) {
        return rules;
    }
    match ACTIVE.read() {
        Ok(r) => r.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

/// Puts a site's rules (`[feedback] bounce_rules`) before the shipped ones,
/// or goes back to the shipped ones alone; at start and on reload. A file
/// that cannot be read changes nothing.
pub fn install_site_rules(path: Option<&std::path::Path>) -> Result<(), RulesError> {
    let rules = match path {
        Some(p) => Rules::load(p)?.then(shipped()),
        None => shipped(),
    };
    let rules = Arc::new(rules);
    match ACTIVE.write() {
        Ok(mut a) => *a = rules,
        Err(poisoned) => *poisoned.into_inner() = rules,
    }
    Ok(())
}

/// The status rule for `status`: the rule of its exact code, or with
/// `groups` also a rule of its group ("4.7." for 4.7.28).
fn status_rule(status: &str, groups: bool) -> Option<Classification> {
    active().status.iter().find_map(|r| {
        let matches = if r.code.ends_with('.') {
            groups && status.starts_with(&r.code)
        } else {
            status == r.code
        };
        matches.then_some(Classification {
            class: r.class,
            reason: r.reason,
            rule: r.name,
        })
    })
}

/// The first text rule that matches `text`, and whether it may beat a
/// code that condemns the address. A rule that yields (the sender gave up
/// retrying, the notice is a delay warning) gives way to a later one that
/// names the last attempt's cause ("No route to host", "DNS query
/// failed"), as RFC 3464's Diagnostic-Code is that cause; the class stays
/// soft, since every attempt before was answered as temporary.
fn text_rule_of(text: &str) -> Option<(Classification, bool)> {
    let rules = active();
    let mut matching = rules.text.iter().filter(|r| r.pattern.is_match(text));
    let first = matching.next()?;
    if first.yields {
        if let Some(cause) = matching.find(|r| !r.yields) {
            return Some((
                Classification {
                    class: BounceClass::Soft,
                    reason: cause.reason,
                    rule: cause.name,
                },
                false,
            ));
        }
    }
    Some((
        Classification {
            class: first.class,
            reason: first.reason,
            rule: first.name,
        },
        first.beats_status,
    ))
}

fn text_rule(text: &str) -> Option<Classification> {
    text_rule_of(text).map(|(c, _)| c)
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
    let said_address = !is_ambiguous(status)
        && status_rule(status, false).is_some_and(|s| s.reason == "user_unknown");
    if c.reason == "user_unknown" && !said_address && AFTER_DATA.is_match(transcript) {
        Classification::soft("content_rejected", "context: user unknown after DATA")
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
        Classification::soft("policy_blocked", "context: refused after MAIL FROM")
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
        Classification::soft("other", "context: a local delivery program")
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
        Classification::soft("expired", "context: gave up retrying")
    } else {
        c
    }
}

/// `text` with every run of whitespace as one space: replies are folded
/// across lines and indented ("does not\n    exist"), and the rules (and
/// the auto-reply phrases) read the words.
pub fn fold_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
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
        return Classification::soft("policy_blocked", "a public blocklist named");
    }
    let text = fold_whitespace(text);
    // A specific code's own rule decides; a code that only its group's rule
    // knows (4.7.28 by "4.7.") is less specific than the reply's words.
    // A code that condemns the address (5.1.1) with words that say the
    // mailbox is there but full or closed, or that the sending server was
    // refused ("user over quota (#5.1.1)", "Recipient mailbox full" under
    // 5.1.1): the words win where the rule says they may (`beats_status`),
    // since suppressing a live subscriber costs more than one more try.
    let found = if is_ambiguous(status) {
        text_rule(&text).or_else(|| status_rule(status, true))
    } else {
        match status_rule(status, false) {
            Some(s) if s.class == BounceClass::Hard => match text_rule_of(&text) {
                Some((t, true)) if t.class == BounceClass::Soft => Some(t),
                _ => Some(s),
            },
            Some(s) => Some(s),
            None => text_rule(&text).or_else(|| status_rule(status, true)),
        }
    };
    found.unwrap_or(Classification {
        class: if status.starts_with('4') || status.starts_with('5') {
            BounceClass::Soft
        } else {
            BounceClass::Unknown
        },
        reason: "other",
        rule: "no rule matched",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_rules_parse_and_name_what_decided() {
        let rules = Rules::parse(SHIPPED_RULES, "shipped").expect("the shipped rules");
        assert!(rules.status.len() >= 25 && rules.text.len() >= 19);
        let c = classify(Some("5.1.1"), "whatever");
        assert_eq!((c.reason, c.rule), ("user_unknown", "status 5.1.1"));
        let c = classify(Some("5.0.0"), "552 mailbox full");
        assert_eq!((c.reason, c.rule), ("mailbox_full", "text mailbox-full"));
        let c = classify(None, "nothing we know");
        assert_eq!((c.reason, c.rule), ("other", "no rule matched"));
    }

    #[test]
    fn a_bad_rules_file_names_the_file_and_the_rule() {
        let bad_reason =
            "[[text]]\nname = \"x\"\nclass = \"soft\"\nreason = \"full\"\npattern = \"a\"\n";
        let e = Rules::parse(bad_reason, "site.toml")
            .err()
            .expect("refused");
        assert!(
            e.to_string()
                .starts_with("site.toml: rule x: reason \"full\""),
            "{e}"
        );
        let bad_pattern =
            "[[text]]\nname = \"y\"\nclass = \"soft\"\nreason = \"other\"\npattern = \"(\"\n";
        let e = Rules::parse(bad_pattern, "site.toml")
            .err()
            .expect("refused");
        assert!(e.to_string().starts_with("site.toml: rule y: "), "{e}");
        let e = Rules::parse("[[status]]\ncode = 1\n", "site.toml")
            .err()
            .expect("refused");
        assert!(e.to_string().starts_with("site.toml: "), "{e}");
        let e = Rules::parse("[[texts]]\n", "site.toml")
            .err()
            .expect("refused");
        assert!(e.to_string().contains("texts"), "{e}");
    }

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

    #[test]
    fn words_of_a_live_mailbox_beat_a_code_that_condemns_the_address() {
        let c = classify(Some("5.1.1"), "552 user over quota. (#5.1.1)");
        assert_eq!((c.class, c.reason), (BounceClass::Soft, "mailbox_full"));
        let c = classify(
            Some("5.1.1"),
            "552 5.1.1 Boite du destinataire pleine. Recipient mailbox full. OFR_417",
        );
        assert_eq!(c.reason, "mailbox_full");
        // A weak word ("rejected") does not.
        let c = classify(
            Some("5.1.1"),
            "550 5.1.1 <kim@example.org>: Recipient rejected",
        );
        assert_eq!((c.class, c.reason), (BounceClass::Hard, "user_unknown"));
    }

    #[test]
    fn folded_replies_are_read_as_words_and_group_codes_come_after_the_text() {
        let folded = "553 5.3.0 <kim@example.net>... Address does not\n     exist";
        assert_eq!(classify(Some("5.3.0"), folded).reason, "user_unknown");
        // 4.7.28 is known by its group only: Google's words decide.
        let google = "421 4.7.28 Gmail has detected an unusual rate of mail originating from your IP address. To protect our users from spam, mail has been temporarily rate limited.";
        assert_eq!(classify(Some("4.7.28"), google).reason, "policy_blocked");
        // Without words the group's rule is kept.
        assert_eq!(
            classify(Some("4.7.28"), "421 4.7.28").reason,
            "rate_limited"
        );
        // A spam verdict is not the mention of SPF beside it.
        let spam = "550 5.7.1 Message rejected as spam by Content Filtering (SPF pass)";
        assert_eq!(classify(Some("5.7.1"), spam).reason, "spam_blocked");
        let auth = "550 5.7.26 This message fails to pass SPF checks. To best protect our users from spam, the message has been blocked.";
        assert_eq!(classify(Some("5.7.26"), auth).reason, "auth_failure");
    }

    #[test]
    fn giving_up_yields_to_the_last_attempts_cause_and_stays_soft() {
        // The cause named after "gave up": the cause decides, softly.
        let c = classify(
            None,
            "Message could not be delivered for 5 days. Giving up. connect to mx.example.com[192.0.2.2]:25: No route to host",
        );
        assert_eq!(
            (c.class, c.reason, c.rule),
            (BounceClass::Soft, "network_error", "text network")
        );
        let c = classify(
            None,
            "I'm not going to try again; this message has been in the queue too long. 550 5.1.1 no such user",
        );
        assert_eq!((c.class, c.reason), (BounceClass::Soft, "user_unknown"));
        // Nothing but the giving up: expired, also when the words are the
        // retry's own time-out.
        for text in [
            "I'm not going to try again; this message has been in the queue too long.",
            "Reason: delivery retry timeout exceeded",
        ] {
            let c = classify(None, text);
            assert_eq!(
                (c.reason, c.rule),
                ("expired", "text gave-up-retrying"),
                "{text}"
            );
        }
    }

    #[test]
    fn not_authorised_to_send_reads_as_a_policy_refusal_in_each_language() {
        for text in [
            "you may not have permission to post messages to the group",
            "que vous ne soyez pas autorisé à lui envoyer des messages",
            "Sie nicht die erforderlichen Berechtigungen haben, um der Gruppe Nachrichten zu posten",
            "usted no está autorizado a enviar mensajes a este grupo",
            "você não está autorizado a enviar mensagens para este grupo",
        ] {
            let c = classify(None, text);
            assert_eq!(
                (c.class, c.reason, c.rule),
                (BounceClass::Soft, "policy_blocked", "text policy-refusal"),
                "{text}"
            );
        }
    }

    #[test]
    fn null_mx_and_routing_words_name_the_domain_and_field_types_are_not_words() {
        // 5.1.10: RFC 7505's null MX or Microsoft's recipient not found;
        // the words say which, hard either way.
        let c = classify(Some("5.1.10"), "556 5.1.10 Recipient address has null MX");
        assert_eq!((c.class, c.reason), (BounceClass::Hard, "host_unknown"));
        let c = classify(
            Some("5.1.10"),
            "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
        );
        assert_eq!((c.class, c.reason), (BounceClass::Hard, "user_unknown"));
        let c = classify(Some("5.1.10"), "");
        assert_eq!((c.class, c.reason), (BounceClass::Hard, "user_unknown"));
        // Exim: a domain no router could route.
        let c = classify(None, "nobody@nowhere.example\n    Unrouteable address");
        assert_eq!((c.class, c.reason), (BounceClass::Hard, "host_unknown"));
        // RFC 3464's address type is not RFC 822 named as a standard.
        let c = classify(
            Some("4.4.1"),
            "Final-Recipient: rfc822; a@example.com Action: delayed Status: 4.4.1 connect to mx.example.com[192.0.2.2]:25: No route to host",
        );
        assert_eq!(c.reason, "network_error", "{c:?}");
        let c = classify(Some("5.6.0"), "554 message is not RFC 5322 compliant");
        assert_eq!(c.reason, "content_rejected");
        // A delay notice with nothing but the delay.
        let c = classify(
            Some("4.4.0"),
            "This is only a notification about a delay in the delivery of your message. The server will continue trying for up to 21 hours.",
        );
        assert_eq!((c.class, c.reason), (BounceClass::Soft, "expired"));
    }
}
