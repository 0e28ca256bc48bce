-- postwarden's shared state (consent, suppression, tenant state, tracking,
-- feedback marks, abuse cases, the token secret): the same keys and JSON
-- values as the embedded RocksDB column families, one row per record.
-- `key` is bytea because the keys hold NUL separators and big-endian
-- numbers; bytea sorts byte by byte, as RocksDB does, so prefix scans are
-- range scans on the primary key.
CREATE TABLE postwarden_kv (
    cf    text  NOT NULL,
    key   bytea NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (cf, key)
);
