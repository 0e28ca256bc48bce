//! Delivery through MX look-up against a DNS server started by the test
//! (a tiny authoritative responder built on hickory-proto): MX, implicit MX
//! and null MX (RFC 7505); and `domains check` reading SPF, DKIM, DMARC and
//! the feedback domain's MX from it. No test touches the Internet.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, MX, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::delivery::{submit, submit_raw};
use crate::harness::*;

/// An authoritative answer for every (name, type) of `zone`; NODATA for
/// other types of a known name, NXDOMAIN for unknown names.
pub(crate) struct TestDns {
    pub(crate) addr: SocketAddr,
    /// Every question asked, in order: (name, type).
    pub(crate) queries: Arc<Mutex<Vec<(String, RecordType)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestDns {
    pub(crate) async fn start(zone: Vec<(&str, RData)>) -> TestDns {
        TestDns::start_with_ttl(zone, 60).await
    }

    /// [`TestDns::start`], every record with time-to-live `ttl` seconds.
    pub(crate) async fn start_with_ttl(zone: Vec<(&str, RData)>, ttl: u32) -> TestDns {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let mut records: HashMap<(Name, RecordType), Vec<Record>> = HashMap::new();
        for (name, rdata) in zone {
            let name = Name::from_str(name).unwrap();
            let rtype = rdata.record_type();
            records
                .entry((name.clone(), rtype))
                .or_default()
                .push(Record::from_rdata(name, ttl, rdata));
        }
        let queries = Arc::new(Mutex::new(Vec::new()));
        let asked = queries.clone();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut answer = Message::response(query.metadata.id, OpCode::Query);
                answer.metadata.authoritative = true;
                answer.metadata.recursion_desired = query.metadata.recursion_desired;
                answer.metadata.recursion_available = true;
                for q in &query.queries {
                    answer.add_query(q.clone());
                    asked
                        .lock()
                        .unwrap()
                        .push((q.name().to_lowercase().to_ascii(), q.query_type()));
                    let name = q.name().to_lowercase();
                    match records.get(&(name.clone(), q.query_type())) {
                        Some(rs) => {
                            answer.add_answers(rs.iter().cloned());
                        }
                        // A zone whose servers fail (SERVFAIL), as a
                        // sender's broken DNS does.
                        None if name.to_ascii().ends_with("servfail.test.") => {
                            answer.metadata.response_code = ResponseCode::ServFail
                        }
                        None if records.keys().any(|(n, _)| *n == name) => {}
                        None => answer.metadata.response_code = ResponseCode::NXDomain,
                    }
                }
                if let Ok(bytes) = answer.to_vec() {
                    let _ = socket.send_to(&bytes, peer).await;
                }
            }
        });
        TestDns {
            addr,
            queries,
            task,
        }
    }
}

pub(crate) fn mx(pref: u16, host: &str) -> RData {
    RData::MX(MX::new(pref, Name::from_str(host).unwrap()))
}

pub(crate) fn a(ip: Ipv4Addr) -> RData {
    RData::A(A(ip))
}

