//! Failure notices (RFC 3464 delivery status notifications) to a tenant's
//! `bounce_notify` address, for recipients that failed for good.
//!
//! Written by hand: the report is a fixed three-part `multipart/report` whose
//! `message/delivery-status` fields no mail-building crate knows, and the
//! parsers we use (mail-parser, mail-auth) only read such reports.

use crate::store::queue::{QueueEntry, Recipient};
use smtp_proto::{RCPT_NOTIFY_FAILURE, RCPT_NOTIFY_NEVER};

/// One recipient the notice reports.
pub struct Failure<'a> {
    pub recipient: &'a Recipient,
    /// "host[ip]:port" of the server that answered, or "none".
    pub relay: &'a str,
}

/// Whether the sender asked (or left it to us) to hear of this recipient's
/// failure: RFC 3461 NOTIFY absent or with FAILURE, and not NEVER.
pub fn wanted(recipient: &Recipient) -> bool {
    recipient.notify & RCPT_NOTIFY_NEVER == 0
        && (recipient.notify == 0 || recipient.notify & RCPT_NOTIFY_FAILURE != 0)
}

/// The queue entry and message of a failure notice about `entry` to `to`.
pub fn failure_notice(
    hostname: &str,
    entry: &QueueEntry,
    failures: &[Failure<'_>],
    original: &[u8],
    to: &str,
    now: u64,
) -> (QueueEntry, Vec<u8>) {
    let id = crate::values::queue_id::new_queue_id();
    let date = rfc2822(now);
    let arrival = rfc2822(entry.received_at);
    let boundary = format!("{id}/{hostname}");
    let mut text = format!(
        "This is the mail system at host {hostname}.\r\n\r\n\
         The message {} (queue id {}) could not be delivered to the\r\n\
         recipients below; they will not be tried again.\r\n\r\n",
        entry
            .message_id
            .as_deref()
            .unwrap_or("without a Message-ID"),
        entry.id
    );
    let mut status = format!(
        "Reporting-MTA: dns; {hostname}\r\nX-Postwarden-Queue-ID: {}\r\n",
        entry.id
    );
    if let Some(env_id) = &entry.env_id {
        status.push_str(&format!("Original-Envelope-Id: {}\r\n", one_line(env_id)));
    }
    status.push_str(&format!("Arrival-Date: {arrival}\r\n"));
    for f in failures {
        let r = f.recipient;
        let reply = one_line(r.last_reply.as_deref().unwrap_or("failed"));
        text.push_str(&format!("<{}>: {reply}\r\n", r.address));
        status.push_str(&format!("\r\nFinal-Recipient: rfc822; {}\r\n", r.address));
        if let Some(orcpt) = &r.orcpt {
            let orcpt = one_line(orcpt);
            if orcpt.contains(';') {
                status.push_str(&format!("Original-Recipient: {orcpt}\r\n"));
            } else {
                status.push_str(&format!("Original-Recipient: rfc822; {orcpt}\r\n"));
            }
        }
        status.push_str(&format!(
            "Action: failed\r\nStatus: {}\r\n",
            r.dsn.as_deref().unwrap_or("5.0.0")
        ));
        let host = f.relay.split('[').next().unwrap_or("");
        if !host.is_empty() && host != "none" {
            status.push_str(&format!(
                "Remote-MTA: dns; {host}\r\nDiagnostic-Code: smtp; {reply}\r\n"
            ));
        } else {
            status.push_str(&format!("Diagnostic-Code: X-Postwarden; {reply}\r\n"));
        }
        status.push_str(&format!("Last-Attempt-Date: {date}\r\n"));
    }
    let header_end = original
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(original.len());
    let (returned_type, returned) = if entry.ret_full {
        ("message/rfc822", original)
    } else {
        ("text/rfc822-headers", &original[..header_end])
    };
    let mut message = format!(
        "From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n\
         To: <{to}>\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Date: {date}\r\n\
         Message-ID: <{id}@{hostname}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"{boundary}\"\r\n\
         \r\n\
         This is a MIME-encapsulated delivery status notification.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Description: Notification\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         {text}\r\n\
         --{boundary}\r\n\
         Content-Description: Delivery report\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         {status}\r\n\
         --{boundary}\r\n\
         Content-Description: Undelivered message\r\n\
         Content-Type: {returned_type}\r\n\
         \r\n"
    )
    .into_bytes();
    message.extend_from_slice(returned);
    if !returned.ends_with(b"\r\n") {
        message.extend_from_slice(b"\r\n");
    }
    message.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut notice = QueueEntry::new(
        id,
        &entry.tenant,
        "",
        vec![Recipient::new(to.to_string())],
        now,
    );
    notice.size = message.len();
    notice.smtputf8 = !to.is_ascii() || failures.iter().any(|f| !f.recipient.address.is_ascii());
    notice.eight_bit = entry.eight_bit && entry.ret_full;
    notice.notice = true;
    (notice, message)
}

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

fn rfc2822(unix: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix);
    httpdate::fmt_http_date(at).replace("GMT", "+0000")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::queue::RecipientStatus;

    fn entry() -> QueueEntry {
        let mut failed = Recipient::new("nobody@example.net".into());
        failed.status = RecipientStatus::Failed;
        failed.dsn = Some("5.1.1".into());
        failed.last_reply = Some("550 5.1.1 <nobody@example.net>: user unknown".into());
        failed.orcpt = Some("rfc822;Nobody@example.net".into());
        QueueEntry {
            id: "0ABCDEFGHJK".into(),
            tenant: "acme".into(),
            sender: "news@acme.example".into(),
            recipients: vec![failed],
            received_at: 1_795_000_000,
            next_attempt: 0,
            size: 0,
            message_id: Some("<m1@acme.example>".into()),
            env_id: Some("crm-42".into()),
            ret_full: false,
            smtputf8: false,
            eight_bit: false,
            held: false,
            per_recipient_copies: false,
            list: Some("news".into()),
            client_ip: "192.0.2.1".into(),
            notice: false,
            sender_domain: None,
        }
    }

    #[test]
    fn notify_flags_decide_whether_a_notice_is_sent() {
        let mut r = Recipient::new("a@example.net".into());
        assert!(wanted(&r));
        r.notify = RCPT_NOTIFY_NEVER;
        assert!(!wanted(&r));
        r.notify = smtp_proto::RCPT_NOTIFY_DELAY;
        assert!(!wanted(&r));
        r.notify = smtp_proto::RCPT_NOTIFY_DELAY | RCPT_NOTIFY_FAILURE;
        assert!(wanted(&r));
    }

    /// The notice is a DSN our own feedback parser (and so any DSN reader)
    /// reads back: recipient, status, diagnostic and a hard bounce.
    #[test]
    fn the_notice_reads_back_as_a_hard_bounce() {
        let e = entry();
        let original = b"From: news@acme.example\r\nSubject: Hi\r\n\r\nsecret body\r\n";
        let failures = [Failure {
            recipient: &e.recipients[0],
            relay: "mx.example.net[192.0.2.25]:25",
        }];
        let (notice, bytes) = failure_notice(
            "mta.example.test",
            &e,
            &failures,
            original,
            "bounces@acme.example",
            1_795_000_100,
        );
        assert!(notice.notice && notice.sender.is_empty());
        assert_eq!(notice.recipients[0].address, "bounces@acme.example");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("Original-Envelope-Id: crm-42\r\n"), "{text}");
        assert!(text.contains("Original-Recipient: rfc822;Nobody@example.net\r\n"));
        assert!(text.contains("Remote-MTA: dns; mx.example.net\r\n"));
        assert!(
            !text.contains("secret body"),
            "RET=HDRS returns headers only"
        );
        let report = crate::feedback::report::parse(&bytes);
        assert_eq!(report.kind, crate::feedback::report::ReportKind::Dsn);
        assert_eq!(report.recipients.len(), 1, "{report:?}");
        let r = &report.recipients[0];
        assert_eq!(r.recipient, "nobody@example.net");
        assert_eq!(r.status, "5.1.1");
        assert_eq!(r.class, crate::feedback::classify::BounceClass::Hard);
        assert_eq!(r.reason, "user_unknown");
    }
}
