//! Contacts (consent per tenant, list and address) and the tenant-wide
//! suppression list: the records of `consent`, read through the consent
//! cache on the RCPT path.

use serde::{de::DeserializeOwned, Serialize};

use super::{keys, to_json, CacheValue, Cached, Cf, ContactPage, Op, Store, StoreError};

impl Store {
    pub fn contact<T: DeserializeOwned>(
        &self,
        tenant: &str,
        list: &str,
        address: &str,
    ) -> Result<Option<T>, StoreError> {
        self.get_json(Cf::Contacts, &keys::contact(tenant, list, address))
    }

    /// A contact as the RCPT path reads it: through the consent cache.
    /// Read-modify-write code must use [`Store::contact`] under the consent lock.
    pub fn contact_cached<T: DeserializeOwned + CacheValue>(
        &self,
        tenant: &str,
        list: &str,
        address: &str,
    ) -> Result<Option<T>, StoreError> {
        self.get_json_cached(Cf::Contacts, &keys::contact(tenant, list, address))
    }

    /// What the cache holds for a contact, without reading the store: None
    /// when it holds nothing for it (or there is no cache), Some(None) when
    /// it knows there is no such contact.
    pub fn contact_cache_peek<T: CacheValue>(
        &self,
        tenant: &str,
        list: &str,
        address: &str,
    ) -> Option<Option<T>> {
        let cache = self.cache.as_ref()?;
        match cache
            .get(Cf::Contacts, &keys::contact(tenant, list, address))
            .ok()?
        {
            Cached::Absent => Some(None),
            hit => T::from_cached(&hit).map(Some),
        }
    }

    pub fn put_contact_op<T: Serialize>(
        tenant: &str,
        list: &str,
        address: &str,
        contact: &T,
    ) -> Op {
        Op::Put(
            Cf::Contacts,
            keys::contact(tenant, list, address),
            to_json(contact),
        )
    }

