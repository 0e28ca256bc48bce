//! Security properties not covered elsewhere (issue 10): TLS versions.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::*;

/// A ClientHello offering at most `version` (0x0301 TLS 1.0, 0x0302 TLS 1.1,
/// 0x0303 TLS 1.2) with no supported_versions extension, and ciphers every
/// version knows. Built by hand: no TLS library here will send an old hello.
fn client_hello(version: u16) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&version.to_be_bytes());
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // session id
    let suites: [u16; 6] = [0xc02b, 0xc02c, 0xc02f, 0xc030, 0xc013, 0x002f];
    body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]); // compression: null
                                     // Extensions: supported_groups (x25519, secp256r1), ec_point_formats,
                                     // signature_algorithms (rsa_pkcs1_sha256, ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256).
    let mut ext = Vec::new();
    ext.extend_from_slice(&[0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17]);
    ext.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);
    ext.extend_from_slice(&[
        0x00, 0x0d, 0x00, 0x08, 0x00, 0x06, 0x04, 0x01, 0x04, 0x03, 0x08, 0x04,
    ]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut handshake = vec![1u8]; // ClientHello
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// The first TLS record the server answers with: (content type, first body byte).
async fn first_answer(addr: std::net::SocketAddr, hello: &[u8]) -> Option<(u8, u8, Vec<u8>)> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(hello).await.ok()?;
    let mut head = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut head))
        .await
        .ok()?
        .ok()?;
    let len = u16::from_be_bytes([head[3], head[4]]) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.ok()?;
    Some((head[0], *body.first()?, body))
}

/// No TLS below 1.2 (RFC 8996): a TLS 1.0 or 1.1 hello gets an alert, never
/// a ServerHello; the same hello saying 1.2 gets one (so the probe is sound).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_below_1_2_is_refused() {
    let d = Daemon::start(Options::default());
    for (version, name) in [(0x0301u16, "TLS 1.0"), (0x0302, "TLS 1.1")] {
        let answer = first_answer(d.submissions, &client_hello(version)).await;
        match answer {
            Some((0x15, _, body)) => {
                // Alert: fatal (2), protocol_version (70).
                assert_eq!(body, vec![2, 70], "{name}");
            }
            None => {} // closed without a word: refused too
            Some(other) => panic!("{name} was answered with {other:?}"),
        }
    }
    let answer = first_answer(d.submissions, &client_hello(0x0303)).await;
    assert!(
        matches!(answer, Some((0x16, 2, _))),
        "TLS 1.2 hello not answered with a ServerHello: {answer:?}"
    );
}
