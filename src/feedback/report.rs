//! Reading feedback messages: RFC 3464 delivery status notifications, RFC 5965
//! ARF complaint reports, and the prose bounces many MTAs still send.
//!
//! mail-parser splits the MIME structure; the `message/delivery-status` and
//! `message/feedback-report` bodies are header-like fields that we read here
//! (mail-auth's ARF parser wants the report part alone and drops the fields we
//! need for DSNs, so one field reader serves both).

use std::sync::LazyLock;

use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::{MessageParser, MimeHeaders, PartType};
use regex::Regex;
use serde::Serialize;

use super::classify::{classify, BounceClass};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportKind {
    /// RFC 3464 delivery status notification.
    Dsn,
    /// A bounce in prose, without a machine-readable report.
    Bounce,
    /// RFC 5965 feedback report.
    Arf,
    Abuse,
    /// A vacation or out-of-office reply, or a challenge-response system's
    /// request to confirm the sender (RFC 3834): never a bounce.
    Autoreply,
    Unknown,
}

/// What a report says about one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecipientReport {
    pub recipient: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status: String,
    pub class: BounceClass,
    pub reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnostic: Option<String>,
    /// What decided the class and reason (`feedback parse --explain`).
    #[serde(skip)]
    pub rule: &'static str,
}

/// What the feedback processor would record for a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedbackReport {
    pub kind: ReportKind,
    /// The first recipient's fields, flattened at the top level.
    pub recipient: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status: String,
    pub class: BounceClass,
    pub reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnostic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reporting_mta: Option<String>,
    pub recipients: Vec<RecipientReport>,
    /// Headers of the returned original message, where the report carries one
    /// (for VERP and tracking-header attribution).
    #[serde(skip)]
    pub original_headers: Option<String>,
}

static STATUS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b").expect("static regex"));
/// An enhanced code right after a reply code ("550 5.7.1", "550-'5.7.1"):
/// the remote server's own, where the reporting MTA wraps the reply in a
/// code of its own ("5.1.0 - Unknown address error 550-'5.7.1 ...'").
static REPLY_STATUS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b[245]\d\d[\s\-]+'?([245]\.\d{1,3}\.\d{1,3})\b").expect("static regex")
});
static REPLY_CODE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)(?:^|[\s:(\[])([45][0-5][0-9])[\s\-]").expect("static regex")
});
/// Prose of a delay warning ("THIS IS A WARNING MESSAGE ONLY", "will be retried").
static DELAY_WARNING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)warning message only|will be retried|will keep trying|has been delayed|not yet been delivered|still trying")
        .expect("a valid pattern")
});
/// The quoted envelope of a transaction: `RCPT TO: <a@b>` / `MAIL FROM: a@b`.
static RCPT_TO: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)rcpt\s+to:\s*<?[^\s<>]+@[^\s<>]+").expect("a valid pattern"));
static MAIL_FROM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)mail\s+from:\s*<?[^\s<>]+@[^\s<>]+").expect("a valid pattern")
});

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"<?([A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)>?")
        .expect("static regex")
});

