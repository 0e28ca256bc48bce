//! The AUTH command (RFC 4954) with PLAIN and LOGIN: its exchange of
//! continuation lines, the throttle and the tenant it authenticates.

use tracing::{info, warn};

use super::auth;
use super::session::{Flow, Session, State};

impl Session {
    pub(super) async fn auth_start(&mut self, mechanism: u64, initial: String) -> Flow {
        let refusal = if !self.kind.is_submission() {
            Some("503 5.5.1 Error: authentication not enabled on this port")
        } else if self.authenticated {
            Some("503 5.5.1 Error: already authenticated")
        } else if self.helo.is_none() || !self.esmtp {
            Some("503 5.5.1 Error: send EHLO first")
        } else if self.transaction.is_some() {
            Some("503 5.5.1 Error: MAIL transaction in progress")
        } else if !self.auth_allowed_here() {
            Some("538 5.7.11 Encryption required for requested authentication mechanism")
        } else {
            None
        };
        if let Some(r) = refusal {
            self.errors += 1;
            self.reply(r);
            return Flow::More;
        }
        if self.ctx.auth_throttle.locked(self.peer.ip()) {
            warn!("[{}]: AUTH refused: too many failures", self.peer.ip());
            self.reply(
                "454 4.7.0 Too many failed authentications from your address, try again later",
            );
            return Flow::More;
        }
        match mechanism {
            smtp_proto::AUTH_PLAIN => {
                if initial.is_empty() {
                    self.state = State::AuthPlain;
                    self.reply("334 ");
                    Flow::More
                } else {
                    self.auth_plain(&initial).await
                }
            }
            smtp_proto::AUTH_LOGIN => {
                if initial.is_empty() {
                    self.state = State::AuthLoginUser;
                    self.reply("334 VXNlcm5hbWU6");
                } else {
                    self.auth_login_user(&initial);
                }
                Flow::More
            }
            _ => {
                self.errors += 1;
                self.reply("504 5.5.4 Unrecognized authentication type (use PLAIN or LOGIN)");
                Flow::More
            }
        }
    }

    pub(super) async fn auth_continuation(&mut self, line: &[u8]) -> Flow {
        let text = String::from_utf8_lossy(line).trim().to_string();
        let state = std::mem::replace(&mut self.state, State::Command);
        if text == "*" {
            self.reply("501 5.0.0 Authentication cancelled");
            return Flow::More;
        }
        match state {
            State::AuthPlain => self.auth_plain(&text).await,
            State::AuthLoginUser => {
                self.auth_login_user(&text);
                Flow::More
            }
            State::AuthLoginPass(user) => match auth::decode_b64(&text) {
                Some(pass) => {
                    let pass = String::from_utf8_lossy(&pass).into_owned();
                    self.auth_finish("LOGIN", &user, &pass).await
                }
                None => {
                    self.errors += 1;
                    self.reply("501 5.5.2 Cannot decode response");
                    Flow::More
                }
            },
            _ => Flow::More,
        }
    }

    pub(super) fn auth_login_user(&mut self, b64: &str) {
        match auth::decode_b64(b64) {
            Some(user) => {
                self.state = State::AuthLoginPass(String::from_utf8_lossy(&user).into_owned());
                self.reply("334 UGFzc3dvcmQ6");
            }
            None => {
                self.errors += 1;
                self.reply("501 5.5.2 Cannot decode response");
            }
        }
    }

    pub(super) async fn auth_plain(&mut self, b64: &str) -> Flow {
        let decoded = if b64 == "=" {
            Some(Vec::new())
        } else {
            auth::decode_b64(b64)
        };
        let Some(decoded) = decoded else {
            self.errors += 1;
            self.reply("501 5.5.2 Cannot decode response");
            return Flow::More;
        };
        match auth::parse_plain(&decoded) {
            Some((user, pass)) => self.auth_finish("PLAIN", &user, &pass).await,
            None => {
                self.errors += 1;
                self.reply("501 5.5.2 Malformed PLAIN response");
                Flow::More
            }
        }
    }

    pub(super) async fn auth_finish(&mut self, method: &str, user: &str, pass: &str) -> Flow {
        let ok = auth::verify(
            &self.settings.config,
            &self.ctx.auth_throttle.verified,
            user,
            pass,
        )
        .await;
        if ok {
            self.ctx.auth_throttle.succeed(self.peer.ip());
            self.authenticated = true;
            self.tenant = Some(user.to_string());
            info!(
                "[{}]: sasl_method={method}, sasl_username={user}",
                self.peer.ip()
            );
            self.reply("235 2.7.0 Authentication successful");
        } else {
            let delay = self.ctx.auth_throttle.fail(self.peer.ip());
            warn!(
                "[{}]: SASL {method} authentication failed for {:?}",
                self.peer.ip(),
                user.chars().take(64).collect::<String>()
            );
            self.errors += 1;
            tokio::time::sleep(delay).await;
            self.reply("535 5.7.8 Error: authentication credentials invalid");
        }
        Flow::More
    }
}
