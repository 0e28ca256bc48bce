//! A working unsubscribe: List-Unsubscribe with an https URI in one of the
//! tenant's hosts (RFC 2369), one-click (RFC 8058 §3.1), and the same link
//! visible in the body with short link text.

use crate::policy::message::MessageView;
use crate::policy::{is_same_or_sub, TenantPolicy};

/// Link text of this many characters or more does not fit every mail client.
pub const MAX_LINK_TEXT: usize = 69;

pub fn check(
    policy: &TenantPolicy,
    m: &MessageView,
    push: &mut impl FnMut(&'static str, Option<String>),
) {
    if m.list_unsubscribe.is_empty() {
        push(
            "unsubscribe.header_missing",
            Some("no List-Unsubscribe header (RFC 2369)".into()),
        );
        return;
    }
    let uris = m.unsubscribe_uris();
    let mut https = Vec::new();
    for uri in &uris {
        if uri.to_ascii_lowercase().starts_with("mailto:") {
            continue;
        }
        match url::Url::parse(uri) {
            Err(e) => push(
                "unsubscribe.url_invalid",
                Some(format!("<{uri}> is not a URL ({e})")),
            ),
            Ok(url) if url.scheme() != "https" => push(
                "unsubscribe.url_invalid",
                Some(format!("<{uri}> is not https")),
            ),
            Ok(url) => {
                let host = url.host_str().unwrap_or("").to_ascii_lowercase();
                if policy
                    .unsubscribe_hosts
                    .iter()
                    .any(|h| is_same_or_sub(&host, h))
                {
                    https.push(url);
                } else {
                    push(
                        "unsubscribe.url_invalid",
                        Some(format!(
                            "<{uri}>: host {host} is not one of this account's unsubscribe hosts"
                        )),
                    );
                }
            }
        }
    }
    let any_https = uris
        .iter()
        .any(|u| u.to_ascii_lowercase().starts_with("https:"));
    if !any_https {
        push(
            "unsubscribe.no_https",
            Some("List-Unsubscribe has no https URI; mailto alone does not allow one-click (RFC 8058)".into()),
        );
    }
    let one_click = m
        .list_unsubscribe_post
        .iter()
        .any(|v| v.trim().eq_ignore_ascii_case("List-Unsubscribe=One-Click"));
    if !one_click {
        push(
            "unsubscribe.one_click_missing",
            Some("no List-Unsubscribe-Post: List-Unsubscribe=One-Click (RFC 8058 §3.1)".into()),
        );
    }
    if https.is_empty() {
        return;
    }
    // Only a link that contains a List-Unsubscribe URL's host and path is
    // parsed and compared: a newsletter has hundreds of links to its own
    // host and thousands of words.
    let needles: Vec<String> = https
        .iter()
        .filter_map(|u| {
            let host = u.host_str()?;
            Some(format!("{host}{}", u.path().trim_end_matches('/')).to_ascii_lowercase())
        })
        .collect();
    let matches = |href: &str| {
        let names_host = || {
            let lower = href.to_ascii_lowercase();
            needles.iter().any(|n| lower.contains(n.as_str()))
        };
        (names_host()
            && url::Url::parse(href.trim()).is_ok_and(|h| https.iter().any(|u| same_link(u, &h))))
            || policy
                .unsubscribe_link_patterns
                .iter()
                .any(|p| p.is_match(href))
    };
    let mut missing = Vec::new();
    if m.html_parts > 0 {
        let links: Vec<_> = m.html_links.iter().filter(|l| matches(&l.href)).collect();
        if links.is_empty() {
            missing.push("the HTML part has no <a href> to the List-Unsubscribe URL");
        }
        for link in links {
            let len = link.text.chars().count();
            if len >= MAX_LINK_TEXT {
                push(
                    "unsubscribe.link_text_too_long",
                    Some(format!("the unsubscribe link text has {len} characters; keep it under {MAX_LINK_TEXT}")),
                );
                break;
            }
            if len == 0 {
                missing.push("the HTML unsubscribe link has no visible text");
            }
        }
    }
    for text in &m.text_bodies {
        let found = text
            .split(|c: char| c.is_whitespace() || c == '<' || c == '>' || c == '"')
            .filter(|w| w.contains("://"))
            .any(matches);
        if !found {
            missing.push("the text part does not show the List-Unsubscribe URL");
            break;
        }
    }
    if m.html_parts == 0 && m.text_bodies.is_empty() {
        missing.push("the message has no body to show an unsubscribe link in");
    }
    if !missing.is_empty() {
        push("unsubscribe.body_link_missing", Some(missing.join("; ")));
    }
}

/// The same link: scheme, host, path and query equal (a trailing slash and the
/// fragment do not count).
fn same_link(a: &url::Url, b: &url::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
        && a.path().trim_end_matches('/') == b.path().trim_end_matches('/')
        && a.query() == b.query()
}
