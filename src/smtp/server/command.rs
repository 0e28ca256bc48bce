//! The command loop's one step: a line parsed by smtp-proto, refused with
//! its enhanced code when it does not parse, else handed to its handler.

use smtp_proto::{Error as ParseError, Request};
use tracing::warn;

use super::session::{Flow, Session};

impl Session {
    pub(super) async fn command(&mut self, line: &[u8]) -> Flow {
        // A source route (`<@a.example:user@b.example>`, RFC 5321 §4.1.1.3) is
        // refused outright rather than silently dropped as smtp-proto does.
        if let Some(reply) = source_route(line) {
            self.errors += 1;
            self.count(if line[..4].eq_ignore_ascii_case(b"MAIL") {
                "mail"
            } else {
                "rcpt"
            });
            self.reply(reply);
            return Flow::More;
        }
        let request = match Request::parse(&mut line.iter()).map(|r| r.into_owned()) {
            Ok(r) => r,
            Err(e) => {
                self.errors += 1;
                self.count("unknown");
                let reply = parse_error_reply(e);
                warn!(
                    "bad command from [{}]: {}: {}",
                    self.peer.ip(),
                    String::from_utf8_lossy(line)
                        .trim_end()
                        .chars()
                        .take(80)
                        .collect::<String>(),
                    reply
                );
                self.reply(&reply);
                return Flow::More;
            }
        };
        self.dispatch(request).await
    }

    /// Hands a parsed command to its handler.
    async fn dispatch(&mut self, request: Request<String>) -> Flow {
        match request {
            Request::Ehlo { host } => {
                self.count("ehlo");
                self.ehlo(host, true);
            }
            Request::Helo { host } => {
                self.count("helo");
                self.ehlo(host, false);
            }
            Request::StartTls => {
                self.count("starttls");
                return self.starttls().await;
            }
            Request::Auth {
                mechanism,
                initial_response,
            } => {
                self.count("auth");
                return self.auth_start(mechanism, initial_response).await;
            }
            Request::Mail { from } => {
                self.count("mail");
                self.mail_from(from).await;
            }
            Request::Rcpt { to } => {
                self.count("rcpt");
                self.rcpt_to(to).await;
            }
            Request::Data => {
                self.count("data");
                self.data();
            }
            Request::Bdat {
                chunk_size,
                is_last,
            } => {
                self.count("bdat");
                self.bdat(chunk_size, is_last);
            }
            Request::Rset => {
                self.count("rset");
                self.transaction = None;
                self.reply("250 2.0.0 Ok");
            }
            Request::Noop { .. } => {
                self.count("noop");
                self.reply("250 2.0.0 Ok");
            }
            Request::Vrfy { .. } => {
                self.count("vrfy");
                self.reply(
                    "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery",
                );
            }
            Request::Help { .. } => {
                self.count("help");
                self.reply("214 2.0.0 postwarden: see RFC 5321 and `man postwarden`");
            }
            Request::Quit => {
                self.count("quit");
                self.reply("221 2.0.0 Bye");
                return Flow::Close;
            }
            Request::Expn { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. }
            | Request::Lhlo { .. } => {
                self.count("unknown");
                self.errors += 1;
                self.reply("502 5.5.1 Error: command not implemented");
            }
        }
        Flow::More
    }
}

/// The reply to a line smtp-proto could not parse (RFC 3463 codes).
fn parse_error_reply(e: ParseError) -> String {
    match e {
        ParseError::UnknownCommand => "500 5.5.1 Error: command not recognized".to_string(),
        ParseError::SyntaxError { syntax } => format!("501 5.5.2 Syntax: {syntax}"),
        ParseError::InvalidSenderAddress => "501 5.1.7 Bad sender address syntax".to_string(),
        ParseError::InvalidRecipientAddress => "501 5.1.3 Bad recipient address syntax".to_string(),
        ParseError::InvalidParameter { param } => format!("501 5.5.4 Invalid parameter {param}"),
        ParseError::UnsupportedParameter { param } => {
            format!("555 5.5.4 Unsupported parameter {param}")
        }
        _ => "500 5.5.2 Error: bad syntax".to_string(),
    }
}

/// The refusal of a MAIL or RCPT with a source route, if the line has one.
fn source_route(line: &[u8]) -> Option<&'static str> {
    if line.len() < 10 {
        return None;
    }
    let upper = String::from_utf8_lossy(&line[..line.len().min(300)]).to_ascii_uppercase();
    let compact: String = upper.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.starts_with("RCPTTO:<@") {
        Some("550 5.7.1 Error: relaying denied (source routes are not accepted)")
    } else if compact.starts_with("MAILFROM:<@") {
        Some("501 5.1.7 Bad sender address syntax (source routes are not accepted)")
    } else {
        None
    }
}
