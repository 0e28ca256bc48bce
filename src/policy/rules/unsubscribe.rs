//! A working unsubscribe: List-Unsubscribe with an https URI in one of the
//! tenant's hosts (RFC 2369), one-click (RFC 8058 §3.1), and the same link
//! visible in the body with short link text.

use crate::policy::html::{Document, Seen};
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
    let finders: Vec<memchr::memmem::Finder> = needles
        .iter()
        .map(|n| memchr::memmem::Finder::new(n.as_bytes()))
        .collect();
    // One buffer for the lower-cased links, not an allocation per link.
    let mut lower = Vec::new();
    let mut matches = |href: &str| {
        lower.clear();
        lower.extend(href.bytes().map(|b| b.to_ascii_lowercase()));
        (finders.iter().any(|f| f.find(&lower).is_some())
            && url::Url::parse(href.trim()).is_ok_and(|h| https.iter().any(|u| same_link(u, &h))))
            || policy
                .unsubscribe_link_patterns
                .iter()
                .any(|p| p.is_match(href))
    };
    let mut missing = Vec::new();
    for (i, part) in m.html.iter().enumerate() {
        let which = if m.html.len() > 1 {
            format!("HTML part {}", i + 1)
        } else {
            "the HTML part".to_string()
        };
        html_part(part, &which, &mut matches, push, &mut missing);
    }
    for text in &m.text_bodies {
        let found = if policy.unsubscribe_link_patterns.is_empty() {
            // Only a word that contains a needle can match: look for the
            // needles in the text rather than at each of its links.
            let lower_text = text.to_ascii_lowercase();
            finders.iter().any(|f| {
                f.find_iter(lower_text.as_bytes()).any(|at| {
                    let word = word_around(text, at);
                    word.contains("://") && matches(word)
                })
            })
        } else {
            url_words(text).any(&mut matches)
        };
        if !found {
            missing.push("the text part does not show the List-Unsubscribe URL".to_string());
            break;
        }
    }
    if m.html.is_empty() && m.text_bodies.is_empty() {
        missing.push("the message has no body to show an unsubscribe link in".to_string());
    }
    if !missing.is_empty() {
        push("unsubscribe.body_link_missing", Some(missing.join("; ")));
    }
}

/// The unsubscribe link of one HTML part: present, with text, seen in every
/// view; else what is wrong goes to `missing` (no link, no text) or is
/// pushed as `unsubscribe.link_hidden`.
fn html_part(
    part: &str,
    which: &str,
    matches: &mut impl FnMut(&str) -> bool,
    push: &mut impl FnMut(&'static str, Option<String>),
    missing: &mut Vec<String>,
) {
    let doc = Document::parse(part);
    let links: Vec<_> = doc.links().filter(|l| matches(l.href())).collect();
    if links.is_empty() {
        // Written where nothing is a link: say so, rather than "missing".
        let unshown = doc.unshown_texts().find(|(_, text)| {
            url_words(text).any(|w| matches(w.rsplit_once('=').map_or(w, |(_, url)| url)))
        });
        match unshown {
            Some((place, _)) => push(
                "unsubscribe.link_hidden",
                Some(format!(
                    "in {which}, the unsubscribe link is only inside {place}, which is not shown as a link"
                )),
            ),
            None => missing.push(format!("{which} has no <a href> to the List-Unsubscribe URL")),
        }
        return;
    }
    for link in &links {
        let len = link.text().chars().count();
        if len >= MAX_LINK_TEXT {
            push(
                "unsubscribe.link_text_too_long",
                Some(format!(
                    "the unsubscribe link text has {len} characters; keep it under {MAX_LINK_TEXT}"
                )),
            );
            return;
        }
    }
    // In each view (desktop, phone, dark mode) some unsubscribe link must
    // show: a desktop footer and a phone footer that each hide the other
    // are fine.
    for view in doc.views() {
        let seen: Vec<Seen> = links.iter().map(|l| doc.seen_in(l, *view)).collect();
        if seen.contains(&Seen::Visible) {
            continue;
        }
        match seen.into_iter().find_map(|s| match s {
            Seen::Hidden(why) => Some(why),
            _ => None,
        }) {
            Some(why) => push(
                "unsubscribe.link_hidden",
                Some(format!(
                    "in {which}, the unsubscribe link cannot be seen: {why}"
                )),
            ),
            None => missing.push(format!(
                "the unsubscribe link in {which} has no visible text"
            )),
        }
        return;
    }
}

/// Where words of a text part end: white space, `<`, `>` and `"`.
fn delimiter(c: char) -> bool {
    c.is_whitespace() || c == '<' || c == '>' || c == '"'
}

/// The word of `text` around byte `at` (a character boundary), as
/// [`url_words`] splits them.
fn word_around(text: &str, at: usize) -> &str {
    &text[word_range(text, at)]
}

/// Where the word around byte `at` starts and ends (empty if `at` is inside
/// a character).
fn word_range(text: &str, at: usize) -> std::ops::Range<usize> {
    if !text.is_char_boundary(at) {
        return 0..0;
    }
    let start = text[..at]
        .char_indices()
        .rev()
        .find(|&(_, c)| delimiter(c))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let end = text[at..].find(delimiter).map_or(text.len(), |e| at + e);
    start..end
}

/// The words of `text` (split at white space, `<`, `>` and `"`) that contain
/// `://`: found from each `://` outwards, rather than by splitting the whole
/// text into words, which took most of the rules' time for a long newsletter.
fn url_words(text: &str) -> impl Iterator<Item = &str> {
    let mut word_end = 0;
    text.match_indices("://").filter_map(move |(at, _)| {
        if at < word_end {
            return None; // a second `://` in the word just given
        }
        let word = word_range(text, at);
        word_end = word.end;
        Some(&text[word])
    })
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

#[cfg(test)]
mod tests {
    use super::{url_words, word_around};

    #[test]
    fn url_words_are_the_words_with_a_scheme() {
        let text = "Unsubscribe: https://u.test/a?x=1 or <https://u.test/b>\n\
                    \u{a0}x://y://z \"mailto:no\" ://bare end://";
        let words: Vec<_> = url_words(text).collect();
        assert_eq!(
            words,
            [
                "https://u.test/a?x=1",
                "https://u.test/b",
                "x://y://z",
                "://bare",
                "end://"
            ]
        );
        assert_eq!(url_words("no links here").count(), 0);
        assert_eq!(url_words("é://ü").collect::<Vec<_>>(), ["é://ü"]);
        assert_eq!(word_around("a <https://x.test/u>", 11), "https://x.test/u");
        assert_eq!(word_around("x.test", 0), "x.test");
        assert_eq!(word_around("é", 1), "");
    }

    #[test]
    fn random_text_never_breaks_the_word_scan() {
        const PIECES: [&str; 10] = [
            "https://U.test/x",
            "://",
            "é",
            "<",
            ">",
            "\"",
            " ",
            "\u{a0}",
            "a",
            ":/",
        ];
        for text in crate::values::random::random_strings(&PIECES, 11, 5_000, 16) {
            for word in url_words(&text) {
                assert!(word.contains("://"), "{text:?}: {word:?}");
            }
            for at in 0..=text.len() {
                let _ = word_around(&text, at);
            }
        }
    }
}