    /// Every contact of `tenant` (all lists), as (list, address, record).
    pub fn contacts<T: DeserializeOwned>(
        &self,
        tenant: &str,
    ) -> Result<Vec<(String, String, T)>, StoreError> {
        let prefix = keys::tenant_prefix(tenant);
        let mut out = Vec::new();
        for (k, v) in self.scan_prefix(Cf::Contacts, &prefix)? {
            let Some((list, address)) = keys::parse_contact(&k[prefix.len()..]) else {
                continue;
            };
            let record = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                key: format!("contacts/{tenant}/{list}/{address}"),
                reason: e.to_string(),
            })?;
            out.push((list, address, record));
        }
        Ok(out)
    }

    pub fn delete_contact_op(tenant: &str, list: &str, address: &str) -> Op {
        Op::Delete(Cf::Contacts, keys::contact(tenant, list, address))
    }

    /// One page of a tenant's contacts in key order (list, then address),
    /// from just after the cursor `after` (a `next` of an earlier page), only
    /// `list` when given; and the cursor of the next page, if there is one.
    pub fn contacts_page<T: DeserializeOwned>(
        &self,
        tenant: &str,
        list: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ContactPage<T>, StoreError> {
        let tenant_prefix = keys::tenant_prefix(tenant);
        let prefix = match list {
            Some(l) => {
                let mut p = keys::contact(tenant, l, "");
                p.truncate(tenant_prefix.len() + l.len() + 1);
                p
            }
            None => tenant_prefix.clone(),
        };
        let start = match after.and_then(keys::decode_cursor) {
            // Just after the cursor's key: the key with a NUL appended.
            Some(mut k) if k.starts_with(&prefix) => {
                k.push(0);
                k
            }
            _ => prefix.clone(),
        };
        let records = self.shared.scan(Cf::Contacts, &start, &prefix, limit + 1)?;
        let mut out = Vec::new();
        let mut next = None;
        for (k, v) in records {
            if out.len() == limit {
                next = out.last().map(|(l, a, _): &(String, String, T)| {
                    keys::encode_cursor(&keys::contact(tenant, l, a))
                });
                break;
            }
            let Some((l, a)) = keys::parse_contact(&k[tenant_prefix.len()..]) else {
                continue;
            };
            let record = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                key: format!("contacts/{tenant}/{l}/{a}"),
                reason: e.to_string(),
            })?;
            out.push((l, a, record));
        }
        Ok((out, next))
    }

    /// The lists a tenant has contacts on: a skip scan that seeks past each
    /// list, so it costs one seek per list, not one step per contact.
    pub fn lists(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        let prefix = keys::tenant_prefix(tenant);
        let mut lists = Vec::new();
        let mut start = prefix.clone();
        while let Some((k, _)) = self
            .shared
            .scan(Cf::Contacts, &start, &prefix, 1)?
            .into_iter()
            .next()
        {
            let rest = &k[prefix.len()..];
            let Some(end) = rest.iter().position(|&b| b == 0) else {
                break;
            };
            lists.push(String::from_utf8_lossy(&rest[..end]).into_owned());
            // The first key after every key of this list: list then 0x01.
            start = k[..prefix.len() + end].to_vec();
            start.push(1);
        }
        Ok(lists)
    }

    /// Every list contact of `address` (normalised) in `tenant`, by list.
    pub fn contacts_of<T: DeserializeOwned>(
        &self,
        tenant: &str,
        address: &str,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let mut found = Vec::new();
        for list in self.lists(tenant)? {
            if let Some(contact) = self.contact::<T>(tenant, &list, address)? {
                found.push((list, contact));
            }
        }
        Ok(found)
    }

    /// How many contact records (list, address) a tenant has; reads keys only.
    pub fn count_contacts(&self, tenant: &str) -> Result<u64, StoreError> {
        self.shared
            .count(Cf::Contacts, &keys::tenant_prefix(tenant))
    }

    pub fn suppression<T: DeserializeOwned>(
        &self,
        tenant: &str,
        address: &str,
    ) -> Result<Option<T>, StoreError> {
        self.get_json(Cf::Suppression, &keys::suppression(tenant, address))
    }

    /// The suppression that applies to `address` as the RCPT path reads it:
    /// its own, or failing that the one of its erased form (`erased`, the
    /// key an erasure leaves), as one entry of the consent cache under the
    /// address's key. A change to any erased-address suppression empties
    /// these entries (erasures are rare), so the hash of the address is
    /// computed only on a miss.
    pub fn rcpt_suppression<T: DeserializeOwned + CacheValue>(
        &self,
        tenant: &str,
        address: &str,
        erased: impl FnOnce(&str) -> String,
    ) -> Result<Option<T>, StoreError> {
        let key = keys::suppression(tenant, address);
        self.get_cached_with(Cf::Suppression, &key, || {
            match self.get_json(Cf::Suppression, &key)? {
                Some(own) => Ok(Some(own)),
                None => self.suppression(tenant, &erased(address)),
            }
        })
    }

    pub fn put_suppression_op<T: Serialize>(tenant: &str, address: &str, record: &T) -> Op {
        Op::Put(
            Cf::Suppression,
            keys::suppression(tenant, address),
            to_json(record),
        )
    }

    pub fn delete_suppression_op(tenant: &str, address: &str) -> Op {
        Op::Delete(Cf::Suppression, keys::suppression(tenant, address))
    }

    pub fn suppressions<T: DeserializeOwned>(
        &self,
        tenant: &str,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let prefix = keys::tenant_prefix(tenant);
        let mut out = Vec::new();
        for (k, v) in self.scan_prefix(Cf::Suppression, &prefix)? {
            let address = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            let record = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                key: format!("suppression/{tenant}/{address}"),
                reason: e.to_string(),
            })?;
            out.push((address, record));
        }
        Ok(out)
    }
}
