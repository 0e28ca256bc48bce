//! Editing a message on its way through: header fields taken out or added,
//! and the unsubscribe footer. Submission (the acceptance pipeline) and
//! delivery (each recipient's copy) both edit through here, on the bytes as
//! received, so that everything not edited stays byte for byte.

pub mod footer;

/// The message with `fields` (whole header lines, each ending in CRLF) put
/// before its first header field.
pub fn prepend_headers(fields: &str, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(fields.len() + message.len());
    out.extend_from_slice(fields.as_bytes());
    out.extend_from_slice(message);
    out
}

/// The message without the named header fields (and their continuation lines).
pub fn strip_headers(message: &[u8], names: &[&str]) -> Vec<u8> {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .unwrap_or(message.len());
    let mut out = Vec::with_capacity(message.len());
    let mut skipping = false;
    for line in message[..end].split_inclusive(|&b| b == b'\n') {
        let continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if !continuation {
            let name = line.split(|&b| b == b':').next().unwrap_or(b"");
            let name = String::from_utf8_lossy(name).trim().to_ascii_lowercase();
            skipping = names.contains(&name.as_str());
        }
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(&message[end..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_headers_are_stripped_with_their_continuations() {
        let m = b"A: 1\r\nList-Unsubscribe: <x>,\r\n <y>\r\nB: 2\r\n\r\nList-Unsubscribe: body\r\n";
        let out = strip_headers(m, &["list-unsubscribe"]);
        assert_eq!(
            out,
            b"A: 1\r\nB: 2\r\n\r\nList-Unsubscribe: body\r\n".to_vec()
        );
    }

    #[test]
    fn prepended_fields_come_first() {
        assert_eq!(
            prepend_headers("A: 1\r\n", b"B: 2\r\n\r\nbody"),
            b"A: 1\r\nB: 2\r\n\r\nbody".to_vec()
        );
    }
}
