//! The view of a message that the policy rules read: headers decoded once by
//! mail-parser (RFC 2047 encoded words, folding, repeated fields), bodies as
//! text. HTML is parsed only by the rule that reads it (the unsubscribe
//! link's), so transactional mail and rules that stop early pay nothing.

use mail_parser::{HeaderValue, MessageParser, MimeHeaders, PartType};

/// One mailbox of an address header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub name: Option<String>,
    pub address: Option<String>,
}

/// What the rules need of a message, extracted once.
#[derive(Debug, Clone, Default)]
pub struct MessageView {
    /// Every From field, each with its mailboxes (a From with a group or an
    /// unparsable value has no mailboxes).
    pub from: Vec<Vec<Mailbox>>,
    pub reply_to: Vec<Mailbox>,
    pub sender: Vec<Mailbox>,
    /// Decoded Subject fields.
    pub subjects: Vec<String>,
    /// Raw List-Unsubscribe fields, unfolded.
    pub list_unsubscribe: Vec<String>,
    pub list_unsubscribe_post: Vec<String>,
    /// The list id inside the angle brackets of List-Id (RFC 2919).
    pub list_id: Option<String>,
    pub has_in_reply_to: bool,
    pub has_references: bool,
    pub message_id: Option<String>,
    pub has_date: bool,
    /// The value of X-Postwarden-Class, lower case.
    pub class: Option<String>,
    /// The value of X-Postwarden-Skip-Soft-Bounces, trimmed: the mailing
    /// skips recipients with at least that many soft bounces.
    pub skip_soft_bounces: Option<String>,
    /// The HTML parts (not attachments), as text.
    pub html: Vec<String>,
    pub text_bodies: Vec<String>,
}

impl MessageView {
    /// Parses `raw`; a message mail-parser cannot read at all gives an empty
    /// view, which then fails the From and Subject rules.
    pub fn parse(raw: &[u8]) -> MessageView {
        let Some(message) = MessageParser::default().parse(raw) else {
            return MessageView::default();
        };
        let mut view = MessageView::default();
        for header in message.headers() {
            let name = header.name.as_str();
            let raw_value = || {
                raw.get(header.offset_start as usize..header.offset_end as usize)
                    .map(|b| unfold(&String::from_utf8_lossy(b)))
                    .unwrap_or_default()
            };
            match name.to_ascii_lowercase().as_str() {
                "from" => view.from.push(mailboxes(&header.value)),
                "reply-to" => view.reply_to.extend(mailboxes(&header.value)),
                "sender" => view.sender.extend(mailboxes(&header.value)),
                "subject" => view.subjects.push(match &header.value {
                    HeaderValue::Text(t) => t.to_string(),
                    HeaderValue::TextList(l) => l.join(" "),
                    _ => String::new(),
                }),
                "list-unsubscribe" => view.list_unsubscribe.push(raw_value()),
                "list-unsubscribe-post" => view.list_unsubscribe_post.push(raw_value()),
                "list-id" => view.list_id = list_id(&raw_value()),
                "in-reply-to" => view.has_in_reply_to = true,
                "references" => view.has_references = true,
                "message-id" => view.message_id = Some(raw_value().trim().to_string()),
                "date" => view.has_date = true,
                "x-postwarden-class" => view.class = Some(raw_value().trim().to_lowercase()),
                "x-postwarden-skip-soft-bounces" => {
                    view.skip_soft_bounces = Some(raw_value().trim().to_string())
                }
                _ => {}
            }
        }
        for part in message.parts {
            // Attachments are not what a reader sees as the message body.
            if part.attachment_name().is_some() {
                continue;
            }
            match part.body {
                PartType::Html(html) => view.html.push(html.into_owned()),
                PartType::Text(text) => view.text_bodies.push(text.into_owned()),
                _ => {}
            }
        }
        view
    }

    pub fn is_transactional(&self) -> bool {
        self.class.as_deref() == Some("transactional")
    }

    /// The URIs of all List-Unsubscribe fields (RFC 2369 §2: `<uri>, <uri>`).
    pub fn unsubscribe_uris(&self) -> Vec<String> {
        let mut out = Vec::new();
        for field in &self.list_unsubscribe {
            let mut rest = field.as_str();
            while let Some(start) = rest.find('<') {
                let Some(len) = rest[start + 1..].find('>') else {
                    break;
                };
                out.push(rest[start + 1..start + 1 + len].trim().to_string());
                rest = &rest[start + 1 + len + 1..];
            }
        }
        out
    }
}

fn mailboxes(value: &HeaderValue<'_>) -> Vec<Mailbox> {
    match value {
        HeaderValue::Address(addr) => addr
            .iter()
            .map(|a| Mailbox {
                name: a.name.as_ref().map(|n| n.to_string()),
                address: a.address.as_ref().map(|n| n.to_string()),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// RFC 5322 §2.2.3 unfolding: CRLF followed by white space is white space.
fn unfold(value: &str) -> String {
    value.replace("\r\n", "").replace('\n', "")
}

/// The list id of a `List-Id` value (RFC 2919 §3: `phrase <list-id>`), also
/// in the forms mail libraries write: a URL (`"News" <http://news.example>`,
/// scheme and a trailing slash dropped) and a bare id without the brackets
/// (`news.example`, or `News news.example`: the last word).
pub fn list_id(value: &str) -> Option<String> {
    let inner = match (value.rfind('<'), value.rfind('>')) {
        (Some(a), Some(b)) if a < b => value[a + 1..b].trim(),
        _ => value.split_whitespace().last().unwrap_or(""),
    };
    let without_scheme = match inner.split_once("://") {
        Some((scheme, rest))
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
        {
            rest
        }
        _ => inner,
    };
    let id = without_scheme.trim().trim_end_matches('/').trim();
    (!id.is_empty()).then(|| id.to_string())
}

#[cfg(test)]
mod list_id_tests {
    use super::list_id;

    #[test]
    fn the_list_id_forms_of_rfc_2919_and_of_mail_libraries() {
        for (value, want) in [
            ("Acme News <news.acme.example>", Some("news.acme.example")),
            ("<news.acme.example>", Some("news.acme.example")),
            (
                "\"News\" <http://news.acme.example>",
                Some("news.acme.example"),
            ),
            (
                "News <https://news.acme.example/>",
                Some("news.acme.example"),
            ),
            ("news.acme.example", Some("news.acme.example")),
            ("  news.acme.example  ", Some("news.acme.example")),
            ("Acme News news.acme.example", Some("news.acme.example")),
            ("http://news.acme.example/", Some("news.acme.example")),
            ("", None),
            ("<>", None),
        ] {
            assert_eq!(list_id(value).as_deref(), want, "{value:?}");
        }
    }
}
