//! Link extraction from HTML bodies: the href and the visible text of every
//! `<a>` element, with entities decoded.
//!
//! A full HTML parser (html5ever) is a large dependency for one question, and
//! mail HTML rarely nests anchors; this scanner handles the forms newsletters
//! use: quoted and unquoted attributes, any case, attributes before href,
//! markup inside the link text, and character references.

use std::borrow::Cow;
use std::ops::Range;

/// One `<a href>` element of an HTML part, as byte ranges into the part: a
/// newsletter has hundreds of links and the rules look closely at one or two,
/// so nothing is decoded or allocated per link until a rule asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    href: Range<usize>,
    inner: Range<usize>,
}

impl Link {
    /// The href, trimmed, character references decoded.
    pub fn href<'a>(&self, html: &'a str) -> Cow<'a, str> {
        decode_entities(html.get(self.href.clone()).unwrap_or_default())
    }

    /// The text a reader sees: tags removed, entities decoded, white space
    /// collapsed.
    pub fn text(&self, html: &str) -> String {
        let inner = html.get(self.inner.clone()).unwrap_or_default();
        collapse_space(&decode_entities(&strip_tags(inner)))
    }
}

/// Whether the byte after a tag name ends it (`<a href`, `<a>`, not `<abbr`).
fn ends_name(bytes: &[u8], at: usize) -> bool {
    bytes
        .get(at)
        .is_some_and(|b| b.is_ascii_whitespace() || *b == b'>' || *b == b'/')
}

/// Whether `bytes[at..]` starts with `<a` or `</a` (`tag`, any case) and the
/// tag name ends there.
fn tag_at(bytes: &[u8], at: usize, tag: &[u8]) -> bool {
    bytes
        .get(at..at + tag.len())
        .is_some_and(|b| b.eq_ignore_ascii_case(tag))
        && ends_name(bytes, at + tag.len())
}

/// The `<a ...>` elements: (attributes, inner HTML). A scan from `<` to `<`
/// (memchr) rather than one regex with a lazy group, which costs a capture
/// engine run over the whole body per link (measured: the regex took most of
/// the policy check of a 50 KB newsletter). Offsets found are of ASCII bytes,
/// so every slice falls on character boundaries.
fn anchors(html: &str) -> Vec<(&str, &str)> {
    let bytes = html.as_bytes();
    // The next `<` at or after `from` that opens the tag `tag`.
    let find_tag = |mut from: usize, tag: &[u8]| loop {
        let i = from + memchr::memchr(b'<', bytes.get(from..)?)?;
        if tag_at(bytes, i, tag) {
            return Some(i);
        }
        from = i + 1;
    };
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(start) = find_tag(pos, b"<a") {
        let attrs_start = start + 2;
        let Some(gt) = memchr::memchr(b'>', &bytes[attrs_start..]) else {
            break;
        };
        let body_start = attrs_start + gt + 1;
        let Some(close) = find_tag(body_start, b"</a") else {
            break;
        };
        out.push((
            &html[attrs_start..attrs_start + gt],
            &html[body_start..close],
        ));
        pos = close + 3;
    }
    out
}

/// The value of the first `href` attribute among `attrs` (the text between
/// the tag name and `>`): quoted with `"` or `'`, or unquoted up to white
/// space. An attribute scan rather than a regex: a capturing regex per link
/// was the larger part of the policy check of a 50 KB newsletter, and a scan
/// also never takes `href=` inside another attribute's quoted value.
fn href_of(attrs: &str) -> Option<&str> {
    let bytes = attrs.as_bytes();
    let mut i = 0;
    let skip_space = |mut i: usize| {
        while bytes.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
            i += 1;
        }
        i
    };
    while i < bytes.len() {
        i = skip_space(i);
        if bytes.get(i) == Some(&b'/') {
            i += 1;
            continue;
        }
        let name_start = i;
        while bytes
            .get(i)
            .is_some_and(|b| !b.is_ascii_whitespace() && *b != b'=' && *b != b'/')
        {
            i += 1;
        }
        let name = &attrs[name_start..i];
        let after_name = skip_space(i);
        if bytes.get(after_name) != Some(&b'=') {
            // An attribute without a value (`<a download href=...>`).
            if name.is_empty() {
                i += 1;
            }
            continue;
        }
        i = skip_space(after_name + 1);
        let value = match bytes.get(i) {
            Some(&q) if q == b'"' || q == b'\'' => {
                let end = attrs[i + 1..]
                    .find(q as char)
                    .map_or(attrs.len(), |e| i + 1 + e);
                let value = &attrs[i + 1..end];
                i = end + 1;
                value
            }
            Some(_) => {
                let start = i;
                while bytes.get(i).is_some_and(|b| !b.is_ascii_whitespace()) {
                    i += 1;
                }
                &attrs[start..i]
            }
            None => "",
        };
        if name.eq_ignore_ascii_case("href") && !value.is_empty() {
            return Some(value);
        }
    }
    None
}

