//! Link extraction from HTML bodies: the href and the visible text of every
//! `<a>` element, with entities decoded.
//!
//! A full HTML parser (html5ever) is a large dependency for one question, and
//! mail HTML rarely nests anchors; this scanner handles the forms newsletters
//! use: quoted and unquoted attributes, any case, attributes before href,
//! markup inside the link text, and character references.

use std::sync::LazyLock;

use regex::Regex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub href: String,
    /// The text a reader sees: tags removed, entities decoded, white space collapsed.
    pub text: String,
}

static HREF: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?is)(?:^|\s)href\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))"#)
        .expect("static regex")
});
static TAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?s)<[^>]*>").expect("static regex"));

/// Whether the byte after a tag name ends it (`<a href`, `<a>`, not `<abbr`).
fn ends_name(lower: &[u8], at: usize) -> bool {
    lower
        .get(at)
        .is_some_and(|b| b.is_ascii_whitespace() || *b == b'>' || *b == b'/')
}

/// The `<a ...>` elements: (attributes, inner HTML). A scan with `find`
/// rather than one regex with a lazy group, which costs a capture engine run
/// over the whole body per link (measured: the regex took most of the policy
/// check of a 50 KB newsletter).
fn anchors(html: &str) -> Vec<(&str, &str)> {
    // ASCII lower-casing keeps every byte offset, so offsets into `lower`
    // are offsets into `html`, and they fall on ASCII characters.
    let lower = html.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(i) = lower[pos..].find("<a") {
        let start = pos + i;
        pos = start + 2;
        if !ends_name(bytes, pos) {
            continue;
        }
        let Some(gt) = lower[pos..].find('>') else {
            break;
        };
        let attrs = &html[pos..pos + gt];
        let body_start = pos + gt + 1;
        let mut search = body_start;
        let close = loop {
            match lower[search..].find("</a") {
                Some(j) if ends_name(bytes, search + j + 3) => break Some(search + j),
                Some(j) => search += j + 3,
                None => break None,
            }
        };
        let Some(close) = close else {
            break;
        };
        out.push((attrs, &html[body_start..close]));
        pos = close + 3;
    }
    out
}

pub fn links(html: &str) -> Vec<Link> {
    let mut out = Vec::new();
    for (attrs, inner) in anchors(html) {
        let Some(href) = HREF.captures(attrs).and_then(|c| {
            c.get(1)
                .or_else(|| c.get(2))
                .or_else(|| c.get(3))
                .map(|m| m.as_str())
        }) else {
            continue;
        };
        let text = if inner.contains('<') {
            TAG.replace_all(inner, " ")
        } else {
            std::borrow::Cow::Borrowed(inner)
        };
        let text = html_escape::decode_html_entities(&text);
        let text = text
            .split(|c: char| c.is_whitespace() || c == '\u{a0}')
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        out.push(Link {
            href: html_escape::decode_html_entities(href.trim()).into_owned(),
            text,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_found_in_the_forms_newsletters_use() {
        let html = r#"<p>Hi <A class="x" HREF='https://u.test/a?x=1&amp;y=2'><b>Unsub&shy;scribe</b>
            here</A> <a href=https://u.test/b>b</a> <a name="top">no href</a></p>"#;
        let links = links(html);
        assert_eq!(links.len(), 2);
        assert_eq!(links[0].href, "https://u.test/a?x=1&y=2");
        assert_eq!(links[0].text, "Unsub\u{ad}scribe here");
        assert_eq!(links[1].href, "https://u.test/b");
    }

    #[test]
    fn other_tags_starting_with_a_are_not_links() {
        let html =
            r#"<abbr>x</abbr><a href="https://u.test/c">c <abbr>y</abbr> d</a ><area href="z">"#;
        let links = links(html);
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].href, "https://u.test/c");
        assert_eq!(links[0].text, "c y d");
        assert!(super::links("<a href=x>unclosed").is_empty());
    }
}
