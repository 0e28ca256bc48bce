//! EHLO/HELO (RFC 5321 §4.1.1.1) with the extensions offered, and STARTTLS
//! (RFC 3207).

use std::time::Duration;

use tracing::warn;

use super::session::{Flow, Session};

impl Session {
    pub(super) fn ehlo(&mut self, host: String, esmtp: bool) {
        self.transaction = None;
        self.helo = Some(host);
        self.esmtp = esmtp;
        let hostname = self.settings.config.server.hostname.clone();
        if !esmtp {
            self.reply(&format!("250 {hostname}"));
            return;
        }
        let mut caps = vec![
            hostname,
            "PIPELINING".to_string(),
            format!("SIZE {}", self.limits().max_message_size),
        ];
        if !self.tls {
            caps.push("STARTTLS".into());
        }
        if self.kind.is_submission() && self.auth_allowed_here() && !self.authenticated {
            caps.push("AUTH PLAIN LOGIN".into());
        }
        caps.extend(
            [
                "ENHANCEDSTATUSCODES",
                "8BITMIME",
                "SMTPUTF8",
                "CHUNKING",
                "DSN",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        let n = caps.len();
        for (i, cap) in caps.iter().enumerate() {
            let sep = if i + 1 < n { '-' } else { ' ' };
            self.reply(&format!("250{sep}{cap}"));
        }
    }

    /// AUTH needs TLS, except on loopback when the config allows it.
    pub(super) fn auth_allowed_here(&self) -> bool {
        self.tls || (self.peer.ip().is_loopback() && self.limits().allow_plaintext_auth_on_loopback)
    }

    pub(super) async fn starttls(&mut self) -> Flow {
        if self.tls {
            self.errors += 1;
            self.reply("503 5.5.1 Error: TLS already active");
            return Flow::More;
        }
        self.reply("220 2.0.0 Ready to start TLS");
        if self.flush().await.is_err() {
            return Flow::Close;
        }
        // Anything the client pipelined after STARTTLS was sent in clear text
        // and must not be taken as said under TLS (RFC 3207 §4.2, CVE-2011-0411).
        self.input.clear();
        let Some(io) = self.io.take() else {
            return Flow::Close;
        };
        let timeout = Duration::from_secs(self.limits().idle_timeout);
        match tokio::time::timeout(timeout, self.ctx.tls.accept(io)).await {
            Ok(Ok(stream)) => {
                self.io = Some(Box::new(stream));
                self.tls = true;
                // RFC 3207 §4.2: forget what the client said before TLS.
                self.helo = None;
                self.esmtp = false;
                self.transaction = None;
                Flow::More
            }
            Ok(Err(e)) => {
                warn!("STARTTLS handshake failed with [{}]: {e}", self.peer.ip());
                Flow::Close
            }
            Err(_) => {
                warn!("STARTTLS handshake timed out with [{}]", self.peer.ip());
                Flow::Close
            }
        }
    }

    pub(super) fn protocol(&self) -> &'static str {
        // RFC 3848 protocol types for the Received: header.
        match (self.esmtp, self.tls, self.authenticated) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, true, false) => "ESMTPS",
            (true, false, true) => "ESMTPA",
            (true, true, true) => "ESMTPSA",
        }
    }
}