pub(crate) async fn dns_daemon(sink: &Sink, dns: &TestDns, rcpts: &[&str]) -> Daemon {
    let mut d = Daemon::new(Options {
        delivery: format!(
            "nameservers = [\"{}\"]\nmx_port = {}\n",
            dns.addr,
            sink.addr.port()
        ),
        // The zones here publish no DMARC for acme.example; the rule has
        // its own test below.
        tenant: "rules = { \"from.not_authenticated\" = \"warn\" }\n".into(),
        ..Options::default()
    });
    for r in rcpts {
        opt_in(&d.config_path, r);
    }
    d.spawn();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mx_and_implicit_mx_deliver_and_a_null_mx_fails_at_once() {
    let sink = Sink::start(Script::new()).await;
    let local = Ipv4Addr::LOCALHOST;
    let dns = TestDns::start(vec![
        ("mx-domain.test.", mx(10, "mx1.mx-domain.test.")),
        ("mx-domain.test.", mx(20, "mx2.mx-domain.test.")),
        ("mx1.mx-domain.test.", a(local)),
        ("implicit.test.", a(local)),
        ("nullmx.test.", mx(0, ".")),
        // bücher.test, as its A-label: the only name DNS knows.
        ("xn--bcher-kva.test.", mx(10, "mx.xn--bcher-kva.test.")),
        ("mx.xn--bcher-kva.test.", a(local)),
    ])
    .await;
    let d = dns_daemon(
        &sink,
        &dns,
        &[
            "jane@mx-domain.test",
            "joe@implicit.test",
            "ann@nullmx.test",
            "leser@bücher.test",
        ],
    )
    .await;
    let first = submit(&d, &["jane@mx-domain.test"], "Via DNS").await;
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].rcpt, "jane@mx-domain.test");
    let log = d.wait_for_log(&format!("{first}: to=<jane@mx-domain.test>"));
    assert!(
        log.contains(&format!(
            "relay=mx1.mx-domain.test[127.0.0.1]:{}",
            sink.addr.port()
        )),
        "{log}"
    );
    submit(&d, &["joe@implicit.test"], "Via DNS").await;
    let got = sink.wait_for(2).await;
    assert_eq!(got[1].rcpt, "joe@implicit.test");
    let null = submit(&d, &["ann@nullmx.test"], "Via DNS").await;
    let log = d.wait_for_log(&format!("{null}: to=<ann@nullmx.test>"));
    let line = log
        .lines()
        .find(|l| l.contains(&format!("{null}: to=<ann@nullmx.test>")))
        .unwrap();
    assert!(line.contains("dsn=5.1.10"), "{line}");
    assert!(line.contains("status=bounced"), "{line}");
    assert_eq!(sink.received().len(), 2);
    // A U-label domain: the MX of its A-label, and RCPT TO by it.
    let idn = submit(&d, &["leser@bücher.test"], "Via DNS").await;
    let got = sink.wait_for(3).await;
    assert_eq!(got[2].rcpt, "leser@xn--bcher-kva.test");
    let log = d.wait_for_log(&format!("{idn}: to=<leser@xn--bcher-kva.test>"));
    assert!(
        log.contains(&format!(
            "relay=mx.xn--bcher-kva.test[127.0.0.1]:{}",
            sink.addr.port()
        )),
        "{log}"
    );
}

/// A daemon delivering example.test to `sink`, its resolver pointed at
/// nothing until a test DNS server is named ([`Nameservers`]); `tenant`
/// lines under [tenants.acme].
fn signing_daemon(sink: &Sink, tenant: &str) -> Daemon {
    Daemon::new(Options {
        delivery: "nameservers = [\"127.0.0.1:9\"]\n".into(),
        routes: format!("\"example.test\" = \"127.0.0.1:{}\"\n", sink.addr.port()),
        tenant: tenant.into(),
        ..Options::default()
    })
}

/// The daemon's configuration as it stands, to point its resolver at one
/// test DNS server or another, as a sysadmin edits `nameservers`.
struct Nameservers {
    path: std::path::PathBuf,
    config: String,
}

impl Nameservers {
    fn of(d: &Daemon) -> Nameservers {
        Nameservers {
            path: d.config_path.clone(),
            config: std::fs::read_to_string(&d.config_path).unwrap(),
        }
    }

    fn point(&self, dns: &TestDns) {
        let text = self.config.replace("127.0.0.1:9", &dns.addr.to_string());
        std::fs::write(&self.path, text).unwrap();
    }
}

/// The key record of a fresh Ed25519 key: not the tenant's.
fn another_key_record() -> String {
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    format!(
        "v=DKIM1; k=ed25519; p={}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            other.public_key_raw()
        )
    )
}

fn ptr(name: &str) -> RData {
    RData::PTR(hickory_proto::rr::rdata::PTR(Name::from_str(name).unwrap()))
}

/// A TXT record of `strings` (a long value is published as several).
fn txt(strings: &[&str]) -> RData {
    RData::TXT(TXT::new(strings.iter().map(|s| s.to_string()).collect()))
}