/// Markup removed: every `<...>` becomes a space (an unclosed `<` and what
/// follows it stay, as text).
fn strip_tags(inner: &str) -> Cow<'_, str> {
    if !inner.contains('<') {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut rest = inner;
    while let Some(lt) = rest.find('<') {
        let Some(gt) = rest[lt..].find('>') else {
            break;
        };
        out.push_str(&rest[..lt]);
        out.push(' ');
        rest = &rest[lt + gt + 1..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// White space (and no-break spaces) collapsed to single spaces, trimmed.
fn collapse_space(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text
        .split(|c: char| c.is_whitespace() || c == '\u{a0}')
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Character references decoded; a memchr for `&` first, as most link texts
/// and hrefs have none and html-escape looks for one byte by byte.
fn decode_entities(text: &str) -> Cow<'_, str> {
    if memchr::memchr(b'&', text.as_bytes()).is_none() {
        return Cow::Borrowed(text);
    }
    html_escape::decode_html_entities(text)
}

/// The `<a>` elements of `html` that have an href.
pub fn links(html: &str) -> Vec<Link> {
    let offset = |part: &str| part.as_ptr() as usize - html.as_ptr() as usize;
    anchors(html)
        .into_iter()
        .filter_map(|(attrs, inner)| {
            let href = href_of(attrs)?.trim();
            Some(Link {
                href: offset(href)..offset(href) + href.len(),
                inner: offset(inner)..offset(inner) + inner.len(),
            })
        })
        .collect()
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
        assert_eq!(links[0].href(html), "https://u.test/a?x=1&y=2");
        assert_eq!(links[0].text(html), "Unsub\u{ad}scribe here");
        assert_eq!(links[1].href(html), "https://u.test/b");
    }

    #[test]
    fn other_tags_starting_with_a_are_not_links() {
        let html =
            r#"<abbr>x</abbr><a href="https://u.test/c">c <abbr>y</abbr> d</a ><area href="z">"#;
        let links = links(html);
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].href(html), "https://u.test/c");
        assert_eq!(links[0].text(html), "c y d");
        assert!(super::links("<a href=x>unclosed").is_empty());
    }

    #[test]
    fn href_is_read_as_an_attribute() {
        assert_eq!(href_of(r#" title="see href=no" href="yes""#), Some("yes"));
        assert_eq!(href_of(" download HREF = 'q r' "), Some("q r"));
        assert_eq!(href_of(r#" data-href="no" href=yes/x"#), Some("yes/x"));
        assert_eq!(href_of(r#" href="" "#), None);
        assert_eq!(href_of(r#" href="unterminated"#), Some("unterminated"));
        assert_eq!(href_of(" name=top"), None);
        assert_eq!(href_of(" = = href"), None);
        assert_eq!(strip_tags("a <b>c</b> <unclosed"), "a  c  <unclosed");
        assert_eq!(collapse_space("  a \u{a0}b\n\tc "), "a b c");
    }

    /// Markup made of the pieces the scanner decides on, in random order:
    /// every link found must slice the input on character boundaries, and
    /// reading it must not panic.
    #[test]
    fn random_markup_never_breaks_the_scanner() {
        const PIECES: [&str; 16] = [
            "<a", "<A ", "</a", "</A>", ">", " href", "HREF=", "=", "\"", "'", " ", "&amp;", "é",
            "/", "x://y", "\u{a0}",
        ];
        for html in crate::values::random::random_strings(&PIECES, 7, 20_000, 24) {
            for link in links(&html) {
                assert!(html.get(link.href.clone()).is_some(), "{html:?}");
                assert!(html.get(link.inner.clone()).is_some(), "{html:?}");
                let _ = (link.href(&html), link.text(&html));
            }
        }
    }
}
