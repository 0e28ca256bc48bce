//! What a key left out of the file means. The shipped `conf/postwarden.toml`
//! spells the same values out with their reasons.

use std::collections::BTreeMap;

use super::schema::*;

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            backend: StoreBackend::Rocksdb,
            url: None,
            pool_size: 8,
            timeout: 5,
            // Raise it in a fleet, where a miss is a round trip to PostgreSQL.
            cache_entries: 50_000,
            // 64 MiB of memtables and an 8 MiB block cache: what a spool
            // under load fills (bench/README.md, memory by part).
            memory_budget: 72 << 20,
            ca: None,
        }
    }
}

const DAY: u64 = 86_400;

impl Default for Retention {
    fn default() -> Self {
        Retention {
            // ARF reports and late bounces come days or weeks after the
            // message; 90 days covers the slowest feedback loops.
            tracking: 90 * DAY,
            feedback_marks: 90 * DAY,
            // A month for a CRM to read them again over the API after its
            // webhook took them; three months even when it never answers.
            events: 30 * DAY,
            events_max: 90 * DAY,
            abuse_cases: 180 * DAY,
            tenant_history_days: 400,
            // A confirmation link works for a week (confirm_token_ttl); a
            // sign-up not confirmed within a month will not be.
            unconfirmed: 30 * DAY,
            interval: 3600,
            batch: 10_000,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line_length: 2048,
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 1000,
            max_errors: 10,
            idle_timeout: 300,
            data_timeout: 180,
            max_connections: 1000,
            max_connections_per_ip: 100,
            max_auth_failures: 5,
            auth_lockout: 300,
            allow_plaintext_auth_on_loopback: true,
            shutdown_grace: 30,
            min_free_space: None,
            confirm_limit_per_address_site: 10,
        }
    }
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            relay_host: None,
            routes: BTreeMap::new(),
            nameservers: Vec::new(),
            max_connections_per_domain: 10,
            max_messages_per_connection: 100,
            retry_base: 300,
            retry_max: 3600,
            expiry: 5 * 86400,
            connect_timeout: 30,
            command_timeout: 300,
            require_tls: Vec::new(),
            mx_port: 25,
            shaping: None,
            sources: BTreeMap::new(),
        }
    }
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings {
            deceptive_subjects: Vec::new(),
            builtin_deceptive_subjects: true,
            protected_names: Vec::new(),
            builtin_protected_names: true,
            authentication_recheck: 3600,
        }
    }
}

/// A tenant's `soft_bounce_window` when it sets none: 30 days, in seconds.
pub const DEFAULT_SOFT_BOUNCE_WINDOW: u64 = 30 * 86400;

/// A tenant's `suspension_window_days` when it sets none.
pub const DEFAULT_SUSPENSION_WINDOW_DAYS: u64 = 7;

impl Default for TenantConfig {
    fn default() -> Self {
        TenantConfig {
            smtp_password_hash: None,
            sender_domains: Vec::new(),
            sources: Vec::new(),
            warmup: true,
            policy: "strict".into(),
            rules: BTreeMap::new(),
            allowed_consent: Vec::new(),
            unsubscribe_hosts: Vec::new(),
            unsubscribe: UnsubscribeMode::Own,
            unsubscribe_footer: None,
            default_list: None,
            allow_transactional: false,
            trusted_networks: Vec::new(),
            check_reply_to: true,
            check_sender: true,
            deceptive_subjects: Vec::new(),
            protected_names: Vec::new(),
            hard_bounce_limit: 1,
            soft_bounce_limit: 5,
            soft_bounce_window: DEFAULT_SOFT_BOUNCE_WINDOW,
            dkim_selector: None,
            dkim_key: None,
            dkim_algorithm: "rsa-sha256".into(),
            dkim_domain: None,
            dkim_next_selector: None,
            dkim_next_key: None,
            dkim_next_algorithm: None,
            dkim_previous_selector: None,
            dkim_previous_until: None,
            unsubscribe_link_patterns: Vec::new(),
            confirm_from: None,
            confirm_subject: None,
            confirm_template: None,
            confirm_token_ttl: 7 * 86400,
            confirm_limit_per_address: 3,
            confirm_limit_per_ip: 20,
            consent: ConsentWording::default(),
            privacy_url: None,
            form_origins: Vec::new(),
            require_form_token: true,
            form_min_seconds: 3,
            form_max_age: 86400,
            human_check_url: None,
            human_check_secret: None,
            human_check_field: "captcha_response".into(),
            pages_dir: None,
            api_token_sha256: Vec::new(),
            max_contacts: None,
            quota_change_reason: None,
            complaint_rate_limit: 0.003,
            complaint_min_deliveries: 1000,
            suspension_window_days: DEFAULT_SUSPENSION_WINDOW_DAYS,
            max_policy_rejections: None,
            webhook_url: None,
            webhook_secret: None,
            webhook_retry_base: 5,
            bounce_notify: None,
        }
    }
}

impl TenantConfig {
    /// The tenant's `soft_bounce_window`, or the default for a tenant no
    /// longer configured.
    pub fn soft_bounce_window_of(tenant: Option<&TenantConfig>) -> u64 {
        tenant.map_or(DEFAULT_SOFT_BOUNCE_WINDOW, |t| t.soft_bounce_window)
    }

    /// The tenant's `suspension_window_days`, or the default for a tenant no
    /// longer configured.
    pub fn suspension_window_of(tenant: Option<&TenantConfig>) -> u64 {
        tenant.map_or(DEFAULT_SUSPENSION_WINDOW_DAYS, |t| t.suspension_window_days)
    }
}
