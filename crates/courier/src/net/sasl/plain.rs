//! SASL/PLAIN (RFC 4616): a single message `authzid NUL authcid NUL passwd`.

use std::fmt;

use super::{broker_reason, ClientMessage, Mechanism, SaslError, Step};
use crate::config::Secret;

const NAME: &str = "PLAIN";

/// SASL/PLAIN (RFC 4616): sends `\0username\0password`, with an empty authorization
/// identity so the broker authorizes the authenticated user (what Java's
/// `PlainLoginModule` sends). The password crosses the wire as is: use it over TLS only.
#[derive(Clone)]
pub struct Plain {
    username: String,
    password: Secret,
    sent: bool,
    done: bool,
}

impl Plain {
    /// PLAIN with these credentials.
    pub fn new(username: impl Into<String>, password: Secret) -> Self {
        Plain {
            username: username.into(),
            password,
            sent: false,
            done: false,
        }
    }

    fn invalid(detail: &str) -> SaslError {
        SaslError::InvalidCredentials {
            mechanism: NAME,
            detail: detail.to_owned(),
        }
    }
}

impl fmt::Debug for Plain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plain")
            .field("username", &self.username)
            .field("password", &self.password)
            .finish_non_exhaustive()
    }
}

impl Mechanism for Plain {
    fn name(&self) -> &'static str {
        NAME
    }

    fn initial(&mut self) -> Result<ClientMessage, SaslError> {
        if self.sent {
            return Err(SaslError::OutOfOrder {
                mechanism: NAME,
                detail: "the first message was asked for twice",
            });
        }
        let password = self.password.expose();
        // RFC 4616 §2: authcid and passwd are 1*SAFE, UTF-8 without NUL (NUL separates
        // the fields). Kafka's broker also refuses empty ones ("username not specified").
        if self.username.is_empty() {
            return Err(Self::invalid("the user name is empty"));
        }
        if password.is_empty() {
            return Err(Self::invalid("the password is empty"));
        }
        if self.username.contains('\0') {
            return Err(Self::invalid(
                "the user name contains a NUL character, which PLAIN cannot carry (RFC 4616)",
            ));
        }
        if password.contains('\0') {
            return Err(Self::invalid(
                "the password contains a NUL character, which PLAIN cannot carry (RFC 4616)",
            ));
        }
        let mut message = Vec::with_capacity(2 + self.username.len() + password.len());
        message.push(0);
        message.extend_from_slice(self.username.as_bytes());
        message.push(0);
        message.extend_from_slice(password.as_bytes());
        self.sent = true;
        Ok(ClientMessage(message))
    }

    fn step(&mut self, _server: &[u8]) -> Result<Step, SaslError> {
        if !self.sent || self.done {
            return Err(SaslError::OutOfOrder {
                mechanism: NAME,
                detail: "a server message came outside the exchange",
            });
        }
        // PLAIN has no server message to check (Kafka's broker answers empty bytes): the
        // response's error code alone says whether the credentials were accepted.
        self.done = true;
        Ok(Step::Done)
    }

    fn refused(&self, broker_message: Option<&str>) -> SaslError {
        SaslError::Refused {
            mechanism: NAME,
            reason: format!(
                "{}; check sasl.username and sasl.password",
                broker_reason(broker_message)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_empty_authzid_username_and_password() {
        let mut m = Plain::new("alice", Secret::new("pä$$"));
        assert_eq!(m.name(), "PLAIN");
        assert_eq!(
            m.initial().unwrap().into_bytes(),
            b"\0alice\0p\xc3\xa4$$".to_vec()
        );
        assert_eq!(m.step(b"").unwrap(), Step::Done);
    }

    #[test]
    fn refuses_nul_and_empty_fields_without_showing_the_password() {
        let cases = [
            ("", "hunter2", "user name is empty"),
            ("alice", "", "password is empty"),
            ("al\0ice", "hunter2", "user name contains a NUL"),
            ("alice", "hunt\0er2", "password contains a NUL"),
        ];
        for (user, pass, want) in cases {
            let err = Plain::new(user, Secret::new(pass)).initial().unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(err, SaslError::InvalidCredentials { .. }),
                "{err:?}"
            );
            assert!(text.contains(want), "{text}");
            assert!(!text.contains("hunt"), "{text}");
        }
    }

    #[test]
    fn calls_out_of_order_are_refused() {
        let mut m = Plain::new("alice", Secret::new("hunter2"));
        assert!(matches!(m.step(b""), Err(SaslError::OutOfOrder { .. })));
        m.initial().unwrap();
        assert!(matches!(m.initial(), Err(SaslError::OutOfOrder { .. })));
        m.step(b"").unwrap();
        assert!(matches!(m.step(b""), Err(SaslError::OutOfOrder { .. })));
    }

    #[test]
    fn debug_and_refusal_hide_the_password() {
        let m = Plain::new("alice", Secret::new("hunter2"));
        let shown = format!("{m:?}");
        assert!(
            shown.contains("alice") && !shown.contains("hunter2"),
            "{shown}"
        );
        let err = m.refused(Some("Authentication failed: Invalid username or password"));
        assert!(err.is_refused());
        assert_eq!(
            err.to_string(),
            "the broker refused SASL/PLAIN authentication: the broker said \"Authentication \
             failed: Invalid username or password\"; check sasl.username and sasl.password"
        );
    }
}
