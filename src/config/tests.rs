//! Loading and checking configuration files.
use super::*;

fn base() -> &'static str {
    "[server]\nhostname = \"mta.example.test\"\n[feedback]\ndomain = \"bounces.example.test\"\n"
}

#[test]
fn the_embedded_default_config_is_valid() {
    let c = Config::embedded_default(Path::new("/tmp/x/conf")).expect("valid");
    assert_eq!(c.spool_path(), PathBuf::from("/tmp/x/spool"));
    assert!(c.listen.http.is_some());
}

#[test]
fn three_problems_are_reported_each_with_key_and_line() {
    let text = format!(
        "{}[listen]\nsubmission = \"127.0.0.1:99999\"\nbogus = 1\n[tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n",
        base()
    );
    let problems = Config::parse(&text, Path::new("/")).unwrap_err();
    let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(problems.len(), 4, "{lines:?}");
    assert_eq!(problems[0].key, "listen.submission");
    assert_eq!(problems[0].line, 6);
    assert_eq!(problems[1].key, "listen.bogus");
    assert_eq!(problems[1].line, 7);
    assert_eq!(problems[2].key, "tls.cert");
    assert_eq!(problems[2].line, 9);
    assert_eq!(problems[3].key, "tls.key");
}

#[test]
fn a_store_ca_needs_tls_in_the_url_and_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), "").unwrap();
    let store = |url: &str, ca: &str| {
        format!(
            "{}[store]\nbackend = \"postgres\"\nurl = \"{url}\"\nca = \"{ca}\"\n",
            base()
        )
    };
    // Without sslmode=require the CA would be ignored: said so.
    let problems = Config::parse(&store("host=/run/postgresql", "ca.pem"), dir.path()).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].key, "store.ca");
    assert!(problems[0].to_string().contains("sslmode=require"));
    // A relative path is the config folder's; a missing file is named.
    let problems = Config::parse(
        &store("host=db.example sslmode=require", "missing.pem"),
        dir.path(),
    )
    .unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].key, "store.ca");
    assert!(problems[0].to_string().contains("missing.pem"));
    let config = Config::parse(
        &store("host=db.example sslmode=require", "ca.pem"),
        dir.path(),
    )
    .unwrap();
    assert_eq!(config.store.ca, Some(dir.path().join("ca.pem")));
}

#[test]
fn a_type_error_names_its_key_and_line() {
    let text = format!("{}[limits]\nmax_recipients = \"many\"\n", base());
    let problems = Config::parse(&text, Path::new("/")).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].key, "limits.max_recipients");
    assert_eq!(problems[0].line, 6);
}

#[test]
fn a_syntax_error_names_its_line() {
    let text = format!("{}[limits\n", base());
    let problems = Config::parse(&text, Path::new("/")).unwrap_err();
    assert_eq!(problems[0].line, 5);
}

#[test]
fn unknown_tenant_keys_and_rules_are_errors() {
    let text = format!(
        "{}[tenants.acme]\nsender_domains = [\"acme.example\"]\nsmtp_pasword_hash = \"x\"\nrules = {{ \"no.such_rule\" = \"warn\" }}\n",
        base()
    );
    let problems = Config::parse(&text, Path::new("/")).unwrap_err();
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "tenants.acme.smtp_pasword_hash",
            "tenants.acme.rules.no.such_rule"
        ]
    );
    assert!(problems.iter().all(|p| p.line >= 6));
}

#[test]
fn a_bounce_notify_that_is_no_address_is_named_with_its_line() {
    let text = format!(
        "{}[tenants.acme]\nsender_domains = [\"acme.example\"]\nbounce_notify = \"postmaster\"\n",
        base()
    );
    let problems = Config::parse(&text, Path::new("/")).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].key, "tenants.acme.bounce_notify");
    assert_eq!(problems[0].line, text.lines().count());
    let ok = text.replace("\"postmaster\"", "\"postmaster@acme.example\"");
    assert!(Config::parse(&ok, Path::new("/")).is_ok());
}

#[test]
fn host_port_parsing() {
    assert!(parse_host_port("127.0.0.1:25").is_ok());
    assert!(parse_host_port("[::1]:25").is_ok());
    assert!(parse_host_port("mx.example.test:2525").is_ok());
    assert!(parse_host_port("mx.example.test").is_err());
    assert!(parse_host_port("1.2.3.4:0").is_err());
    assert!(parse_host_port("bad host:25").is_err());
}

#[test]
fn retention_orders_are_checked_with_key_and_line() {
    let text = format!(
        "{}[delivery]\nexpiry = 600\n[retention]\ntracking = 300\nfeedback_marks = 200\nevents = 100\nevents_max = 50\nbatch = 0\n",
        base()
    );
    let problems = Config::parse(&text, Path::new("/")).unwrap_err();
    let keys: Vec<(&str, usize)> = problems.iter().map(|p| (p.key.as_str(), p.line)).collect();
    assert_eq!(
        keys,
        [
            ("retention.tracking", 8),
            ("retention.feedback_marks", 9),
            ("retention.events_max", 11),
            ("retention.batch", 12),
        ],
        "{problems:?}"
    );
    assert!(
        problems[0].to_string().contains("expiry"),
        "{}",
        problems[0]
    );
    let ok = format!("{}[retention]\nevents = 60\n", base());
    let config = Config::parse(&ok, Path::new("/")).unwrap();
    assert_eq!(config.retention.events, 60);
    assert_eq!(config.retention.tracking, 90 * 86_400);
}