/// Parses `raw` as a feedback message; never fails (unknown input is `Unknown`).
pub fn parse(raw: &[u8]) -> FeedbackReport {
    let Some(message) = MessageParser::default().parse(raw) else {
        return unknown();
    };
    let mut delivery_status = None;
    let mut feedback = None;
    let mut original_headers = None;
    let mut texts = Vec::new();
    for part in &message.parts {
        let ctype = part
            .content_type()
            .map(|c| {
                format!(
                    "{}/{}",
                    c.ctype().to_ascii_lowercase(),
                    c.subtype().unwrap_or("").to_ascii_lowercase()
                )
            })
            .unwrap_or_default();
        let body = raw
            .get(part.offset_body as usize..part.offset_end as usize)
            .map(undeclared_text)
            .unwrap_or_default();
        match ctype.as_str() {
            "message/delivery-status" | "message/global-delivery-status" => {
                delivery_status.get_or_insert(body);
            }
            "message/feedback-report" => {
                feedback.get_or_insert(body);
            }
            "message/rfc822"
            | "text/rfc822-headers"
            | "message/rfc822-headers"
            | "message/global" => {
                original_headers.get_or_insert(body);
            }
            _ => {
                if let PartType::Text(t) = &part.body {
                    texts.push(t.to_string());
                }
            }
        }
    }
    if texts.is_empty() && delivery_status.is_none() && feedback.is_none() {
        // A MIME structure mail-parser could not follow (a boundary on an
        // unfolded line, say) leaves no text part: read the raw body.
        if let Some(root) = message.parts.first() {
            let body = raw.get(root.offset_body as usize..).unwrap_or_default();
            texts.push(undeclared_text(body));
        }
    }
    if let Some(fb) = feedback {
        return arf(&fb, original_headers);
    }
    if let Some(ds) = delivery_status {
        let mut report = dsn(&ds, &texts);
        report.original_headers = original_headers.clone();
        // A challenge-response system's request in DSN form (Boxbe's "Sender
        // not pre-approved"), or a server that holds the message until the
        // sender confirms: nobody's address failed.
        let challenge = |r: &RecipientReport| {
            super::autoreply::is_challenge(r.diagnostic.as_deref().unwrap_or(""))
        };
        if !report.recipients.is_empty() && report.recipients.iter().all(challenge) {
            return autoreply();
        }
        if !report.recipients.is_empty() {
            return report;
        }
    }
    let subject = message.subject().unwrap_or("").to_string();
    let from = from_address(&message);
    // Apple Mail's "unsubscribe" button mails the List-Unsubscribe mailto
    // with this header: an opt-out request, not a complaint.
    if message
        .header_raw("X-Apple-Unsubscribe")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    {
        let mut r = unknown();
        r.kind = ReportKind::Arf;
        r.feedback_type = Some("opt-out".into());
        let recipient = from.to_ascii_lowercase();
        flatten(
            &mut r,
            vec![RecipientReport::complaint(recipient, "unsubscribe")],
        );
        return r;
    }
    let failed_header = message
        .header_raw("X-Failed-Recipients")
        .map(|s| s.trim().to_string());
    let own_text = report_text(&texts.join("\n"));
    let names_failure = says_delivery_failed(&own_text) || original_headers.is_some();
    if failed_header.is_none()
        && super::autoreply::is_autoreply(&message, &subject, &from, &own_text, names_failure)
    {
        return autoreply();
    }
    // A notice goes to the original's reverse-path (RFC 5321 §4.5.5, RFC
    // 3464 §2): its own recipients sent the message and are not the address
    // that failed, nor is the sender the quoted original names.
    let mut senders: Vec<String> = message
        .to()
        .into_iter()
        .flat_map(|a| a.iter())
        .filter_map(|a| a.address.as_deref())
        .map(str::to_ascii_lowercase)
        .collect();
    if let Some(headers) = &original_headers {
        for name in ["return-path", "from", "sender"] {
            if let Some(c) = header_in(headers, name)
                .and_then(|v| EMAIL.captures(&v).map(|c| c[1].to_ascii_lowercase()))
            {
                senders.push(c);
            }
        }
    }
    prose_bounce(
        &subject,
        &from,
        &senders,
        failed_header,
        &texts,
        original_headers,
    )
}

/// The address of the message's first From mailbox ("" without one).
pub(super) fn from_address(message: &mail_parser::Message) -> String {
    message
        .from()
        .and_then(|f| f.first())
        .and_then(|a| a.address.as_deref())
        .unwrap_or("")
        .to_string()
}