/// `postwarden domains check`, with the daemon's resolver settings, against
/// a zone that is right and then one that is wrong in four ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domains_check_reads_spf_dkim_dmarc_and_the_feedback_mx() {
    // One egress source, on a documentation address (RFC 5737): hickory
    // answers the reverse of 127/8 itself (RFC 6761), so loopback cannot
    // show a PTR of the zone. Nothing binds it: the daemon does not run.
    let d = Daemon::new(Options {
        delivery: "nameservers = [\"127.0.0.1:9\"]\n".into(),
        extra: "[delivery.sources.mta2]\naddress = \"192.0.2.10\"\nehlo = \"mta2.test\"\n".into(),
        ..Options::default()
    });
    let Keygen { printed, strings } = dkim_keygen(&d, "s3", "rsa-sha256");
    assert!(
        strings.len() >= 2,
        "an RSA 2048 record is over 255 bytes: {printed}"
    );
    let config = std::fs::read_to_string(&d.config_path).unwrap();
    let check = |dns: &TestDns| {
        std::fs::write(
            &d.config_path,
            config.replace("127.0.0.1:9", &dns.addr.to_string()),
        )
        .unwrap();
        let out = d.cli(&["domains", "check"]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let dkim: Vec<&str> = strings.iter().map(String::as_str).collect();
    let egress = Ipv4Addr::new(192, 0, 2, 10);
    let good = TestDns::start(vec![
        ("mta2.test.", a(egress)),
        ("10.2.0.192.in-addr.arpa.", ptr("mta2.test.")),
        ("bounces.test.", txt(&["v=spf1 include:_spf.mta.test -all"])),
        ("_spf.mta.test.", txt(&["v=spf1 ip4:192.0.2.0/24 -all"])),
        ("acme.example.", txt(&["v=spf1 a:mta2.test ~all"])),
        (
            "_dmarc.acme.example.",
            txt(&["v=DMARC1; p=quarantine; rua=mailto:dmarc@acme.example"]),
        ),
        ("s3._domainkey.acme.example.", txt(&dkim)),
        ("bounces.test.", mx(10, "mta.test.")),
        (
            "_smtp._tls.bounces.test.",
            txt(&["v=TLSRPTv1; rua=mailto:tlsrpt@acme.example"]),
        ),
    ])
    .await;
    let (code, out) = check(&good);
    assert_eq!(code, Some(0), "{out}");
    for line in [
        "ok      envelope: SPF bounces.test: v=spf1 include:_spf.mta.test -all (1 of 10 DNS look-ups)",
        "ok      envelope: SPF bounces.test for 192.0.2.10 (source mta2): pass",
        "ok      acme: SPF acme.example: v=spf1 a:mta2.test ~all (1 of 10 DNS look-ups)",
        "ok      acme: SPF acme.example for 192.0.2.10 (source mta2): pass",
        "ok      acme: DMARC _dmarc.acme.example: policy quarantine: v=DMARC1; p=quarantine;",
        "ok      acme: DMARC alignment acme.example: DKIM d=acme.example aligns with From acme.example (relaxed); SPF of the VERP domain bounces.test does not align",
        "ok      acme: DKIM s3._domainkey.acme.example: the published key is ",
        "ok      feedback domain MX bounces.test: points at mta.test",
        "ok      reverse DNS 192.0.2.10 (source mta2): mta2.test, forward-confirmed, the EHLO name",
        "ok      feedback domain MTA-STS _mta-sts.bounces.test: none (optional",
        "ok      feedback domain TLS-RPT _smtp._tls.bounces.test: 1 report address(es): v=TLSRPTv1; rua=mailto:tlsrpt@acme.example",
    ] {
        assert!(out.contains(line), "{line}\n{out}");
    }
    // Wrong: two SPF records, no DMARC, another key, the MX elsewhere; an
    // envelope SPF of eleven nested includes; a PTR that does not resolve
    // back.
    let chain: Vec<(String, RData)> = (1..=11)
        .map(|i| {
            let record = if i == 11 {
                "v=spf1 ip4:192.0.2.10 -all".to_string()
            } else {
                format!("v=spf1 include:i{}.test -all", i + 1)
            };
            (format!("i{i}.test."), RData::TXT(TXT::new(vec![record])))
        })
        .collect();
    let other_record = another_key_record();
    let mut zone = vec![
        ("mta2.test.", a(egress)),
        ("10.2.0.192.in-addr.arpa.", ptr("mail.elsewhere.test.")),
        ("bounces.test.", txt(&["v=spf1 include:i1.test -all"])),
        ("acme.example.", txt(&["v=spf1 a:mta.test ~all"])),
        ("acme.example.", txt(&["v=spf1 -all"])),
        ("s3._domainkey.acme.example.", txt(&[&other_record])),
        ("bounces.test.", mx(10, "mx.elsewhere.test.")),
        ("_mta-sts.bounces.test.", txt(&["v=STSv1; id="])),
    ];
    zone.extend(chain.iter().map(|(n, r)| (n.as_str(), r.clone())));
    let bad = TestDns::start(zone).await;
    let (code, out) = check(&bad);
    assert_eq!(code, Some(1), "{out}");
    for line in [
        "error   acme: SPF acme.example: 2 SPF records",
        "error   acme: DMARC _dmarc.acme.example: no DMARC record",
        "        publish: _dmarc.acme.example. IN TXT \"v=DMARC1; p=none;",
        "error   acme: DKIM s3._domainkey.acme.example: the published key is not ",
        "        publish: s3._domainkey.acme.example. IN TXT ( \"v=DKIM1; k=rsa; p=",
        "error   feedback domain MX bounces.test: points at mx.elsewhere.test and not at this host (mta.test)",
        "        publish: bounces.test. IN MX 10 mta.test.",
        "error   envelope: SPF bounces.test: v=spf1 include:i1.test -all: 11 DNS look-ups with its includes, RFC 7208 §4.6.4 allows 10",
        "error   envelope: SPF bounces.test for 192.0.2.10 (source mta2): permerror",
        // Not authorised by the From domain's SPF: a warning, since the
        // envelope is the VERP domain.
        "warning acme: SPF acme.example for 192.0.2.10 (source mta2): softfail: the address is not authorised",
        "        publish: add ip4:192.0.2.10 to the SPF record of acme.example, before its all",
        "error   reverse DNS 192.0.2.10 (source mta2): PTR mail.elsewhere.test does not resolve back to 192.0.2.10",
        "        publish: mail.elsewhere.test. IN A 192.0.2.10",
        "error   feedback domain MTA-STS _mta-sts.bounces.test: id \"\" is not 1 to 32 letters and digits (RFC 8461 §3.1)",
    ] {
        assert!(out.contains(line), "{line}\n{out}");
    }
    let out = d.cli(&["domains", "check", "--json"]);
    let findings: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(findings
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["level"] == "error" && f["check"] == "acme: DMARC _dmarc.acme.example"));
}

