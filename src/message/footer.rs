//! The unsubscribe footer of managed mode: appended to every text and HTML
//! body part of a recipient's copy.
//!
//! Written by hand on top of mail-parser's part offsets: mail-parser only
//! reads, and rebuilding the message with a builder crate would re-encode
//! every part and lose the sender's structure. Here only the body parts
//! change: each is decoded, gets the footer, and is written back as UTF-8
//! base64 with its other headers kept; everything else stays byte for byte.

use base64::Engine;
use mail_parser::{MessageParser, PartType};

/// The default footer; `{url}` is the recipient's one-click link.
pub const DEFAULT_FOOTER: &str = "To stop receiving these emails, unsubscribe here: {url}";

/// The message with `template` (its `{url}` replaced by `url`) appended to
/// each text and HTML body part; None when it has no such part or cannot be
/// parsed (the copy then goes out with the headers alone).
pub fn append(message: &[u8], template: &str, url: &str) -> Option<Vec<u8>> {
    let parsed = MessageParser::default().parse(message)?;
    let mut ids: Vec<u32> = parsed
        .text_body
        .iter()
        .chain(&parsed.html_body)
        .copied()
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut edits = Vec::new();
    for id in ids {
        let part = parsed.parts.get(id as usize)?;
        let (text, html) = match &part.body {
            PartType::Text(t) => (t.as_ref(), false),
            PartType::Html(t) => (t.as_ref(), true),
            _ => continue,
        };
        let (start, body, end) = (
            part.offset_header as usize,
            part.offset_body as usize,
            part.offset_end as usize,
        );
        let headers = message.get(start..body)?;
        let new_body = if html {
            with_html_footer(text, template, url)
        } else {
            format!(
                "{}\n\n{}\n",
                text.trim_end(),
                template.replace("{url}", url)
            )
        };
        let mut replacement = rewrite_headers(headers, html, id == 0 && !has_mime_version(&parsed));
        replacement.extend_from_slice(&encode_base64_lines(&new_body));
        edits.push((start, end, replacement));
    }
    if edits.is_empty() {
        return None;
    }
    // Back to front, so earlier offsets stay valid.
    let mut out = message.to_vec();
    for (start, end, replacement) in edits.into_iter().rev() {
        if start > end || end > out.len() {
            return None;
        }
        out.splice(start..end, replacement);
    }
    Some(out)
}

fn has_mime_version(m: &mail_parser::Message) -> bool {
    m.header_raw("MIME-Version").is_some()
}

/// The footer before `</body>` when there is one, else at the end.
fn with_html_footer(html: &str, template: &str, url: &str) -> String {
    let escaped_url = html_escape::encode_double_quoted_attribute(url);
    let text = html_escape::encode_text(template).replace(
        "{url}",
        &format!("<a href=\"{escaped_url}\">unsubscribe</a>"),
    );
    let footer = format!("<p style=\"font-size:small;color:#666\">{text}</p>");
    match html.to_ascii_lowercase().rfind("</body>") {
        Some(pos) => format!("{}{footer}\n{}", &html[..pos], &html[pos..]),
        None => format!("{html}\n{footer}\n"),
    }
}

/// The part's header block with its Content-Type and Content-Transfer-Encoding
/// replaced by UTF-8 base64 ones.
fn rewrite_headers(headers: &[u8], html: bool, add_mime_version: bool) -> Vec<u8> {
    let mut kept = super::strip_headers(headers, &["content-type", "content-transfer-encoding"]);
    // Drop the blank line that ends the block; it comes back below.
    if kept.ends_with(b"\r\n\r\n") || kept == b"\r\n" {
        kept.truncate(kept.len() - 2);
    }
    if add_mime_version {
        kept.extend_from_slice(b"MIME-Version: 1.0\r\n");
    }
    let kind = if html { "html" } else { "plain" };
    kept.extend_from_slice(
        format!(
            "Content-Type: text/{kind}; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        )
        .as_bytes(),
    );
    kept
}

/// Base64 in lines of 76 characters (RFC 2045 §6.8), CRLF line ends in the text.
fn encode_base64_lines(text: &str) -> Vec<u8> {
    let canonical = text.replace("\r\n", "\n").replace('\n', "\r\n");
    let encoded = base64::engine::general_purpose::STANDARD.encode(canonical.as_bytes());
    let mut out = Vec::with_capacity(encoded.len() + encoded.len() / 76 * 2 + 2);
    for chunk in encoded.as_bytes().chunks(76) {
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://mta.test/u/0ABC-1-abcdef";

    fn parse(m: &[u8]) -> mail_parser::Message<'_> {
        MessageParser::default().parse(m).unwrap()
    }

    #[test]
    fn a_single_text_part_gets_the_footer_and_keeps_its_headers() {
        let msg = b"From: a@acme.example\r\nSubject: Hi\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe\r\n";
        let out = append(msg, DEFAULT_FOOTER, URL).unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with("From: a@acme.example\r\nSubject: Hi\r\n"),
            "{text}"
        );
        assert!(text.contains("MIME-Version: 1.0\r\n"));
        let m = parse(&out);
        let body = m.body_text(0).unwrap();
        assert!(body.starts_with("Grüße"), "{body}");
        assert!(body.contains(URL), "{body}");
    }

    #[test]
    fn both_alternatives_get_it_and_attachments_stay_untouched() {
        let msg = b"From: a@acme.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"m\"\r\n\r\n--m\r\nContent-Type: multipart/alternative; boundary=\"a\"\r\n\r\n--a\r\nContent-Type: text/plain\r\n\r\nHello\r\n--a\r\nContent-Type: text/html\r\n\r\n<html><body><p>Hello</p></BODY></html>\r\n--a--\r\n--m\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--m--\r\n";
        let out = append(msg, DEFAULT_FOOTER, URL).unwrap();
        let m = parse(&out);
        assert!(m.body_text(0).unwrap().contains(URL));
        let html = m.body_html(0).unwrap();
        let footer = html.find("unsubscribe</a>").expect("html footer");
        assert!(footer < html.find("</BODY>").unwrap(), "{html}");
        assert!(html.contains(&format!("href=\"{URL}\"")));
        assert_eq!(m.attachment_count(), 1);
        assert_eq!(m.attachment(0).unwrap().contents(), b"%PDF-");
        assert_eq!(
            String::from_utf8_lossy(&out).matches("--m").count(),
            String::from_utf8_lossy(msg).matches("--m").count()
        );
    }

    #[test]
    fn a_custom_template_is_used_and_html_escaped() {
        let msg = b"From: a@acme.example\r\nContent-Type: text/html\r\n\r\n<p>Hi</p>\r\n";
        let out = append(msg, "Abmelden <hier>: {url}", URL).unwrap();
        let html = parse(&out).body_html(0).unwrap().into_owned();
        assert!(html.contains("Abmelden &lt;hier&gt;: <a href="), "{html}");
    }
}
