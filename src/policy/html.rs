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

static ANCHOR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?is)<a\b([^>]*)>(.*?)</a\s*>"#).expect("static regex"));
static HREF: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?is)(?:^|\s)href\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))"#)
        .expect("static regex")
});
static TAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?s)<[^>]*>").expect("static regex"));

pub fn links(html: &str) -> Vec<Link> {
    let mut out = Vec::new();
    for anchor in ANCHOR.captures_iter(html) {
        let attrs = anchor.get(1).map_or("", |m| m.as_str());
        let Some(href) = HREF.captures(attrs).and_then(|c| {
            c.get(1)
                .or_else(|| c.get(2))
                .or_else(|| c.get(3))
                .map(|m| m.as_str())
        }) else {
            continue;
        };
        let inner = anchor.get(2).map_or("", |m| m.as_str());
        let text = TAG.replace_all(inner, " ");
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
}