/// The rule from.not_authenticated: the daemon looks up its sender
/// domains at start; a strict tenant's mail is refused while the domain has
/// no DMARC record, with the record named, and accepted once it is
/// published (the daemon looks again on SIGHUP).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_tenant_without_dmarc_is_refused_until_the_record_is_published() {
    // A second tenant whose own DNS fails: never checked clean, so the
    // failure is its standing (receivers cannot verify it either).
    let mut d = Daemon::new(Options {
        delivery: "nameservers = [\"127.0.0.1:9\"]\n".into(),
        tenant: "policy = \"strict\"\n".into(),
        extra: format!(
            "[tenants.globex]\nsmtp_password_hash = \"{}\"\nsender_domains = [\"news.servfail.test\"]\n",
            password_hash()
        ),
        ..Options::default()
    });
    let Keygen { strings, .. } = dkim_keygen(&d, "s4", "ed25519-sha256");
    let dkim: Vec<&str> = strings.iter().map(String::as_str).collect();
    let without = TestDns::start(vec![("s4._domainkey.acme.example.", txt(&dkim))]).await;
    let with = TestDns::start(vec![
        ("s4._domainkey.acme.example.", txt(&dkim)),
        ("_dmarc.acme.example.", txt(&["v=DMARC1; p=reject"])),
    ])
    .await;
    let nameservers = Nameservers::of(&d);
    let point = |dns: &TestDns| nameservers.point(dns);
    point(&without);
    opt_in(&d.config_path, "jane@example.test");
    d.spawn();
    d.wait_for_log(
        "sender authentication: acme.example (tenant acme): DMARC _dmarc.acme.example: no DMARC record",
    );
    d.wait_for_log("sender authentication: news.servfail.test (tenant globex): DMARC _dmarc.news.servfail.test: look-up failed");
    d.wait_for_log("while other look-ups are answered: receivers cannot verify its mail either");
    let message = newsletter("jane@example.test", "Autumn");
    let r = submit_raw(&d, &["jane@example.test"], &message).await;
    assert!(r.starts_with("550"), "{r}");
    assert!(
        r.contains("policy: from.not_authenticated: mail from acme.example cannot authenticate yet: DMARC _dmarc.acme.example: no DMARC record"),
        "{r}"
    );
    point(&with);
    d.signal("HUP");
    d.wait_for_log("sender authentication: acme.example (tenant acme): ok");
    let r = submit_raw(&d, &["jane@example.test"], &message).await;
    assert!(r.starts_with("250"), "{r}");
}

