//! The parsers on the hot paths: SMTP commands (smtp-proto's parser, as the
//! session calls it, for each line a client sends) and feedback messages (a
//! DSN, an ARF complaint report and a prose bounce, through
//! `feedback::report::parse`, which classifies as well).
//!
//! `cargo bench --profile dev --config 'profile.dev.package.postwarden.opt-level=3' --bench parsers`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use smtp_proto::Request;

const COMMANDS: &[&str] = &[
    "EHLO crm.example.com\r\n",
    "MAIL FROM:<newsletter@acme.example> SIZE=51200 BODY=8BITMIME\r\n",
    "RCPT TO:<jane.doe@example.net> NOTIFY=FAILURE ORCPT=rfc822;jane.doe@example.net\r\n",
    "DATA\r\n",
    "QUIT\r\n",
];

const DSN: &str = "From: MAILER-DAEMON@mx.example.net\r\nTo: b-0K1ABC-0-abcdef@bounces.example.com\r\n\
Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
--B\r\nContent-Type: text/plain\r\n\r\nThis is the mail system at host mx.example.net.\r\n\r\n\
I'm sorry to have to inform you that your message could not be delivered.\r\n\r\n\
<jane@example.net>: host mx.example.net[192.0.2.1] said: 550 5.1.1 <jane@example.net>: Recipient address rejected: User unknown\r\n\
--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\nArrival-Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\n\
Final-Recipient: rfc822; jane@example.net\r\nOriginal-Recipient: rfc822;jane@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n\
Remote-MTA: dns; mx.example.net\r\nDiagnostic-Code: smtp; 550 5.1.1 <jane@example.net>: Recipient address rejected: User unknown\r\n\r\n\
--B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: news@acme.example\r\nTo: jane@example.net\r\nSubject: Autumn\r\n\
X-Postwarden-Tracking: 0K1ABC-0-abcdef0123456789\r\n\r\n--B--\r\n";

const ARF: &str = "From: staff@hotmail.com\r\nTo: fbl@bounces.example.com\r\nSubject: complaint about message\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=feedback-report; boundary=\"A\"\r\n\r\n\
--A\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report for an email message received from IP 192.0.2.10.\r\n\
--A\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: SomeGenerator/1.0\r\nVersion: 1\r\n\
Original-Mail-From: <b-0K1ABC-0-abcdef@bounces.example.com>\r\nArrival-Date: Tue, 24 Nov 2026 10:00:00 +0000\r\nSource-IP: 192.0.2.10\r\n\r\n\
--A\r\nContent-Type: message/rfc822\r\n\r\nFrom: Acme <news@acme.example>\r\nTo: redacted@hotmail.com\r\nSubject: Autumn\r\n\
X-Postwarden-Tracking: 0K1ABC-0-abcdef0123456789\r\n\r\n<p>Hello</p>\r\n--A--\r\n";

const PROSE: &str = "From: Mail Delivery System <Mailer-Daemon@mail.example.org>\r\nTo: b-0K1ABC-0-abcdef@bounces.example.com\r\n\
Subject: Mail delivery failed: returning message to sender\r\n\r\n\
This message was created automatically by mail delivery software.\r\n\r\n\
A message that you sent could not be delivered to one or more of its\r\nrecipients. This is a permanent error. The following address(es) failed:\r\n\r\n\
  jane@example.org\r\n    host mx.example.org [192.0.2.1]\r\n    SMTP error from remote mail server after RCPT TO:<jane@example.org>:\r\n\
    550 5.2.1 The email account that you tried to reach is disabled\r\n";

fn parsers(c: &mut Criterion) {
    c.bench_function("smtp_command_parse (5 commands)", |b| {
        b.iter(|| {
            for line in COMMANDS {
                let r = Request::parse(&mut line.as_bytes().iter()).map(|r| r.into_owned());
                black_box(r.is_ok());
            }
        })
    });
    for (name, raw) in [
        ("dsn_parse", DSN),
        ("arf_parse", ARF),
        ("prose_bounce_parse", PROSE),
    ] {
        c.bench_function(name, |b| {
            b.iter(|| black_box(postwarden::feedback::report::parse(raw.as_bytes())))
        });
    }
}

criterion_group!(benches, parsers);
criterion_main!(benches);
