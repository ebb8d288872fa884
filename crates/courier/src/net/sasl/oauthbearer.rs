//! SASL/OAUTHBEARER (RFC 7628) as Kafka uses it (KIP-255; extensions, KIP-342).
//!
//! ```text
//! client  n,,\x01auth=Bearer <token>\x01[key=value\x01]*\x01
//! server  (empty)                                      authenticated
//!    or   {"status":"invalid_token","scope":...}       a refusal, as a challenge
//! client  \x01                                         (RFC 7628 §3.2.3)
//! server  SaslAuthenticate fails with error 58
//! ```
//!
//! `n,,` is the GS2 header (no channel binding, no authorization identity) and `\x01`
//! separates the key/value pairs (RFC 7628 §3.1). On a refusal the broker sends its
//! reason as a JSON challenge (§3.2.2) and waits for the client's lone `\x01` before it
//! fails the request; [`OAuthBearer`] keeps the challenge so that
//! [`Mechanism::refused`] can put the broker's status in the final error.
//!
//! Tokens are usually JWTs (RFC 7519). courier reads their `exp`, `iat` and `sub` claims
//! without verifying the signature, only to time refreshes and to explain refusals: the
//! broker is the one that verifies. A token that is not a JWT (an opaque token) is sent
//! all the same; its expiry is then what the token provider said.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::{broker_reason, sanitize, ClientMessage, Mechanism, SaslError, Step};
use crate::config::Secret;

const NAME: &str = "OAUTHBEARER";

/// The share of a token's lifetime after which Kafka's clients refresh it by default
/// (`sasl.login.refresh.window.factor`, KIP-255).
const REFRESH_WINDOW_FACTOR: f64 = 0.8;

fn invalid(detail: String) -> SaslError {
    SaslError::InvalidCredentials {
        mechanism: NAME,
        detail,
    }
}

/// An OAuth 2 bearer token (RFC 6750) to send with OAUTHBEARER, with what courier could
/// read from it. `Debug` hides the token.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthBearerToken {
    value: Secret,
    lifetime: Option<SystemTime>,
    claims: Option<JwtClaims>,
}

impl OAuthBearerToken {
    /// A token, checked against RFC 6750's `b64token` syntax (the only characters a
    /// bearer token may have), with the claims of its payload if it is a JWT.
    /// Surrounding whitespace (a newline at the end of a token file) is dropped.
    ///
    /// # Errors
    ///
    /// [`SaslError::InvalidCredentials`] when the text cannot be a bearer token, saying
    /// where without showing it.
    pub fn new(token: Secret) -> Result<Self, SaslError> {
        let text = token
            .expose()
            .trim_matches(|c: char| c.is_ascii_whitespace());
        check_b64token(text)?;
        let claims = JwtClaims::parse(text);
        Ok(OAuthBearerToken {
            value: if text.len() == token.expose().len() {
                token
            } else {
                Secret::new(text)
            },
            lifetime: None,
            claims,
        })
    }

    /// Sets the expiry the token provider gave (`expires_in` of an OAuth token response,
    /// RFC 6749 §5.1), for tokens whose own expiry courier cannot read.
    #[must_use]
    pub fn with_lifetime(mut self, expires_at: SystemTime) -> Self {
        self.lifetime = Some(expires_at);
        self
    }

    /// The token itself.
    pub fn secret(&self) -> &Secret {
        &self.value
    }

    /// The claims of the token's JWT payload, or `None` for an opaque token.
    pub fn jwt_claims(&self) -> Option<&JwtClaims> {
        self.claims.as_ref()
    }

    /// When the token expires: the earlier of its JWT `exp` claim and the provider's
    /// lifetime, `None` if neither is known.
    pub fn expires_at(&self) -> Option<SystemTime> {
        let exp = self.claims.as_ref().and_then(|c| c.expires_at);
        match (exp, self.lifetime) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The principal the token names (its JWT `sub` claim), for messages.
    pub fn subject(&self) -> Option<&str> {
        self.claims.as_ref().and_then(|c| c.subject.as_deref())
    }

    /// When to fetch a new token, for one received at `received_at`: after 80% of its
    /// remaining lifetime, Kafka's default refresh window (KIP-255), or at once if it has
    /// already expired. `None` when the expiry is unknown. Jitter is the caller's.
    pub fn refresh_at(&self, received_at: SystemTime) -> Option<SystemTime> {
        let expires_at = self.expires_at()?;
        let lifetime = expires_at.duration_since(received_at).unwrap_or_default();
        Some(received_at + lifetime.mul_f64(REFRESH_WINDOW_FACTOR))
    }
}

impl fmt::Debug for OAuthBearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthBearerToken")
            .field("token", &self.value)
            .field("subject", &self.subject())
            .field("expires_at", &self.expires_at())
            .finish()
    }
}

/// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" )
/// *"="`. Kafka's broker accepts a subset (no `~`, `+`, `/`, `=`), which JWTs fit.
fn check_b64token(text: &str) -> Result<(), SaslError> {
    if text.is_empty() {
        return Err(invalid("the OAuth token is empty".to_owned()));
    }
    if text
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("bearer "))
    {
        return Err(invalid(
            "the OAuth token starts with \"Bearer \": give the access token alone, courier \
             adds the scheme"
                .to_owned(),
        ));
    }
    if text.starts_with('{') {
        return Err(invalid(
            "the OAuth token is a JSON document (a token endpoint's whole response?): give \
             its access_token alone"
                .to_owned(),
        ));
    }
    let body = text.trim_end_matches('=');
    let bad = body.char_indices().find(|(_, c)| {
        !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '+' | '/'))
    });
    match bad {
        None if !body.is_empty() => Ok(()),
        None => Err(invalid("the OAuth token is only \"=\" signs".to_owned())),
        Some((at, _)) => Err(invalid(format!(
            "the OAuth token has a character a bearer token cannot contain (RFC 6750 \
             §2.1) at byte {}",
            at + 1
        ))),
    }
}

/// The claims courier reads from a JWT's payload (RFC 7519 §4.1), unverified.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JwtClaims {
    expires_at: Option<SystemTime>,
    issued_at: Option<SystemTime>,
    subject: Option<String>,
}

impl JwtClaims {
    /// The `exp` claim.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// The `iat` claim.
    pub fn issued_at(&self) -> Option<SystemTime> {
        self.issued_at
    }

    /// The `sub` claim.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// The claims of a JWS compact serialization (`header.payload.signature`, RFC 7515
    /// §7.1), or `None` for anything else: an opaque token, or an encrypted JWT (five
    /// parts) whose payload only the broker can read.
    fn parse(token: &str) -> Option<JwtClaims> {
        let mut parts = token.split('.');
        let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        // base64url without padding (RFC 7515 §2); a padded one is no b64token anyway.
        let json = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let serde_json::Value::Object(claims) = serde_json::from_slice(&json).ok()? else {
            return None;
        };
        Some(JwtClaims {
            expires_at: claims.get("exp").and_then(numeric_date),
            issued_at: claims.get("iat").and_then(numeric_date),
            subject: claims
                .get("sub")
                .and_then(|s| s.as_str())
                .map(str::to_owned),
        })
    }
}

/// A JWT NumericDate (RFC 7519 §2): seconds since the epoch, possibly fractional. Absurd
/// values (negative, past the year 5000) are ignored rather than trusted.
fn numeric_date(value: &serde_json::Value) -> Option<SystemTime> {
    let seconds = value.as_f64()?;
    (seconds.is_finite() && (0.0..1e11).contains(&seconds))
        .then(|| UNIX_EPOCH + Duration::from_secs_f64(seconds))
}

/// SASL extensions sent with OAUTHBEARER (KIP-342; Confluent Cloud's `logicalCluster`
/// and `identityPoolId`, for instance), checked against RFC 7628 §3.1 as Kafka does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaslExtensions(Vec<(String, String)>);

impl SaslExtensions {
    /// No extensions.
    pub fn new() -> Self {
        SaslExtensions::default()
    }