/// Key rotation as a sysadmin does it: `dkim keygen --next` makes the next
/// key; `dkim rotate` refuses while its record is not published, then
/// switches the configuration file (its comments kept), keeping the old
/// selector published for the overlap; after a reload the mail is signed
/// with the new key and verifies against its record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dkim_rotate_switches_to_the_next_key_once_its_record_is_published() {
    let sink = Sink::start(Script::new()).await;
    let mut d = signing_daemon(&sink, "# signing keys: see the runbook\n");
    let old = dkim_keygen(&d, "s1", "rsa-sha256");
    let next = dkim_keygen_with(&d, "s2", "ed25519-sha256", &["--next"]);
    assert!(
        next.printed.contains("dkim_next_selector = \"s2\""),
        "{}",
        next.printed
    );
    let old_strings: Vec<&str> = old.strings.iter().map(String::as_str).collect();
    let next_strings: Vec<&str> = next.strings.iter().map(String::as_str).collect();
    let nameservers = Nameservers::of(&d);
    let point = |dns: &TestDns| nameservers.point(dns);
    // Not published yet: nothing changes.
    let before = TestDns::start(vec![("s1._domainkey.acme.example.", txt(&old_strings))]).await;
    point(&before);
    let out = d.cli(&["dkim", "rotate", "--tenant", "acme"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("error   acme: DKIM next s2._domainkey.acme.example: no key record"),
        "{text}"
    );
    assert!(
        text.contains(
            "        publish: s2._domainkey.acme.example. IN TXT ( \"v=DKIM1; k=ed25519; p="
        ),
        "{text}"
    );
    let unchanged = std::fs::read_to_string(&d.config_path).unwrap();
    assert!(unchanged.contains("dkim_selector = \"s1\""), "{unchanged}");
    let out = d.cli(&["domains", "check"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("warning acme: DKIM next s2._domainkey.acme.example: no key record"),
        "{text}"
    );
    // This zone has no MX for the feedback domain.
    assert!(
        text.contains("error   feedback domain MX bounces.test: no MX"),
        "{text}"
    );
    // Another key at the next selector (a record left from an old key, a
    // paste of the wrong one): refused too.
    let other_record = another_key_record();
    let mismatch = TestDns::start(vec![
        ("s1._domainkey.acme.example.", txt(&old_strings)),
        ("s2._domainkey.acme.example.", txt(&[&other_record])),
    ])
    .await;
    point(&mismatch);
    let out = d.cli(&["dkim", "rotate", "--tenant", "acme"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "error   acme: DKIM next s2._domainkey.acme.example: the published key is not "
        ),
        "{text}"
    );
    // Published: rotate switches.
    let after = TestDns::start(vec![
        ("s1._domainkey.acme.example.", txt(&old_strings)),
        ("s2._domainkey.acme.example.", txt(&next_strings)),
        ("_dmarc.acme.example.", txt(&["v=DMARC1; p=none"])),
    ])
    .await;
    point(&after);
    let out = d.cli(&["dkim", "rotate", "--tenant", "acme", "--overlap", "10"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let until = time::OffsetDateTime::now_utc().date() + time::Duration::days(10);
    let until = postwarden::values::clock::format_day(until);
    assert!(
        text.contains(&format!("keep the record of s1 published until {until}")),
        "{text}"
    );
    let rotated = std::fs::read_to_string(&d.config_path).unwrap();
    for line in [
        "# signing keys: see the runbook",
        "dkim_selector = \"s2\"",
        "dkim_algorithm = \"ed25519-sha256\"",
        "dkim_previous_selector = \"s1\"",
        &format!("dkim_previous_until = \"{until}\""),
    ] {
        assert!(rotated.contains(line), "{line}\n{rotated}");
    }
    assert!(!rotated.contains("dkim_next_"), "{rotated}");
    assert!(rotated.contains("s2.acme.example.dkim.pem"), "{rotated}");
    let out = d.cli(&["domains", "check"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("ok      acme: DKIM s2._domainkey.acme.example: the published key is "),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "ok      acme: DKIM previous s1._domainkey.acme.example: stays published until {until}"
        )),
        "{text}"
    );
    // The daemon signs with the new key.
    opt_in(&d.config_path, "jane@example.test");
    d.spawn();
    submit(&d, &["jane@example.test"], "Rotated").await;
    let got = sink.wait_for(1).await;
    crate::delivery::assert_dkim_passes(
        &got[0].data,
        "s2._domainkey.acme.example.",
        &next.strings.concat(),
    )
    .await;
}

/// The self-test of what leaves: a message sent through postwarden to a
/// sink verifies there, with mail-auth against the test's DNS, as a
/// receiver would check it: DKIM passes and DMARC passes (by DKIM, aligned;
/// SPF of the VERP domain passes but is another organisation). Then a
/// broken key record is caught by `domains check` and by the rule, which
/// refuses the next message (strict) and shows in the metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_that_leaves_passes_dkim_and_dmarc_against_the_published_records() {
    let sink = Sink::start(Script::new()).await;
    let mut d = signing_daemon(&sink, "policy = \"strict\"\n");
    let Keygen { strings, .. } = dkim_keygen(&d, "s5", "ed25519-sha256");
    let key: Vec<&str> = strings.iter().map(String::as_str).collect();
    let other_record = another_key_record();
    let zone = |dkim: Vec<&str>| {
        vec![
            ("s5._domainkey.acme.example.", txt(&dkim)),
            ("_dmarc.acme.example.", txt(&["v=DMARC1; p=reject"])),
            ("acme.example.", txt(&["v=spf1 ip4:127.0.0.1 -all"])),
            ("bounces.test.", txt(&["v=spf1 ip4:127.0.0.1 -all"])),
        ]
    };
    let good = TestDns::start(zone(key.clone())).await;
    let broken = TestDns::start(zone(vec![other_record.as_str()])).await;
    let nameservers = Nameservers::of(&d);
    let point = |dns: &TestDns| nameservers.point(dns);
    point(&good);
    opt_in(&d.config_path, "jane@example.test");
    d.spawn();
    d.wait_for_log("sender authentication: acme.example (tenant acme): ok");
    submit(&d, &["jane@example.test"], "Verified").await;
    let got = sink.wait_for(1).await;
    // As the receiver: DKIM, SPF of the envelope, DMARC, from the test's DNS.
    let delivery = postwarden::config::Delivery {
        nameservers: vec![good.addr.to_string()],
        ..Default::default()
    };
    let verifier = mail_auth::MessageAuthenticator(
        postwarden::queue::route::dns_resolver(&delivery).expect("a resolver"),
    );
    let message = mail_auth::AuthenticatedMessage::parse(&got[0].data).expect("a message");
    let dkim = verifier.verify_dkim(&message).await;
    assert!(
        dkim.iter()
            .any(|r| r.result() == &mail_auth::DkimResult::Pass),
        "{:?}",
        dkim.iter().map(|r| r.result().clone()).collect::<Vec<_>>()
    );
    let mail_from = got[0].mail_from.clone();
    let envelope_domain = mail_from.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
    assert_eq!(envelope_domain, "bounces.test", "{mail_from}");
    let spf = verifier
        .verify_spf(mail_auth::spf::verify::SpfParameters::verify_mail_from(
            got[0].peer,
            &got[0].ehlo,
            "sink.test",
            &mail_from,
        ))
        .await;
    assert_eq!(spf.result(), mail_auth::SpfResult::Pass);
    let dmarc = verifier
        .verify_dmarc(mail_auth::dmarc::verify::DmarcParameters::new(
            &message,
            &dkim,
            envelope_domain,
            &spf,
        ))
        .await;
    assert_eq!(dmarc.dkim_result(), &mail_auth::DmarcResult::Pass);
    assert_eq!(dmarc.domain(), "acme.example");
    // A broken key record: caught by domains check, by the rule, and in the
    // metrics.
    point(&broken);
    let out = d.cli(&["domains", "check"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("error   acme: DKIM s5._domainkey.acme.example: the published key is not "),
        "{text}"
    );
    d.signal("HUP");
    d.wait_for_log(
        "sender authentication: acme.example (tenant acme): DKIM s5._domainkey.acme.example: the published key is not ",
    );
    let r = submit_raw(
        &d,
        &["jane@example.test"],
        &newsletter("jane@example.test", "Broken"),
    )
    .await;
    assert!(r.starts_with("550"), "{r}");
    assert!(r.contains("from.not_authenticated"), "{r}");
    let token = std::fs::read_to_string(d.spool().join("admin.token")).unwrap();
    let auth = format!("Bearer {}", token.trim());
    let (_, metrics) = http(d.http, "GET", "/metrics", &[("Authorization", &auth)], "").await;
    assert!(
        metrics.contains(
            "postwarden_sender_authentication{tenant=\"acme\",domain=\"acme.example\"} 0"
        ),
        "{metrics}"
    );
}