/// Text whose charset no header declares: a delivery-status part (its
/// fields are meant to be US-ASCII) or a body read raw. Lotus Domino/Notes
/// write Japanese diagnostics there in ISO-2022-JP, which is 7-bit with
/// escape sequences: decoded when one of its escapes is present, read as
/// UTF-8 otherwise.
fn undeclared_text(bytes: &[u8]) -> String {
    let jis = memchr::memmem::find(bytes, b"\x1b$B").is_some()
        || memchr::memmem::find(bytes, b"\x1b$@").is_some();
    match charset_decoder(b"iso-2022-jp").filter(|_| jis) {
        Some(decode) => decode(bytes),
        None => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// An auto-reply or challenge: never a bounce, nobody's address failed.
fn autoreply() -> FeedbackReport {
    FeedbackReport {
        kind: ReportKind::Autoreply,
        ..unknown()
    }
}

fn unknown() -> FeedbackReport {
    FeedbackReport {
        kind: ReportKind::Unknown,
        recipient: String::new(),
        status: String::new(),
        class: BounceClass::Unknown,
        reason: "other",
        action: None,
        diagnostic: None,
        feedback_type: None,
        reporting_mta: None,
        recipients: Vec::new(),
        original_headers: None,
    }
}

/// Header-like fields (RFC 3464 §2.1, RFC 5965 §3.1), blocks split at blank lines.
fn field_blocks(text: &str) -> Vec<Vec<(String, String)>> {
    let mut blocks = Vec::new();
    let mut block: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !block.is_empty() {
                blocks.push(std::mem::take(&mut block));
            }
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(last) = block.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            block.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    if !block.is_empty() {
        blocks.push(block);
    }
    blocks
}

fn field<'a>(block: &'a [(String, String)], name: &str) -> Option<&'a str> {
    block
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// "rfc822; user@example.test" → "user@example.test".
fn typed_value(v: &str) -> String {
    let v = v.split_once(';').map(|(_, a)| a).unwrap_or(v);
    v.trim().trim_matches(|c| c == '<' || c == '>').to_string()
}

fn dsn(text: &str, prose: &[String]) -> FeedbackReport {
    let blocks = field_blocks(text);
    let reporting_mta = blocks
        .iter()
        .find_map(|b| field(b, "reporting-mta"))
        .map(typed_value);
    let mut recipients = Vec::new();
    let per_recipient: Vec<_> = blocks
        .iter()
        .filter_map(|b| {
            field(b, "final-recipient")
                .or_else(|| field(b, "original-recipient"))
                .map(|rcpt| (b, rcpt))
        })
        .collect();
    let several = per_recipient.len() > 1;
    let whole = prose.join("\n");
    for (block, rcpt) in per_recipient {
        let action = field(block, "action").map(|a| a.to_ascii_lowercase());
        let diagnostic_field = field(block, "diagnostic-code");
        let diagnostic = diagnostic_field.map(typed_value);
        // Without a Diagnostic-Code, the notice's own line for this
        // recipient, when it quotes a reply (OpenSMTPD lists "address: 550
        // 5.1.1 ..." per recipient in its text), gives the remote's status.
        // It is also the text to read when the notice reports several
        // recipients, whose reasons its whole text would mix; for one, the
        // whole notice speaks about it (a provider's own explanation too).
        let own_line = match diagnostic {
            Some(_) => None,
            None => recipient_reply_line(prose, &typed_value(rcpt)),
        };
        let remote = diagnostic
            .as_deref()
            .or(own_line.as_deref())
            .map(remote_reply);
        let reads_reply = diagnostic.is_some() || several;
        let mut status = field(block, "status")
            .and_then(|s| STATUS.find(s))
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        // A generic status with a specific one in the diagnostic: the latter
        // says more. So does the remote server's own permanent policy code
        // (5.7.x) where the reporting MTA mapped its reply to another code,
        // and any specific permanent code of the remote where the reporter
        // mapped the failure to another permanent one (Status 5.1.1 for
        // "552 5.2.2 Over quota"). A temporary status is the reporter's own
        // giving up (4.4.7) and stays.
        if let Some((_, Some(remote))) = remote {
            if status.is_empty()
                || status.ends_with(".0.0")
                || (remote.starts_with("5.7.") && !status.starts_with("5.7."))
                || (remote != status
                    && remote.starts_with("5.")
                    && status.starts_with("5.")
                    && !super::classify::is_ambiguous(remote))
            {
                status = remote.to_string();
            }
        }
        // The remote server's reply is what the text rules read.
        let text = match remote {
            Some((from_reply, _)) if reads_reply => from_reply,
            _ => whole.as_str(),
        };
        // A delayed notice is classified like a failure (it says why), but the
        // processor does not count it: only `failed` is a bounce.
        let c = if status.starts_with('2') {
            super::classify::Classification {
                class: BounceClass::Unknown,
                reason: "other",
                rule: "a delay notice",
            }
        } else {
            let c = classify(
                Some(&status).filter(|s| !s.is_empty()).map(String::as_str),
                text,
            );
            let transcript = format!("{text}\n{whole}");
            let c = super::classify::in_context(
                c,
                &status,
                &transcript,
                diagnostic_field.unwrap_or(""),
            );
            super::classify::gave_up(c, &status, action.as_deref().unwrap_or(""))
        };
        recipients.push(RecipientReport {
            recipient: typed_value(rcpt).to_ascii_lowercase(),
            status,
            class: c.class,
            reason: c.reason,
            action,
            diagnostic,
            rule: c.rule,
        });
    }
    let mut report = unknown();
    report.kind = ReportKind::Dsn;
    report.reporting_mta = reporting_mta;
    flatten(&mut report, recipients);
    report
}

fn arf(text: &str, original_headers: Option<String>) -> FeedbackReport {
    let blocks = field_blocks(text);
    let all: Vec<(String, String)> = blocks.into_iter().flatten().collect();
    let feedback_type = field(&all, "feedback-type").map(|s| s.trim().to_ascii_lowercase());
    let recipient = field(&all, "original-rcpt-to")
        .map(typed_value)
        .or_else(|| field(&all, "removal-recipient").map(typed_value))
        .or_else(|| {
            original_headers
                .as_deref()
                .and_then(|h| header_in(h, "to"))
                .and_then(|to| EMAIL.captures(&to).map(|c| c[1].to_string()))
        })
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mut report = unknown();
    report.kind = ReportKind::Arf;
    report.reporting_mta = field(&all, "reporting-mta").map(typed_value);
    report.feedback_type = feedback_type;
    report.original_headers = original_headers;
    flatten(
        &mut report,
        vec![RecipientReport::complaint(recipient, "complaint")],
    );
    report
}

/// A header's unfolded value in a header block.
fn header_in(headers: &str, name: &str) -> Option<String> {
    field_blocks(headers)
        .into_iter()
        .next()
        .and_then(|b| field(&b, name).map(str::to_string))
}

impl RecipientReport {
    /// A complaint (or opt-out) about one recipient: no status, no action.
    fn complaint(recipient: String, reason: &'static str) -> RecipientReport {
        RecipientReport {
            recipient,
            status: String::new(),
            class: BounceClass::Complaint,
            reason,
            action: None,
            diagnostic: None,
            rule: "the report's feedback type",
        }
    }
}

fn flatten(report: &mut FeedbackReport, recipients: Vec<RecipientReport>) {
    if let Some(first) = recipients.first() {
        report.recipient = first.recipient.clone();
        report.status = first.status.clone();
        report.class = first.class;
        report.reason = first.reason;
        report.action = first.action.clone();
        report.diagnostic = first.diagnostic.clone();
    }
    report.recipients = recipients;
}

/// The remote server's reply within a diagnostic, and its enhanced code:
/// from the reply code on where the reporting MTA wraps it in a code and
/// words of its own ("5.1.0 - Unknown address error 550-'5.7.1 ... Access
/// denied'"), else the whole text and the first enhanced code in it.
fn remote_reply(d: &str) -> (&str, Option<&str>) {
    match REPLY_STATUS.captures(d) {
        Some(c) => (
            &d[c.get(0).map_or(0, |m| m.start())..],
            c.get(1).map(|m| m.as_str()),
        ),
        None => (d, STATUS.find(d).map(|m| m.as_str())),
    }
}

/// The line of the notice's text that names `recipient` and quotes a reply
/// code, if there is one.
fn recipient_reply_line(prose: &[String], recipient: &str) -> Option<String> {
    if recipient.is_empty() {
        return None;
    }
    let recipient = recipient.to_ascii_lowercase();
    prose
        .iter()
        .flat_map(|t| t.lines())
        .find(|l| {
            l.to_ascii_lowercase().contains(&recipient) && REPLY_CODE.is_match(&format!(" {l} "))
        })
        .map(|l| l.trim().to_string())
}

/// Whether a report's own text (before any returned message) says that a
/// delivery failed, in the words delivery failure notices use, whatever
/// their subject and sender (some providers send them from `no-reply@` with
/// a subject like "Mail"). A person forwarding a message to abuse@ does not
/// write these; without this such a notice would be read as an abuse report.
fn says_delivery_failed(report_text: &str) -> bool {
    const PHRASES: [&str; 10] = [
        // A mailing list manager refusing a post from a non-member (fml,
        // Mailman, ezmlm): the list address did not take the message.
        "you are not a member of",
        "could not be delivered",
        "couldn't be delivered",
        "was not delivered to",
        "delivery to the following recipient",
        "delivery has failed",
        "permanent fatal error",
        "mailbox is full",
        "no such user",
        "user unknown",
    ];
    let lower = report_text.to_ascii_lowercase();
    PHRASES.iter().any(|p| lower.contains(p))
}

/// The part of a notice's text before the returned message: only that
/// speaks about the failure.
fn report_text(text: &str) -> String {
    let cut = [
        "------ This is a copy of the message",
        "--- Below this line is a copy of the message",
        "Original message follows",
        "original message follows",
        "------- Original Message",
        "----- Original message -----",
        "Content-Type: message/rfc822",
        "--- The header of the original message",
        // Exchange and Office 365 NDRs; RFC 6522's returned headers part.
        "Original message headers:",
        "Content-Type: text/rfc822-headers",
    ]
    .iter()
    .filter_map(|m| text.find(m))
    .min()
    .unwrap_or(text.len());
    text[..cut].to_string()
}

/// Prose bounces: the recipient from X-Failed-Recipients or the text, the
/// status and reply code from the text, classified by the same rules.
fn prose_bounce(
    subject: &str,
    from: &str,
    senders: &[String],
    failed_header: Option<String>,
    texts: &[String],
    original_headers: Option<String>,
) -> FeedbackReport {
    let text = texts.join("\n");
    let report_text = report_text(&text);
    let report_text = report_text.as_str();
    let looks_like_bounce = {
        let s = subject.to_ascii_lowercase();
        let f = from.to_ascii_lowercase();
        [
            "undeliver",
            "delivery",
            "failure",
            "returned",
            "bounce",
            "not delivered",
            "rejected",
            "fehlgeschlagen",
            "unzustellbar",
            "error sending",
            "trouble delivering",
        ]
        .iter()
        .any(|w| s.contains(w))
            || f.starts_with("mailer-daemon")
            || f.starts_with("postmaster")
            || failed_header.is_some()
            || says_delivery_failed(report_text)
    };
    if !looks_like_bounce {
        // A forwarded message that is not a bounce is an abuse report made by
        // a person (or a mail client), not in ARF.
        let mut r = unknown();
        if let Some(headers) = &original_headers {
            // Microsoft's feedback loop (JMRP) is no ARF but a provider's
            // complaint report all the same: the original message, with the
            // complaining recipient in X-HmXmrOriginalRecipient.
            let jmrp = header_in(headers, "x-hmxmroriginalrecipient");
            let recipient = jmrp
                .clone()
                .or_else(|| header_in(headers, "to"))
                .and_then(|to| EMAIL.captures(&to).map(|c| c[1].to_ascii_lowercase()))
                .unwrap_or_default();
            r.kind = if jmrp.is_some() {
                ReportKind::Arf
            } else {
                ReportKind::Abuse
            };
            r.feedback_type = Some("abuse".into());
            flatten(
                &mut r,
                vec![RecipientReport::complaint(recipient, "complaint")],
            );
        }
        r.original_headers = original_headers;
        return r;
    }
    let recipient = failed_header
        .and_then(|h| EMAIL.captures(&h).map(|c| c[1].to_string()))
        .or_else(|| {
            // The envelope recipient where the notice quotes the transaction;
            // otherwise the first address that is not the notice's sender,
            // the quoted envelope sender or the original's sender.
            let rcpt_to = RCPT_TO
                .captures(report_text)
                .and_then(|c| EMAIL.captures(&c[0]).map(|e| e[1].to_string()));
            let mail_from = MAIL_FROM
                .captures(report_text)
                .and_then(|c| EMAIL.captures(&c[0]).map(|e| e[1].to_ascii_lowercase()));
            rcpt_to.or_else(|| {
                let candidates: Vec<String> = EMAIL
                    .captures_iter(report_text)
                    .map(|c| c[1].to_string())
                    .filter(|a| {
                        let lower = a.to_ascii_lowercase();
                        !a.eq_ignore_ascii_case(from)
                            && mail_from.as_deref() != Some(lower.as_str())
                            && !lower.starts_with("mailer-daemon")
                    })
                    .collect();
                // The sender is named only when nobody else is: a message
                // someone sent to themselves (or that a mailbox forwarded
                // back) fails at the sender's own address.
                candidates
                    .iter()
                    .find(|a| !senders.contains(&a.to_ascii_lowercase()))
                    .or(candidates.first())
                    .cloned()
            })
        })
        .unwrap_or_default()
        .to_ascii_lowercase();
    let status = STATUS
        .find(report_text)
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    let diagnostic = diagnostic_line(report_text);
    // The refusal it quotes asks the sender to get approved (see dsn's
    // reading of the same): a challenge, not a failed address.
    if diagnostic
        .as_deref()
        .is_some_and(super::autoreply::is_challenge)
    {
        return autoreply();
    }
    let status_found = Some(status.as_str()).filter(|s| !s.is_empty());
    // The remote server's own reply, when the notice quotes one, speaks
    // for the failure before the rest of the notice (which may explain,
    // list and quote much else, "Giving up on ..." among it). A specific
    // status it carries decides as ever; a general one is the reply's words.
    let ambiguous = super::classify::is_ambiguous(&status);
    let mut c = diagnostic
        .as_deref()
        .map(|d| classify(status_found.filter(|_| !ambiguous), d))
        .filter(|c| c.reason != "other")
        .unwrap_or_else(|| classify(status_found, &format!("{subject}\n{report_text}")));
    // A bounce that says nothing we recognise is still a failure: soft.
    if c.class == BounceClass::Unknown {
        c.class = BounceClass::Soft;
    }
    // A warning that delivery is late is not a failure (yet).
    let action = if DELAY_WARNING.is_match(report_text) {
        "delayed"
    } else {
        "failed"
    };
    // The reply code stands in for a missing status: "421 ..." is temporary.
    let temporary = if status.is_empty() {
        diagnostic
            .as_deref()
            .and_then(|d| {
                REPLY_CODE
                    .captures(&format!(" {d} "))
                    .map(|c| c[1].starts_with('4'))
            })
            .unwrap_or(false)
    } else {
        status.starts_with('4')
    };
    let c = super::classify::in_context(c, &status, report_text, "");
    let c = super::classify::gave_up(c, if temporary { "4" } else { "5" }, action);
    let mut report = unknown();
    report.kind = ReportKind::Bounce;
    report.original_headers = original_headers;
    flatten(
        &mut report,
        vec![RecipientReport {
            recipient,
            status,
            class: c.class,
            reason: c.reason,
            action: Some(action.into()),
            diagnostic,
            rule: c.rule,
        }],
    );
    report
}

/// The line that carries the remote server's reply, where there is one.
fn diagnostic_line(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| REPLY_CODE.is_match(&format!(" {l} ")) && l.len() > 8)
        .map(|l| l.chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standard_dsn_is_read_per_recipient() {
        let raw = b"From: MAILER-DAEMON@mx.test\r\nTo: b-x@bounces.test\r\nSubject: Undelivered\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsorry\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.test\r\n\r\nFinal-Recipient: rfc822; Jane@Example.test\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\nFinal-Recipient: rfc822; john@example.test\r\nAction: delayed\r\nStatus: 4.4.1\r\n\r\n--b--\r\n";
        let r = parse(raw);
        assert_eq!(r.kind, ReportKind::Dsn);
        assert_eq!(r.recipient, "jane@example.test");
        assert_eq!((r.class, r.reason), (BounceClass::Hard, "user_unknown"));
        assert_eq!(r.reporting_mta.as_deref(), Some("mx.test"));
        assert_eq!(r.recipients.len(), 2);
        // Delayed is classified (for the log) but stays "delayed": the
        // processor does not count it as a bounce.
        assert_eq!(r.recipients[1].action.as_deref(), Some("delayed"));
    }

    /// A multipart with the original message attached: a notice from a
    /// `no-reply@` sender with a plain subject is a bounce when its text
    /// says the delivery failed, and a forward by a person stays an abuse
    /// report.
    fn forward_with_original(from: &str, subject: &str, text: &str) -> Vec<u8> {
        format!(
            "From: {from}\r\nTo: abuse@bounces.test\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n{text}\r\n\
--b\r\nContent-Type: message/rfc822\r\n\r\nFrom: news@shop.test\r\nTo: jane@example.test\r\n\
Subject: Offers\r\n\r\nBuy now\r\n--b--\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn a_failure_notice_with_a_plain_subject_is_a_bounce_not_a_complaint() {
        let notice = forward_with_original(
            "no-reply@mail.provider.test",
            "Mail",
            "Your mail sent on: Thu, 29 Apr 2013\r\n  Could not be delivered to: <jane@example.test>\r\n  As their mailbox is full.",
        );
        let r = parse(&notice);
        assert_ne!(r.kind, ReportKind::Abuse);
        assert_eq!(r.recipient, "jane@example.test");
        assert_eq!((r.class, r.reason), (BounceClass::Soft, "mailbox_full"));

        let forward = forward_with_original(
            "jane@example.test",
            "Fwd: Offers",
            "I never signed up for this. Please stop.",
        );
        let r = parse(&forward);
        assert_eq!(r.kind, ReportKind::Abuse);
        assert_eq!(r.class, BounceClass::Complaint);
        assert_eq!(r.recipient, "jane@example.test");
    }

    #[test]
    fn the_returned_headers_of_an_exchange_ndr_are_not_its_words() {
        // Office 365's NDR quotes the original's headers after "Original
        // message headers:"; their SPF and DKIM results say nothing about
        // the failure.
        let raw = b"From: postmaster@outlook.test\r\nTo: b-x@bounces.test\r\n\
Subject: Undeliverable: Nyaan\r\nX-Failed-Recipients: jane@example.test\r\nContent-Type: text/plain\r\n\r\n\
Delivery has failed to these recipients or groups:\r\n\r\njane@example.test\r\n\
The email address wasn't found at the destination domain.\r\n\r\n\
Diagnostic information for administrators:\r\n\r\njane@example.test\r\n\
Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup'\r\n\r\n\
Original message headers:\r\n\r\nReceived-SPF: None (protection.outlook.test)\r\n\
Authentication-Results: spf=none smtp.mailfrom=news@shop.test; dkim=none (message not signed); dmarc=none\r\n\
From: news@shop.test\r\nSubject: Nyaan\r\n";
        let r = parse(raw);
        assert_eq!(r.recipient, "jane@example.test");
        assert_eq!(
            (r.class, r.reason),
            (BounceClass::Hard, "user_unknown"),
            "{:?}",
            r.recipients.first().map(|x| x.rule)
        );
    }

    #[test]
    fn a_prose_bounce_is_classified_by_the_reply_it_quotes_first() {
        let raw = b"From: MAILER-DAEMON@mx.shop.test\r\nTo: b-x@bounces.test\r\n\
Subject: Returned mail: see transcript for details\r\nContent-Type: text/plain\r\n\r\n\
   ----- The following addresses had permanent fatal errors -----\r\n<jane@example.test>\r\n\
    (reason: 550 Unauthenticated senders not allowed)\r\n\r\n\
   ----- Transcript of session follows -----\r\n... while talking to mx.example.test.:\r\n\
>>> MAIL From:<news@shop.test>\r\n<<< 550 Unauthenticated senders not allowed\r\n\
554 5.0.0 Service unavailable\r\n\r\nThe attachment holds the message content you sent.\r\n";
        let r = parse(raw);
        assert_eq!(r.recipient, "jane@example.test");
        assert_eq!((r.class, r.reason), (BounceClass::Soft, "policy_blocked"));
    }

    #[test]
    fn a_notice_with_a_broken_mime_structure_is_read_from_its_raw_body() {
        // The inner boundary parameter is on a line of its own, unfolded:
        // no text part can be found, so the raw body is read.
        let raw =
            b"From: post_master@carrier.test\r\nTo: news@shop.test\r\nSubject: Re: Offers\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n--outer\r\n\
Content-Type: multipart/alternative;\r\nboundary=\"inner\"\r\n\r\n--inner\r\n\
Content-Type: text/plain\r\n\r\nError: Invalid user address\r\n\
550 - Requested action not taken: no such user here\r\n\
  MAIL FROM: news@shop.test\r\n  RCPT TO: 5550100@carrier.test\r\n--inner--\r\n--outer--\r\n";
        let r = parse(raw);
        assert_eq!(r.kind, ReportKind::Bounce);
        assert_eq!(r.recipient, "5550100@carrier.test");
        assert_eq!((r.class, r.reason), (BounceClass::Hard, "user_unknown"));
    }

    #[test]
    fn the_sender_a_prose_notice_goes_back_to_is_not_the_failed_recipient() {
        // A notice that names the original's sender before the failed
        // address, with no X-Failed-Recipients and no quoted RCPT TO.
        let raw = b"From: Mail Delivery System <MAILER-DAEMON@relay.test>\r\n\
To: news@shop.test\r\nSubject: Returned mail: see transcript\r\n\r\n\
The original message was received at Tue, 1 Dec 2026 10:00:00 +0100\r\n\
from news@shop.test\r\n\r\n---The following addresses had delivery errors---\r\n\r\n\
jo@example.test [User unknown]\r\n";
        let r = parse(raw);
        assert_eq!(r.recipient, "jo@example.test");
        // The same when only the quoted original says who sent it.
        let raw = b"From: MAILER-DAEMON@relay.test\r\nTo: b-x@bounces.test\r\n\
Subject: Undeliverable mail\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\
Mail from sender ann@shop.test could not be\r\n\
delivered to jo@example.test: user unknown.\r\n\r\n\
--b\r\nContent-Type: text/rfc822-headers\r\n\r\n\
From: Ann <ann@shop.test>\r\nTo: jo@example.test\r\nSubject: News\r\n\r\n--b--\r\n";
        assert_eq!(parse(raw).recipient, "jo@example.test");
        // A message someone sent to themselves fails at their own address.
        let raw = b"From: MAILER-DAEMON@mx.test\r\nTo: jo@example.test\r\n\
Subject: failure notice\r\n\r\nI'm afraid I wasn't able to deliver your message to the \
following addresses.\r\n\r\n<jo@example.test>:\r\n552 Error: disk quota exceeded\r\n";
        assert_eq!(parse(raw).recipient, "jo@example.test");
    }

    #[test]
    fn recipients_without_a_diagnostic_take_their_own_line_of_the_notice() {
        // OpenSMTPD: a DSN without Diagnostic-Code, the replies in the text.
        let raw = b"From: MAILER-DAEMON@mx.test\r\nTo: b-x@bounces.test\r\n\
Subject: Delivery status notification: failed\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\
An error has occurred while attempting to deliver a message for\r\nthe following list of recipients:\r\n\r\n\
gone@example.test: 550 5.1.1 <gone@example.test>: Recipient address rejected: User unknown\r\n\
full@example.test: 552 5.2.2 <full@example.test>: Recipient address rejected: Mailbox full\r\n\r\n\
--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.test\r\n\r\n\
Final-Recipient: rfc822; gone@example.test\r\nAction: failed\r\nStatus: 5.0.0\r\n\r\n\
Final-Recipient: rfc822; full@example.test\r\nAction: failed\r\nStatus: 5.0.0\r\n\r\n--b--\r\n";
        let r = parse(raw);
        let got: Vec<_> = r
            .recipients
            .iter()
            .map(|x| (x.recipient.as_str(), x.status.as_str(), x.class, x.reason))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "gone@example.test",
                    "5.1.1",
                    BounceClass::Hard,
                    "user_unknown"
                ),
                (
                    "full@example.test",
                    "5.2.2",
                    BounceClass::Soft,
                    "mailbox_full"
                ),
            ]
        );
    }

    #[test]
    fn a_list_managers_refusal_of_a_non_members_post_is_a_bounce() {
        let raw = b"From: neko-admin@lists.test\r\nTo: b-x@bounces.test\r\n\
Subject: You b-x@bounces.test are not member (neko ML)\r\nX-MLServer: fml\r\n\r\n\
You are not a member of this mailing list <neko@lists.test>.\r\n";
        let r = parse(raw);
        assert_eq!(
            (r.kind, r.recipient.as_str(), r.class, r.reason),
            (
                ReportKind::Bounce,
                "neko@lists.test",
                BounceClass::Soft,
                "policy_blocked"
            )
        );
    }

    #[test]
    fn a_japanese_diagnostic_in_iso_2022_jp_is_decoded_and_read() {
        // Lotus Domino: "User Neko (...) is not found in the Domino Directory",
        // 7-bit ISO-2022-JP in a part whose fields are meant to be ASCII.
        let raw = b"From: Postmaster@mx.test\r\nTo: b-x@bounces.test\r\nSubject: DELIVERY FAILURE:\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns;mx.test\r\n\r\n\
Final-Recipient: rfc822;neko@example.test\r\nAction: failed\r\nStatus: 5.0.0\r\n\
Diagnostic-Code: X-Notes; \x1b$B%f!<%6!<\x1b(BNeko (neko@example.test) \x1b$B$O\x1b(B Domino \x1b$B%G%#%l%/%H%j$K$O8+$D$+$j$^$;$s!#\x1b(B\r\n\
\r\n--b--\r\n";
        let r = parse(raw);
        assert_eq!((r.class, r.reason), (BounceClass::Hard, "user_unknown"));
        assert!(
            r.diagnostic
                .as_deref()
                .is_some_and(|d| d.contains("Domino ディレクトリには見つかりません")),
            "{:?}",
            r.diagnostic
        );
    }

    #[test]
    fn the_remote_servers_specific_code_beats_the_status_the_reporter_mapped() {
        let dsn = |status: &str, diagnostic: &str| {
            format!(
                "From: MAILER-DAEMON@mx.test\r\nTo: b-x@bounces.test\r\nSubject: Undelivered\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.test\r\n\r\n\
Final-Recipient: rfc822; jane@example.test\r\nAction: failed\r\nStatus: {status}\r\n\
Diagnostic-Code: smtp; {diagnostic}\r\n\r\n--b--\r\n"
            )
        };
        let r = parse(dsn("5.1.1", "552 5.2.2 Over quota").as_bytes());
        assert_eq!((r.class, r.reason), (BounceClass::Soft, "mailbox_full"));
        assert_eq!(r.status, "5.2.2");
        // A temporary status the reporter gave up on stays its own.
        let r = parse(dsn("4.4.7", "450 4.7.1 Access denied. IP name lookup failed").as_bytes());
        assert_eq!(r.status, "4.4.7");
        // A reporter that wraps the remote reply in its own code and words
        // (Amazon SES): the reply decides, not the wrapper.
        let r = parse(
            dsn(
                "5.0.0 (permanent failure)",
                "5.1.0 - Unknown address error 550-'5.7.1 <b@bounces.test>... Access denied' (delivery attempts: 0)",
            )
            .as_bytes(),
        );
        assert_eq!(
            (r.status.as_str(), r.class, r.reason),
            ("5.7.1", BounceClass::Soft, "policy_blocked")
        );
        // Microsoft's reputation throttle is a block, not a rate limit.
        let c = crate::feedback::classify::classify(Some("4.7.650"), "451 4.7.650 rate limited");
        assert_eq!(c.reason, "policy_blocked");
    }
}