#[test]
fn sign_up_settings_are_checked_and_wording_files_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("de.txt"), "Ja, bitte {list}.\n").unwrap();
    let tenant = "[tenants.acme]\nsender_domains = [\"acme.example\"]\n";
    let text = format!(
        "{}{tenant}form_origins = [\"https://www.acme.example/signup\"]\nprivacy_url = \"ftp://x\"\n\
[tenants.acme.consent]\nen = \"Yes\"\n[tenants.acme.consent.lists.offers]\nde = \"Angebote\"\n",
        base()
    );
    let problems = Config::parse(&text, dir.path()).unwrap_err();
    let keys: Vec<(&str, usize)> = problems.iter().map(|p| (p.key.as_str(), p.line)).collect();
    assert_eq!(
        keys,
        [
            ("tenants.acme.form_origins", 7),
            ("tenants.acme.privacy_url", 8),
            ("tenants.acme.consent.version", 9),
            ("tenants.acme.consent.lists.offers.version", 11),
        ],
        "{problems:?}"
    );
    let ok = format!(
        "{}{tenant}form_origins = [\"https://WWW.Acme.example:443\"]\n\
[tenants.acme.consent]\nversion = \"2026-11\"\nen = \"Yes\"\nde_file = \"de.txt\"\n",
        base()
    );
    let config = Config::parse(&ok, dir.path()).unwrap();
    let acme = &config.tenants["acme"];
    assert_eq!(acme.form_origins, ["https://www.acme.example"]);
    assert_eq!(acme.consent.de.as_deref(), Some("Ja, bitte {list}."));
}

#[test]
fn a_shaping_file_is_read_beside_the_config_and_its_problems_name_both_lines() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("shaping.toml"),
        "[providers.google]\nconnections = 2\n[[rules]]\nname = \"x\"\ntext = \"[\"\naction = \"defer\"\nduration = 60\n",
    )
    .unwrap();
    let text = format!("{}[delivery]\nshaping = \"shaping.toml\"\n", base());
    let problems = Config::parse(&text, dir.path()).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].key, "delivery.shaping");
    assert_eq!(problems[0].line, 6);
    assert!(
        problems[0]
            .message
            .contains("shaping.toml line 5: rules.0.text"),
        "{}",
        problems[0]
    );
    std::fs::write(
        dir.path().join("shaping.toml"),
        "[providers.google]\nconnections = 2\n",
    )
    .unwrap();
    let c = Config::parse(&text, dir.path()).expect("valid");
    let google = c.shaping.provider("google").expect("google");
    assert_eq!(google.limits.connections, 2);
    assert_eq!(c.delivery.shaping, Some(dir.path().join("shaping.toml")));
    // Missing: the key and the file are named.
    let text = format!("{}[delivery]\nshaping = \"nowhere.toml\"\n", base());
    let problems = Config::parse(&text, dir.path()).unwrap_err();
    assert!(
        problems[0].message.contains("nowhere.toml: cannot read"),
        "{problems:?}"
    );
    // The embedded defaults carry the shipped shaping.
    let c = Config::parse(base(), dir.path()).expect("valid");
    assert!(c.shaping.provider("microsoft").is_some());
}

#[test]
fn a_next_dkim_key_is_checked_with_key_and_line() {
    let text = format!(
        "{}[tenants.acme]\nsender_domains = [\"acme.example\"]\ndkim_next_selector = \"s2\"\ndkim_next_algorithm = \"rsa-sha1\"\ndkim_previous_until = \"next week\"\n",
        base()
    );
    let problems = Config::parse(&text, Path::new("/")).unwrap_err();
    let keys: Vec<(&str, usize)> = problems.iter().map(|p| (p.key.as_str(), p.line)).collect();
    assert_eq!(
        keys,
        [
            ("tenants.acme.dkim_next_selector", 7),
            ("tenants.acme.dkim_next_algorithm", 8),
            ("tenants.acme.dkim_previous_until", 9),
        ],
        "{problems:?}"
    );
}

#[test]
fn a_memory_budget_too_small_for_rocksdb_is_named_with_its_line() {
    let text = format!("{}[store]\nmemory_budget = 1048576\n", base());
    let problems = Config::parse(&text, Path::new("/")).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(
        (problems[0].key.as_str(), problems[0].line),
        ("store.memory_budget", 6)
    );
    let ok = text.replace("1048576", "33554432");
    let c = Config::parse(&ok, Path::new("/")).expect("valid");
    assert_eq!(c.store.memory_budget, 32 << 20);
}