    /// Adds an extension.
    ///
    /// # Errors
    ///
    /// [`SaslError::InvalidCredentials`] when the key is not letters only (`1*ALPHA`), is
    /// the reserved `auth`, or is already present, or when the value is empty or has a
    /// character outside printable ASCII, space, tab, CR and LF (`1*(VCHAR / SP / HTAB /
    /// CR / LF)`). The message names the key, never the value.
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<(), SaslError> {
        let (key, value) = (key.into(), value.into());
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(invalid(format!(
                "the SASL extension name \"{}\" must be letters only (RFC 7628 §3.1)",
                sanitize(&key)
            )));
        }
        if key == "auth" {
            return Err(invalid(
                "the SASL extension name \"auth\" is reserved for the token itself (RFC 7628 \
                 §3.1)"
                    .to_owned(),
            ));
        }
        if self.0.iter().any(|(k, _)| *k == key) {
            return Err(invalid(format!(
                "the SASL extension \"{key}\" is given twice"
            )));
        }
        if value.is_empty() {
            return Err(invalid(format!(
                "the value of the SASL extension \"{key}\" is empty"
            )));
        }
        if let Some(at) = value
            .bytes()
            .position(|b| !matches!(b, 0x21..=0x7e | b' ' | b'\t' | b'\r' | b'\n'))
        {
            return Err(invalid(format!(
                "the value of the SASL extension \"{key}\" has a character other than \
                 printable ASCII, space, tab, CR or LF at byte {} (RFC 7628 §3.1)",
                at + 1
            )));
        }
        self.0.push((key, value));
        Ok(())
    }

    /// [`insert`](Self::insert), by value.
    ///
    /// # Errors
    ///
    /// As [`insert`](Self::insert).
    pub fn with(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, SaslError> {
        self.insert(key, value)?;
        Ok(self)
    }

    /// The extensions, in the order they were added (and are sent).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// How many extensions there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Debug)]
enum State {
    Start,
    Sent,
    /// The broker sent an error challenge (its reason, explained); the client answered
    /// `\x01` and the broker will now fail the request.
    Challenged(String),
    Done,
}

/// A SASL/OAUTHBEARER client (RFC 7628) sending one token.
#[derive(Debug)]
pub struct OAuthBearer {
    token: OAuthBearerToken,
    extensions: SaslExtensions,
    state: State,
}

impl OAuthBearer {
    /// OAUTHBEARER with this token and these extensions.
    pub fn new(token: OAuthBearerToken, extensions: SaslExtensions) -> Self {
        OAuthBearer {
            token,
            extensions,
            state: State::Start,
        }
    }

    /// The token being sent.
    pub fn token(&self) -> &OAuthBearerToken {
        &self.token
    }

    /// "the token (subject "x") was refused ...", and its expiry if it is past.
    fn explain_challenge(&self, challenge: &[u8]) -> String {
        let mut reason = match self.token.subject() {
            Some(sub) => format!("the token for \"{}\"", sanitize(sub)),
            None => "the token".to_owned(),
        };
        let parsed: Option<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_slice(challenge).ok();
        let Some(error) = parsed else {
            reason.push_str(
                " was refused with a challenge that is not the JSON error document of RFC \
                 7628 §3.2.2",
            );
            return reason;
        };
        let text = |key: &str| error.get(key).and_then(|v| v.as_str()).map(sanitize);
        match text("status") {
            Some(status) => {
                reason.push_str(&format!(" was refused with status \"{status}\""));
                // RFC 6750 §3.1's error codes, which RFC 7628 §3.2.2 reuses.
                reason.push_str(match status.as_str() {
                    "invalid_token" => {
                        ": it is expired, revoked, malformed, or signed by a key the broker \
                         does not trust"
                    }
                    "insufficient_scope" => ": it lacks a scope the broker requires",
                    "invalid_request" => {
                        ": the broker could not accept the request (an extension it refuses?)"
                    }
                    _ => "",
                });
            }
            None => reason.push_str(" was refused (the broker's error document has no status)"),
        }
        if let Some(scope) = text("scope") {
            reason.push_str(&format!("; required scope \"{scope}\""));
        }
        if let Some(config) = text("openid-configuration") {
            reason.push_str(&format!("; the broker's OpenID configuration: {config}"));
        }
        reason
    }

    /// "; by this machine's clock the token expired N s ago", when it has.
    fn expiry_note(&self) -> String {
        let Some(expired_for) = self
            .token
            .expires_at()
            .and_then(|at| SystemTime::now().duration_since(at).ok())
        else {
            return String::new();
        };
        format!(
            "; by this machine's clock the token expired {} s ago",
            expired_for.as_secs()
        )
    }
}

impl Mechanism for OAuthBearer {
    fn name(&self) -> &'static str {
        NAME
    }

    fn initial(&mut self) -> Result<ClientMessage, SaslError> {
        if !matches!(self.state, State::Start) {
            return Err(SaslError::OutOfOrder {
                mechanism: NAME,
                detail: "the first message was asked for twice",
            });
        }
        // RFC 7628 §3.1: gs2-header kvsep "auth=Bearer " token kvsep *(kvpair) kvsep.
        let mut message = b"n,,\x01auth=Bearer ".to_vec();
        message.extend_from_slice(self.token.value.expose().as_bytes());
        message.push(1);
        for (key, value) in self.extensions.iter() {
            message.extend_from_slice(key.as_bytes());
            message.push(b'=');
            message.extend_from_slice(value.as_bytes());
            message.push(1);
        }
        message.push(1);
        self.state = State::Sent;
        Ok(ClientMessage(message))
    }

    fn step(&mut self, server: &[u8]) -> Result<Step, SaslError> {
        match &self.state {
            State::Sent if server.is_empty() => {
                self.state = State::Done;
                Ok(Step::Done)
            }
            State::Sent => {
                // RFC 7628 §3.2.3: the client answers an error challenge with a lone kvsep,
                // and the server then fails the exchange (Kafka: error 58).
                self.state = State::Challenged(self.explain_challenge(server));
                Ok(Step::Respond(ClientMessage(vec![1])))
            }
            // After an error challenge, the broker should fail the request, not go on:
            // whatever it sends now, the token was refused.
            State::Challenged(reason) => Err(SaslError::Refused {
                mechanism: NAME,
                reason: format!("{reason}{}", self.expiry_note()),
            }),
            State::Start | State::Done => Err(SaslError::OutOfOrder {
                mechanism: NAME,
                detail: "a server message came outside the exchange",
            }),
        }
    }

    fn refused(&self, broker_message: Option<&str>) -> SaslError {
        let said = broker_reason(broker_message);
        let reason = match &self.state {
            State::Challenged(reason) => format!("{reason}; {said}"),
            _ => said,
        };
        SaslError::Refused {
            mechanism: NAME,
            reason: reason + &self.expiry_note(),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// An unsigned JWT with this payload (the signature part is a placeholder: courier
    /// never checks it).
    fn jwt(payload: &str) -> String {
        format!(
            "{}.{}.c2lnbmF0dXJl",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    fn token(text: &str) -> OAuthBearerToken {
        OAuthBearerToken::new(Secret::new(text)).unwrap()
    }

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn initial_response_carries_the_token_and_extensions() {
        let ext = SaslExtensions::new()
            .with("logicalCluster", "lkc-abc123")
            .unwrap()
            .with("identityPoolId", "pool-X y\tz")
            .unwrap();
        let mut m = OAuthBearer::new(token("abc.def-_~+/=="), ext);
        assert_eq!(m.name(), "OAUTHBEARER");
        assert_eq!(
            m.initial().unwrap().into_bytes(),
            b"n,,\x01auth=Bearer abc.def-_~+/==\x01logicalCluster=lkc-abc123\x01\
              identityPoolId=pool-X y\tz\x01\x01"
                .to_vec()
        );
        assert_eq!(m.step(b"").unwrap(), Step::Done);
        assert!(matches!(m.step(b""), Err(SaslError::OutOfOrder { .. })));
    }

    #[test]
    fn without_extensions_the_message_ends_with_two_separators() {
        let mut m = OAuthBearer::new(token("tok"), SaslExtensions::new());
        assert_eq!(
            m.initial().unwrap().into_bytes(),
            b"n,,\x01auth=Bearer tok\x01\x01".to_vec()
        );
        assert!(matches!(m.initial(), Err(SaslError::OutOfOrder { .. })));
    }

    #[test]
    fn a_refusal_is_answered_with_one_separator_then_reported_with_the_status() {
        let t = token(&jwt(r#"{"sub":"svc-orders","exp":1000}"#));
        let mut m = OAuthBearer::new(t, SaslExtensions::new());
        m.initial().unwrap();
        let challenge = br#"{"status":"invalid_token","scope":"kafka","openid-configuration":"https://idp.example/.well-known/openid-configuration"}"#;
        assert_eq!(
            m.step(challenge).unwrap(),
            Step::Respond(ClientMessage(vec![1]))
        );
        let err = m.refused(Some(
            "Authentication failed during authentication due to invalid credentials with SASL \
             mechanism OAUTHBEARER",
        ));
        assert!(err.is_refused());
        let text = err.to_string();
        assert!(
            text.starts_with(
                "the broker refused SASL/OAUTHBEARER authentication: the token for \
                 \"svc-orders\" was refused with status \"invalid_token\": it is expired, \
                 revoked, malformed, or signed by a key the broker does not trust; required \
                 scope \"kafka\"; the broker's OpenID configuration: \
                 https://idp.example/.well-known/openid-configuration; the broker said \
                 \"Authentication failed"
            ),
            "{text}"
        );
        // exp = 1000 s after the epoch: long past.
        assert!(
            text.contains("; by this machine's clock the token expired "),
            "{text}"
        );
    }

    #[test]
    fn a_broker_that_goes_on_after_an_error_challenge_is_still_a_refusal() {
        let mut m = OAuthBearer::new(token("opaque"), SaslExtensions::new());
        m.initial().unwrap();
        m.step(br#"{"status":"insufficient_scope"}"#).unwrap();
        let err = m.step(b"").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the broker refused SASL/OAUTHBEARER authentication: the token was refused with \
             status \"insufficient_scope\": it lacks a scope the broker requires"
        );
    }

    #[test]
    fn odd_challenges_still_get_the_separator_and_a_useful_error() {
        for (challenge, want) in [
            (&b"not json"[..], "not the JSON error document"),
            (b"[1,2]", "not the JSON error document"),
            (br#"{"scope":"x"}"#, "has no status"),
            (
                br#"{"status":"new_code\u001b[31m"}"#,
                "status \"new_code?[31m\"; the broker",
            ),
        ] {
            let mut m = OAuthBearer::new(token("opaque"), SaslExtensions::new());
            m.initial().unwrap();
            assert_eq!(
                m.step(challenge).unwrap(),
                Step::Respond(ClientMessage(vec![1]))
            );
            let text = m.refused(None).to_string();
            assert!(text.contains(want), "{text}");
            assert!(!text.contains("expired"), "{text}");
        }
    }

    #[test]
    fn refusal_without_a_challenge_has_the_broker_message() {
        let mut m = OAuthBearer::new(token("opaque"), SaslExtensions::new());
        m.initial().unwrap();
        assert_eq!(
            m.refused(Some("bad extension")).to_string(),
            "the broker refused SASL/OAUTHBEARER authentication: the broker said \"bad \
             extension\""
        );
    }

    #[test]
    fn jwt_claims_are_read_and_opaque_tokens_accepted() {
        let t = token(&jwt(
            r#"{"sub":"alice","exp":4102444800,"iat":4102441200.5}"#,
        ));
        let claims = t.jwt_claims().unwrap();
        assert_eq!(claims.subject(), Some("alice"));
        assert_eq!(claims.expires_at(), Some(at(4_102_444_800)));
        assert_eq!(
            claims.issued_at(),
            Some(at(4_102_441_200) + Duration::from_millis(500))
        );
        assert_eq!(t.subject(), Some("alice"));
        assert_eq!(t.expires_at(), Some(at(4_102_444_800)));

        for opaque in [
            "2YotnFZFEjr1zCsicMWpAA",
            "a.b",
            "a.b.c.d.e",
            "x.!!!.y",
            &format!("x.{}.y", URL_SAFE_NO_PAD.encode("[1]")),
        ] {
            let t = OAuthBearerToken::new(Secret::new(opaque));
            // "x.!!!.y" is not even a b64token: refused before any JWT parsing.
            if opaque.contains('!') {
                assert!(t.is_err());
                continue;
            }
            let t = t.unwrap();
            assert_eq!(t.jwt_claims(), None, "{opaque}");
            assert_eq!(t.expires_at(), None, "{opaque}");
        }
    }

    #[test]
    fn absurd_claims_are_ignored() {
        for payload in [
            r#"{"exp":-5,"sub":7}"#,
            r#"{"exp":1e300}"#,
            r#"{"exp":"tomorrow"}"#,
        ] {
            let t = token(&jwt(payload));
            assert_eq!(t.expires_at(), None, "{payload}");
            assert_eq!(t.subject(), None, "{payload}");
        }
    }

    #[test]
    fn expiry_is_the_earlier_of_claim_and_provider_lifetime() {
        let t = token(&jwt(r#"{"exp":2000}"#));
        assert_eq!(
            t.clone().with_lifetime(at(1500)).expires_at(),
            Some(at(1500))
        );
        assert_eq!(t.with_lifetime(at(2500)).expires_at(), Some(at(2000)));
        let opaque = token("opaque").with_lifetime(at(3000));
        assert_eq!(opaque.expires_at(), Some(at(3000)));
    }

    #[test]
    fn refresh_comes_at_80_percent_of_the_lifetime() {
        let t = token("opaque").with_lifetime(at(2000));
        assert_eq!(t.refresh_at(at(1000)), Some(at(1800)));
        // Already expired: refresh at once.
        assert_eq!(t.refresh_at(at(5000)), Some(at(5000)));
        assert_eq!(token("opaque").refresh_at(at(1000)), None);
    }

    #[test]
    fn tokens_that_cannot_be_bearer_tokens_are_refused_without_showing_them() {
        for (text, want) in [
            ("", "is empty"),
            ("  \n", "is empty"),
            ("Bearer abcdefgh", "starts with \"Bearer \""),
            (r#"{"access_token":"abcdefgh"}"#, "JSON document"),
            ("abcd efgh", "at byte 5"),
            ("abcd=efgh", "at byte 5"),
            ("abcdéfgh", "at byte 5"),
            ("abcd\x01efgh", "at byte 5"),
            ("===", "only \"=\" signs"),
        ] {
            let err = OAuthBearerToken::new(Secret::new(text)).unwrap_err();
            let shown = err.to_string();
            assert!(
                matches!(err, SaslError::InvalidCredentials { .. }),
                "{err:?}"
            );
            assert!(shown.contains(want), "{text:?}: {shown}");
            assert!(!shown.contains("efgh"), "{shown}");
        }
        // Surrounding whitespace is not part of the token.
        let t = token(" tok\n");
        assert_eq!(t.secret().expose(), "tok");
    }

    #[test]
    fn extensions_follow_rfc_7628() {
        let mut ext = SaslExtensions::new();
        for (key, value, want) in [
            ("", "v", "must be letters only"),
            (
                "logical_cluster",
                "v",
                "\"logical_cluster\" must be letters only",
            ),
            ("k1", "v", "must be letters only"),
            ("auth", "v", "reserved"),
            ("ok", "", "is empty"),
            ("ok", "a\x01b", "at byte 2"),
            ("ok", "caf\u{e9}", "at byte 4"),
            ("ok", "a\0", "at byte 2"),
        ] {
            let err = ext.insert(key, value).unwrap_err();
            assert!(err.to_string().contains(want), "{key:?}={value:?}: {err}");
        }
        ext.insert("Auth", "fine").unwrap();
        ext.insert("ok", "\x21~ \t\r\n").unwrap();
        let err = ext.insert("ok", "again").unwrap_err();
        assert!(err.to_string().contains("given twice"), "{err}");
        assert_eq!(ext.len(), 2);
        assert_eq!(
            ext.iter().collect::<Vec<_>>(),
            [("Auth", "fine"), ("ok", "\x21~ \t\r\n")]
        );
    }

    #[test]
    fn debug_hides_the_token() {
        let raw = jwt(r#"{"sub":"alice"}"#);
        let mut m = OAuthBearer::new(token(&raw), SaslExtensions::new());
        m.initial().unwrap();
        let shown = format!("{m:?}");
        assert!(!shown.contains(&raw), "{shown}");
        assert!(shown.contains("token: <redacted>"), "{shown}");
        assert!(shown.contains("\"alice\""), "{shown}");
    }

    proptest! {
        /// Token parsing never panics, and whatever is accepted is a b64token.
        #[test]
        fn arbitrary_tokens_never_panic(text in "\\PC{0,80}") {
            if let Ok(t) = OAuthBearerToken::new(Secret::new(text.clone())) {
                let value = t.secret().expose();
                prop_assert!(value.bytes().all(|b| b.is_ascii_graphic()));
                let _ = t.refresh_at(SystemTime::now());
            }
        }

        /// JWT-shaped tokens with arbitrary payloads never panic.
        #[test]
        fn arbitrary_jwt_payloads_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..120)) {
            let raw = format!("e30.{}.sig", URL_SAFE_NO_PAD.encode(&payload));
            let t = OAuthBearerToken::new(Secret::new(raw)).unwrap();
            let _ = (t.expires_at(), t.subject());
        }

        /// Arbitrary challenges never panic and are always answered with one separator.
        #[test]
        fn arbitrary_challenges_never_panic(challenge in proptest::collection::vec(any::<u8>(), 1..200)) {
            let mut m = OAuthBearer::new(token("opaque"), SaslExtensions::new());
            m.initial().unwrap();
            prop_assert_eq!(m.step(&challenge).unwrap(), Step::Respond(ClientMessage(vec![1])));
            prop_assert!(m.refused(None).is_refused());
        }

        /// Accepted extensions never contain the separator, so they cannot forge a pair.
        #[test]
        fn accepted_extensions_cannot_break_framing(key in "\\PC{0,10}", value in "\\PC{0,20}") {
            let mut ext = SaslExtensions::new();
            if ext.insert(key, value).is_ok() {
                let (k, v) = ext.iter().next().unwrap();
                prop_assert!(!k.contains(['\x01', '=']) && !v.contains('\x01'));
            }
        }
    }
}
