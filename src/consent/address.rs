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

#[cfg(test)]
mod tests {
    use super::*;

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
