//! Address normalisation, so that one person is one key: the domain in
//! lower case and as IDNA ASCII, the local part compared case-insensitively
//! (what every large mailbox provider does, although RFC 5321 §2.4 allows
//! case-sensitive local parts).

/// Normalises `address` for use as a key; input that is not an address is
/// only trimmed and lower-cased.
pub fn normalize_address(address: &str) -> String {
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            let domain = idna::domain_to_ascii(domain).unwrap_or_else(|_| domain.to_lowercase());
            format!("{}@{}", local.to_lowercase(), domain)
        }
        None => address.to_lowercase(),
    }
}

/// The domain part of an address, lower case; None without an `@`.
pub fn domain_of(address: &str) -> Option<String> {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>').to_ascii_lowercase())
}

/// Checks an address given by a person or a CRM and returns it normalised;
/// the reason when it is not a deliverable address.
pub fn validate_address(raw: &str) -> Result<String, &'static str> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("empty");
    }
    if raw.len() > 254 {
        return Err("longer than 254 characters");
    }
    if raw.chars().any(|c| {
        c.is_control() || c.is_whitespace() || matches!(c, '<' | '>' | ',' | ';' | '"' | '\\')
    }) {
        return Err("contains spaces, control characters or address delimiters");
    }
    let Some((local, domain)) = raw.rsplit_once('@') else {
        return Err("no @");
    };
    if local.is_empty() || local.len() > 64 || local.contains('@') {
        return Err("the part before @ is empty, too long or holds another @");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("dots misplaced before @");
    }
    let ascii = idna::domain_to_ascii(domain).map_err(|_| "the domain is not valid")?;
    let labels: Vec<&str> = ascii.split('.').collect();
    if labels.len() < 2
        || labels.iter().any(|l| {
            l.is_empty()
                || l.len() > 63
                || l.starts_with('-')
                || l.ends_with('-')
                || !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
    {
        return Err("the domain is not valid");
    }
    Ok(normalize_address(raw))
}

/// List names: what a `List-Id` holds (RFC 2919: a dot-atom), at most 200
/// characters.
pub fn is_valid_list_name(list: &str) -> bool {
    !list.is_empty()
        && list.len() <= 200
        && list
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._+".contains(&b))
}

/// A loose check for a DNS name: labels of letters, digits and hyphens.
pub fn is_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_validated() {
        assert_eq!(
            validate_address(" Jane@Example.TEST "),
            Ok("jane@example.test".into())
        );
        assert_eq!(
            validate_address("u@bücher.example"),
            Ok("u@xn--bcher-kva.example".into())
        );
        for bad in [
            "",
            "jane",
            "@example.test",
            "jane@",
            "jane@localhost",
            "ja ne@example.test",
            "jane@exa_mple.test",
            "a@b@example.test",
            "jane.@example.test",
            "<jane@example.test>",
            "jane@-x.test",
        ] {
            assert!(validate_address(bad).is_err(), "{bad:?}");
        }
        assert!(is_valid_list_name("news.acme.example"));
        assert!(!is_valid_list_name("news acme"));
        assert!(!is_valid_list_name(""));
    }

    #[test]
    fn addresses_are_normalised() {
        assert_eq!(
            normalize_address("Jane.Doe@Example.TEST"),
            "jane.doe@example.test"
        );
        assert_eq!(normalize_address("<a@b.test>"), "a@b.test");
        assert_eq!(
            normalize_address("u@bücher.example"),
            "u@xn--bcher-kva.example"
        );
    }
}
