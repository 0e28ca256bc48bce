//! The clients CRMs use, each sending one compliant message (250) and one
//! that breaks three rules (one multi-line 550 naming all three): swaks,
//! Python's smtplib (with SMTPUTF8 and a U-label recipient), and lettre.

use std::process::Command;

use lettre::address::Envelope;
use lettre::AsyncTransport;

use crate::harness::*;

/// The three rules the bad message breaks, as the 550 names them.
const BROKEN: [&str; 3] = [
    "unsubscribe.header_missing",
    "subject.fake_reply",
    "from.display_name_spoof",
];

/// A newsletter with no List-Unsubscribe, a "RE:" subject that answers
/// nothing, and another sender's address as the From display name.
fn bad_message(rcpt: &str) -> String {
    newsletter(rcpt, "RE: your order 4711")
        .replace("List-Unsubscribe: <https://acme.example/u/abc>\r\n", "")
        .replace("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", "")
        .replace(
            "From: Acme News <news@acme.example>",
            "From: \"service@paypal.com\" <news@acme.example>",
        )
}

/// The 550 reply's lines: each starts with 550, all but the last with
/// "550-", and together they name every broken rule.
fn assert_names_all_three(reply_lines: &[String], client: &str) {
    let text = reply_lines.join("\n");
    assert!(reply_lines.len() >= 3, "{client}: {text}");
    for (i, line) in reply_lines.iter().enumerate() {
        let sep = if i + 1 == reply_lines.len() { ' ' } else { '-' };
        assert!(line.starts_with(&format!("550{sep}")), "{client}: {text}");
    }
    for code in BROKEN {
        assert!(text.contains(code), "{client}: {code} missing in\n{text}");
    }
}

fn daemon() -> Daemon {
    let mut d = Daemon::new(Options::default());
    opt_in(&d.config_path, "jane@example.test");
    opt_in(&d.config_path, "joerg@bücher.example");
    d.spawn();
    d
}

#[test]
fn swaks_gets_250_and_one_550_naming_three_rules() {
    let d = daemon();
    let dir = tempfile::tempdir().unwrap();
    let run = |message: &str| {
        let file = dir.path().join("message.eml");
        std::fs::write(&file, message).unwrap();
        let out = Command::new("swaks")
            .args(["--server", &d.submission.to_string()])
            .args(["--tls", "--auth", "PLAIN", "--auth-user", "acme"])
            .args(["--auth-password", PASSWORD])
            .args(["--from", "news@acme.example", "--to", "jane@example.test"])
            .arg("--data")
            .arg(format!("@{}", file.display()))
            .output()
            .expect("swaks (installed by .ci/setup)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let ok = run(&newsletter("jane@example.test", "December"));
    // After STARTTLS swaks marks the server's lines "<~  ", its errors "<~* ".
    assert!(ok.contains("<~  250 2.0.0 Ok: queued as "), "{ok}");
    let bad = run(&bad_message("jane@example.test"));
    let lines: Vec<String> = bad
        .lines()
        .filter_map(|l| l.strip_prefix("<~* "))
        .filter(|l| l.starts_with("550"))
        .map(str::to_string)
        .collect();
    assert_names_all_three(&lines, "swaks");
}

#[test]
fn python_smtplib_with_smtputf8_and_a_u_label_recipient() {
    let d = daemon();
    // smtplib as a CRM's Python code uses it: STARTTLS (the test
    // certificate is self-signed), AUTH, sendmail with SMTPUTF8.
    let script = r#"
import smtplib, ssl, sys
host, port, password, path, rcpt = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP(host, port, timeout=30)
s.starttls(context=ctx)
s.login("acme", password)
assert s.has_extn("smtputf8"), "no SMTPUTF8 in EHLO"
msg = open(path, "rb").read()
try:
    s.sendmail("news@acme.example", [rcpt], msg, mail_options=["SMTPUTF8"])
    print("OK", s.noop()[0])
except smtplib.SMTPDataError as e:
    print("REFUSED", e.smtp_code)
    for line in e.smtp_error.decode("utf-8").splitlines():
        print("LINE", line)
s.quit()
"#;
    let dir = tempfile::tempdir().unwrap();
    let run = |message: &str| {
        let file = dir.path().join("message.eml");
        std::fs::write(&file, message).unwrap();
        let out = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(d.submission.ip().to_string())
            .arg(d.submission.port().to_string())
            .arg(PASSWORD)
            .arg(&file)
            .arg("joerg@bücher.example")
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let ok = run(&newsletter("joerg@bücher.example", "Neue Bücher"));
    assert!(ok.starts_with("OK 250"), "{ok}");
    let bad = run(&bad_message("joerg@bücher.example"));
    assert!(bad.starts_with("REFUSED 550"), "{bad}");
    // smtplib gives the reply's text without the codes: put them back.
    let texts: Vec<&str> = bad
        .lines()
        .filter_map(|l| l.strip_prefix("LINE "))
        .collect();
    let lines: Vec<String> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let sep = if i + 1 == texts.len() { ' ' } else { '-' };
            format!("550{sep}{t}")
        })
        .collect();
    assert_names_all_three(&lines, "smtplib");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lettre_gets_250_and_one_550_naming_three_rules() {
    let d = daemon();
    let transport = crate::smtp::lettre_transport(d.submission.port(), false);
    let envelope = Envelope::new(
        Some("news@acme.example".parse().unwrap()),
        vec!["jane@example.test".parse().unwrap()],
    )
    .unwrap();
    let ok = transport
        .send_raw(
            &envelope,
            newsletter("jane@example.test", "December").as_bytes(),
        )
        .await
        .expect("the compliant message is taken");
    assert_eq!(ok.code().to_string(), "250");
    let err = transport
        .send_raw(&envelope, bad_message("jane@example.test").as_bytes())
        .await
        .expect_err("the bad message is refused");
    assert!(err.is_permanent(), "{err}");
    assert_eq!(err.status().map(|c| c.to_string()).as_deref(), Some("550"));
    // lettre's error joins the reply's lines; each rule is named.
    let text = err.to_string();
    for code in BROKEN {
        assert!(text.contains(code), "lettre: {code} missing in {text}");
    }
}
