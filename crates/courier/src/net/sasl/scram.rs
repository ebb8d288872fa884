//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677; Kafka's KIP-84).
//!
//! The exchange, with the formulas of RFC 5802 §3:
//!
//! ```text
//! client-first  n,,n=<saslname>,r=<c-nonce>[,tokenauth=true]
//! server-first  r=<c-nonce><s-nonce>,s=<base64 salt>,i=<iterations>
//! client-final  c=biws,r=<c-nonce><s-nonce>,p=<base64 ClientProof>
//! server-final  v=<base64 ServerSignature>          or  e=<server-error>
//!
//! SaltedPassword  = PBKDF2-HMAC-H(password, salt, iterations)
//! ClientKey       = HMAC(SaltedPassword, "Client Key")
//! StoredKey       = H(ClientKey)
//! AuthMessage     = client-first-bare "," server-first "," client-final-without-proof
//! ClientProof     = ClientKey XOR HMAC(StoredKey, AuthMessage)
//! ServerSignature = HMAC(HMAC(SaltedPassword, "Server Key"), AuthMessage)
//! ```
//!
//! `n,,` is the GS2 header: no channel binding, no authorization identity; `c=biws` is
//! its base64. The password never crosses the wire; the broker proves with `v=` that it
//! holds the credentials too, so a server that only relays (or guesses) is caught.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{EagerHash, Hmac, KeyInit, Mac};

use super::{broker_reason, sanitize, ClientMessage, Mechanism, SaslError, Step};
use crate::config::Secret;

/// The fewest PBKDF2 iterations courier accepts: Kafka's minimum for both SCRAM
/// mechanisms (`ScramMechanism.minIterations`). Fewer means a weak or forged challenge
/// that makes an offline guess of the password from the exchange cheaper.
pub const MIN_ITERATIONS: u32 = 4096;

/// The most PBKDF2 iterations courier accepts. Kafka stores at most 16384; other servers
/// may use more, but a count in the millions is a server making every connection burn
/// seconds of CPU (a denial of service), so courier refuses it.
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// Random bytes in a client nonce: 24 (192 bits) encode to 32 printable base64
/// characters, no padding, never a `,` (RFC 5802 §5.1 asks for a printable nonce).
const NONCE_BYTES: usize = 24;

/// The hash function of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScramHash {
    /// SCRAM-SHA-256 (RFC 7677).
    Sha256,
    /// SCRAM-SHA-512 (no RFC of its own; RFC 5802 with SHA-512, as Kafka defines it).
    Sha512,
}

impl ScramHash {
    /// The mechanism's name for SaslHandshake: `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub const fn mechanism_name(self) -> &'static str {
        match self {
            ScramHash::Sha256 => "SCRAM-SHA-256",
            ScramHash::Sha512 => "SCRAM-SHA-512",
        }
    }
}

/// The hash functions behind the public [`ScramHash`], plus SHA-1 in tests for RFC 5802's
/// own example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Sha256,
    Sha512,
    #[cfg(test)]
    Sha1,
}

impl Algorithm {
    const fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => ScramHash::Sha256.mechanism_name(),
            Algorithm::Sha512 => ScramHash::Sha512.mechanism_name(),
            #[cfg(test)]
            Algorithm::Sha1 => "SCRAM-SHA-1",
        }
    }

    /// `Hi(password, salt, i)` of RFC 5802 §2.2: PBKDF2 with HMAC-H, one block.
    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Key {
        fn hi<D: EagerHash>(password: &[u8], salt: &[u8], iterations: u32) -> Key {
            let mut out = vec![0; <D as hmac::digest::OutputSizeUser>::output_size()];
            pbkdf2::pbkdf2_hmac::<D>(password, salt, iterations, &mut out);
            Key(out)
        }
        match self {
            Algorithm::Sha256 => hi::<sha2::Sha256>(password, salt, iterations),
            Algorithm::Sha512 => hi::<sha2::Sha512>(password, salt, iterations),
            #[cfg(test)]
            Algorithm::Sha1 => hi::<sha1::Sha1>(password, salt, iterations),
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Key {
        fn mac<D: EagerHash>(key: &[u8], data: &[u8]) -> Key {
            let mut mac =
                <Hmac<D> as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
            mac.update(data);
            Key(mac.finalize().into_bytes().to_vec())
        }
        match self {
            Algorithm::Sha256 => mac::<sha2::Sha256>(key, data),
            Algorithm::Sha512 => mac::<sha2::Sha512>(key, data),
            #[cfg(test)]
            Algorithm::Sha1 => mac::<sha1::Sha1>(key, data),
        }
    }

    fn hash(self, data: &[u8]) -> Key {
        use sha2::Digest;
        match self {
            Algorithm::Sha256 => Key(sha2::Sha256::digest(data).to_vec()),
            Algorithm::Sha512 => Key(sha2::Sha512::digest(data).to_vec()),
            #[cfg(test)]
            Algorithm::Sha1 => Key(sha1::Sha1::digest(data).to_vec()),
        }
    }
}

/// Key material derived from the password (SaltedPassword, ClientKey, ...): anyone who
/// has SaltedPassword or ClientKey can log in as the user, so `Debug` hides it.
struct Key(Vec<u8>);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

enum State {
    Start,
    ClientFirstSent {
        nonce: String,
        client_first_bare: String,
    },
    ClientFinalSent {
        server_signature: Key,
    },
    Done,
    /// An error ended the exchange.
    Failed,
}

impl State {
    fn describe(&self) -> &'static str {
        match self {
            State::Start => "start",
            State::ClientFirstSent { .. } => "client-first sent",
            State::ClientFinalSent { .. } => "client-final sent",
            State::Done => "done",
            State::Failed => "failed",
        }
    }
}

/// A SCRAM client (RFC 5802) for `SCRAM-SHA-256` or `SCRAM-SHA-512`.
///
/// The user name is sent as is, with `=` and `,` escaped (RFC 5802 §5.1). Neither it
/// nor the password goes through SASLprep, although RFC 5802 §2.2 asks for it: Kafka's
/// `ScramFormatter` uses the UTF-8 bytes unchanged, and the broker's stored credentials
/// were derived that way, so a normalized password would never match them.
pub struct Scram {
    algorithm: Algorithm,
    username: String,
    password: Secret,
    token_auth: bool,
    #[cfg(test)]
    fixed_nonce: Option<String>,
    state: State,
}

impl Scram {
    /// A SCRAM client with these credentials.
    pub fn new(hash: ScramHash, username: impl Into<String>, password: Secret) -> Self {
        let algorithm = match hash {
            ScramHash::Sha256 => Algorithm::Sha256,
            ScramHash::Sha512 => Algorithm::Sha512,
        };
        Self::with_algorithm(algorithm, username.into(), password)
    }

    fn with_algorithm(algorithm: Algorithm, username: String, password: Secret) -> Self {
        Scram {
            algorithm,
            username,
            password,
            token_auth: false,
            #[cfg(test)]
            fixed_nonce: None,
            state: State::Start,
        }
    }

    /// Authenticates with a delegation token (KIP-48): the user name is the token id, the
    /// password its HMAC, and the client-first carries Kafka's `tokenauth=true` extension
    /// (JAAS `tokenauth="true"`).
    #[must_use]
    pub fn token_auth(mut self, token_auth: bool) -> Self {
        self.token_auth = token_auth;
        self
    }

    fn malformed(&self, detail: impl Into<String>) -> SaslError {
        SaslError::Malformed {
            mechanism: self.name(),
            detail: detail.into(),
        }
    }

    fn client_first(&mut self) -> Result<ClientMessage, SaslError> {
        if self.username.is_empty() {
            return Err(SaslError::InvalidCredentials {
                mechanism: self.name(),
                detail: "the user name is empty".to_owned(),
            });
        }
        if self.username.contains('\0') {
            // saslname's value-safe-char excludes NUL (RFC 5802 §7).
            return Err(SaslError::InvalidCredentials {
                mechanism: self.name(),
                detail: "the user name contains a NUL character, which SCRAM cannot carry"
                    .to_owned(),
            });
        }
        let nonce = self.nonce()?;
        // RFC 5802 §5.1: in a saslname, "=" is sent as "=3D" and "," as "=2C". "=" first,
        // so the "=" the second replacement introduces is not escaped again.
        let saslname = self.username.replace('=', "=3D").replace(',', "=2C");
        let mut client_first_bare = format!("n={saslname},r={nonce}");
        if self.token_auth {
            // Kafka's ScramExtensions ride in the client-first after the nonce (KIP-48),
            // so they are part of AuthMessage too.
            client_first_bare.push_str(",tokenauth=true");
        }
        let message = format!("n,,{client_first_bare}").into_bytes();
        self.state = State::ClientFirstSent {
            nonce,
            client_first_bare,
        };
        Ok(ClientMessage(message))
    }

    fn nonce(&self) -> Result<String, SaslError> {
        #[cfg(test)]
        if let Some(nonce) = &self.fixed_nonce {
            return Ok(nonce.clone());
        }
        let mut bytes = [0u8; NONCE_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| SaslError::Random(e.to_string()))?;
        Ok(STANDARD.encode(bytes))
    }

    fn client_final(
        &mut self,
        server_first: &[u8],
        nonce: &str,
        client_first_bare: &str,
    ) -> Result<Step, SaslError> {
        let server_first = std::str::from_utf8(server_first)
            .map_err(|_| self.malformed("the server-first message is not UTF-8"))?;
        let attrs = attributes(server_first).map_err(|d| self.malformed(d))?;
        match attrs.first() {
            Some(('e', value)) => return Err(self.server_error(value)),
            // RFC 5802 §5.1: "m" announces a mandatory extension the client must
            // understand or fail; none is defined, so none is understood.
            Some(('m', _)) => {
                return Err(SaslError::Unacceptable {
                    mechanism: self.name(),
                    detail: "the broker requires a SCRAM extension (m=) courier does not know"
                        .to_owned(),
                })
            }
            _ => {}
        }
        let full_nonce = expect(&attrs, 0, 'r', "nonce").map_err(|d| self.malformed(d))?;
        let salt = expect(&attrs, 1, 's', "salt").map_err(|d| self.malformed(d))?;
        let iterations =
            expect(&attrs, 2, 'i', "iteration count").map_err(|d| self.malformed(d))?;

        // RFC 5802 §5.1: the server's nonce is ours with its own appended. Another prefix
        // means a reply to someone else's exchange (or a replay); no suffix means the
        // server added no freshness of its own.
        if !full_nonce.starts_with(nonce) {
            return Err(self.malformed(
                "the broker's nonce does not begin with ours: the reply belongs to another \
                 exchange, or was altered on the way",
            ));
        }
        if full_nonce.len() == nonce.len() {
            return Err(self.malformed("the broker did not add its own part to the nonce"));
        }
        if !full_nonce.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(self.malformed("the broker's nonce has non-printable characters"));
        }
        let salt = STANDARD
            .decode(salt)
            .map_err(|_| self.malformed("the salt (s=) is not valid base64"))?;
        if salt.is_empty() {
            return Err(self.malformed("the salt (s=) is empty"));
        }
        let iterations = self.iterations(iterations)?;

        let algorithm = self.algorithm;
        let salted =
            algorithm.salted_password(self.password.expose().as_bytes(), &salt, iterations);
        let client_key = algorithm.hmac(&salted.0, b"Client Key");
        let stored_key = algorithm.hash(&client_key.0);
        let without_proof = format!("c=biws,r={full_nonce}");
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = algorithm.hmac(&stored_key.0, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .0
            .iter()
            .zip(&client_signature.0)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = algorithm.hmac(&salted.0, b"Server Key");
        let server_signature = algorithm.hmac(&server_key.0, auth_message.as_bytes());

        self.state = State::ClientFinalSent { server_signature };
        let message = format!("{without_proof},p={}", STANDARD.encode(proof));
        Ok(Step::Respond(ClientMessage(message.into_bytes())))
    }

    fn iterations(&self, text: &str) -> Result<u32, SaslError> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.malformed("the iteration count (i=) is not a number"));
        }
        // All digits: only overflow can fail, and that is above the maximum anyway.
        let count = text.parse::<u64>().unwrap_or(u64::MAX);
        if count < u64::from(MIN_ITERATIONS) {
            return Err(SaslError::Unacceptable {
                mechanism: self.name(),
                detail: format!(
                    "the broker asks for {count} PBKDF2 iterations, below Kafka's minimum of \
                     {MIN_ITERATIONS}: a weak or forged challenge"
                ),
            });
        }
        if count > u64::from(MAX_ITERATIONS) {
            return Err(SaslError::Unacceptable {
                mechanism: self.name(),
                detail: format!(
                    "the broker asks for {} PBKDF2 iterations, above courier's maximum of \
                     {MAX_ITERATIONS}: every connection would burn CPU for nothing",
                    sanitize(text)
                ),
            });
        }
        Ok(u32::try_from(count).expect("at most MAX_ITERATIONS"))
    }

    fn verify_server_final(&self, server_final: &[u8], expected: &Key) -> Result<Step, SaslError> {
        let server_final = std::str::from_utf8(server_final)
            .map_err(|_| self.malformed("the server-final message is not UTF-8"))?;
        let attrs = attributes(server_final).map_err(|d| self.malformed(d))?;
        match attrs.first() {
            Some(('e', value)) => Err(self.server_error(value)),
            Some(('v', value)) => {
                let signature = STANDARD
                    .decode(value)
                    .map_err(|_| self.malformed("the server signature (v=) is not valid base64"))?;
                if constant_time_eq(&signature, &expected.0) {
                    Ok(Step::Done)
                } else {
                    Err(SaslError::ServerSignatureMismatch {
                        mechanism: self.name(),
                    })
                }
            }
            _ => Err(self.malformed(
                "the server-final message has neither a signature (v=) nor an error (e=)",
            )),
        }
    }

    /// RFC 5802 §7's server-error values, explained.
    fn server_error(&self, value: &str) -> SaslError {
        let name = self.name();
        let reason = match value {
            "invalid-proof" => "the password is wrong (invalid-proof)".to_owned(),
            "unknown-user" => {
                format!("the broker has no {name} credentials for this user (unknown-user)")
            }
            "invalid-encoding" => {
                "the broker could not decode courier's message (invalid-encoding)".to_owned()
            }
            "extensions-not-supported" => "the broker does not support the SCRAM extensions \
                courier sent, such as tokenauth (extensions-not-supported)"
                .to_owned(),
            "invalid-username-encoding" => {
                "the broker cannot read the user name (invalid-username-encoding)".to_owned()
            }
            "no-resources" => {
                "the broker is out of resources; try again later (no-resources)".to_owned()
            }
            "channel-bindings-dont-match"
            | "server-does-support-channel-binding"
            | "channel-binding-not-supported"
            | "unsupported-channel-binding-type" => format!(
                "channel binding disagreement ({value}); courier does not use channel binding"
            ),
            "other-error" => "the broker gave no reason (other-error)".to_owned(),
            other => format!("the broker says \"{}\"", sanitize(other)),
        };
        SaslError::Refused {
            mechanism: name,
            reason,
        }
    }
}

impl fmt::Debug for Scram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scram")
            .field("mechanism", &self.name())
            .field("username", &self.username)
            .field("password", &self.password)
            .field("token_auth", &self.token_auth)
            .field("state", &self.state.describe())
            .finish()
    }
}

impl Mechanism for Scram {
    fn name(&self) -> &'static str {
        self.algorithm.name()
    }

    fn initial(&mut self) -> Result<ClientMessage, SaslError> {
        if !matches!(self.state, State::Start) {
            return Err(SaslError::OutOfOrder {
                mechanism: self.name(),
                detail: "the first message was asked for twice",
            });
        }
        self.client_first()
    }

    fn step(&mut self, server: &[u8]) -> Result<Step, SaslError> {
        // Whatever goes wrong below leaves the exchange failed: no second try at a step.
        match std::mem::replace(&mut self.state, State::Failed) {
            State::ClientFirstSent {
                nonce,
                client_first_bare,
            } => self.client_final(server, &nonce, &client_first_bare),
            State::ClientFinalSent { server_signature } => {
                let step = self.verify_server_final(server, &server_signature)?;
                self.state = State::Done;
                Ok(step)
            }
            state @ (State::Start | State::Done | State::Failed) => {
                self.state = state;
                Err(SaslError::OutOfOrder {
                    mechanism: self.name(),
                    detail: "a server message came outside the exchange",
                })
            }
        }
    }

    fn refused(&self, broker_message: Option<&str>) -> SaslError {
        let name = self.name();
        let hint = if self.token_auth {
            "; check the delegation token's id and HMAC, and that the token has not expired"
                .to_owned()
        } else {
            format!(
                "; check the user name and password, and that the broker has {name} \
                 credentials for the user (kafka-configs.sh --alter --entity-type users \
                 --add-config '{name}=[password=...]')"
            )
        };
        SaslError::Refused {
            mechanism: name,
            reason: broker_reason(broker_message) + &hint,
        }
    }
}

/// The `x=value` attributes of a SCRAM message (RFC 5802 §7: `attr-val = ALPHA "=" ...`,
/// separated by commas).
fn attributes(message: &str) -> Result<Vec<(char, &str)>, &'static str> {
    if message.is_empty() {
        return Err("the message is empty");
    }
    message
        .split(',')
        .map(|attr| {
            let mut chars = attr.chars();
            match (chars.next(), chars.next()) {
                (Some(name), Some('=')) if name.is_ascii_alphabetic() => Ok((name, &attr[2..])),
                _ => Err("an attribute is not of the form x=value"),
            }
        })
        .collect()
}

/// Attribute `index` must be `name`: RFC 5802 §7 fixes their order.
fn expect<'a>(
    attrs: &[(char, &'a str)],
    index: usize,
    name: char,
    what: &str,
) -> Result<&'a str, String> {
    match attrs.get(index) {
        Some((n, value)) if *n == name => Ok(value),
        Some((other, _)) => Err(format!(
            "the server-first message has {other}= where the {what} ({name}=) belongs"
        )),
        None => Err(format!("the server-first message has no {what} ({name}=)")),
    }
}

/// Compares without stopping at the first difference, so timing does not tell an
/// observer how much of a forged signature was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    impl Scram {
        fn with_nonce(mut self, nonce: &str) -> Self {
            self.fixed_nonce = Some(nonce.to_owned());
            self
        }
    }

    fn text(message: ClientMessage) -> String {
        String::from_utf8(message.into_bytes()).unwrap()
    }

    fn respond(step: Step) -> String {
        match step {
            Step::Respond(m) => text(m),
            Step::Done => panic!("expected a response"),
        }
    }

    /// Runs a whole exchange against recorded server messages; returns the client's two.
    fn run(mut m: Scram, server_first: &str, server_final: &str) -> (String, String) {
        let first = text(m.initial().unwrap());
        let last = respond(m.step(server_first.as_bytes()).unwrap());
        assert_eq!(m.step(server_final.as_bytes()).unwrap(), Step::Done);
        (first, last)
    }

    #[test]
    fn rfc7677_scram_sha_256_example() {
        let m = Scram::new(ScramHash::Sha256, "user", Secret::new("pencil"))
            .with_nonce("rOprNGfwEbeRWgbNEkqO");
        assert_eq!(Mechanism::name(&m), "SCRAM-SHA-256");
        let (first, last) = run(
            m,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,\
             i=4096",
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
        );
        assert_eq!(first, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        assert_eq!(
            last,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
    }

    #[test]
    fn rfc5802_scram_sha_1_example() {
        let m = Scram::with_algorithm(Algorithm::Sha1, "user".into(), Secret::new("pencil"))
            .with_nonce("fyko+d2lbbFgONRv9qkxdawL");
        let (first, last) = run(
            m,
            "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
            "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
        );
        assert_eq!(first, "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
        assert_eq!(
            last,
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
        );
    }

    /// testdata/scram_vectors.py (Python's hashlib and hmac), first vector.
    #[test]
    fn scram_sha_512_known_answer() {
        let m = Scram::new(
            ScramHash::Sha512,
            "alice",
            Secret::new("correct horse battery staple"),
        )
        .with_nonce("Kq3bF9xTQe1vZk0rY7uWmA2sLc8pHdNj");
        let (first, last) = run(
            m,
            "r=Kq3bF9xTQe1vZk0rY7uWmA2sLc8pHdNj4b8c1f0e-2d7a-4e69-9f3b-5a6c7d8e9f01,\
             s=Y291cmllci1zY3JhbS01MTItc2FsdA==,i=4096",
            "v=4KvQ+jWtwjfu1Vcaa56Gn38qySNMcnge9aHjAlSYGM2df3OYJJuxOT+gGK/XgzJwl7T5zufTnJ1qXFdE\
             jBaNXQ==",
        );
        assert_eq!(first, "n,,n=alice,r=Kq3bF9xTQe1vZk0rY7uWmA2sLc8pHdNj");
        assert_eq!(
            last,
            "c=biws,r=Kq3bF9xTQe1vZk0rY7uWmA2sLc8pHdNj4b8c1f0e-2d7a-4e69-9f3b-5a6c7d8e9f01,\
             p=7Fb6N8JfV6AEv5QoIIkRvL43/kQjdaAX1XX5/mg3PnFsQtA66Nh25egtZN4t631yRKGwp/9gafav1fST\
             BFdMtg=="
        );
    }

    /// testdata/scram_vectors.py, second vector: escaping, tokenauth, UTF-8, 8192 rounds.
    #[test]
    fn scram_sha_512_delegation_token_known_answer() {
        let m = Scram::new(ScramHash::Sha512, "tok=en,id", Secret::new("hmäc/+="))
            .token_auth(true)
            .with_nonce("Zx0Yw1Vu2Ts3Rq4Po5Nm6Lk7Ji8Hg9Fe");
        let (first, last) = run(
            m,
            "r=Zx0Yw1Vu2Ts3Rq4Po5Nm6Lk7Ji8Hg9Fesrv~nonce!,s=AAECAwQFBgcICQoLDA0ODw==,i=8192",
            "v=ypQui9a1/1/hi2uq2Otdu3JDbyBoYh5Z0eCqp1J7/WKNerECgTg/z2dAm6//eJEjnqjBJC6T1z/dORkZ\
             diyjTw==",
        );
        assert_eq!(
            first,
            "n,,n=tok=3Den=2Cid,r=Zx0Yw1Vu2Ts3Rq4Po5Nm6Lk7Ji8Hg9Fe,tokenauth=true"
        );
        assert_eq!(
            last,
            "c=biws,r=Zx0Yw1Vu2Ts3Rq4Po5Nm6Lk7Ji8Hg9Fesrv~nonce!,p=IWnriX+RGtO2kMnu6SNbLtWnVIT3sP\
             AIfkkLydhejLqTPwfOJE5BVkf8F4+YoNEjwSBsH372qUTlPGvk9W6+Qg=="
        );
    }

    #[test]
    fn the_nonce_is_random_printable_and_long_enough() {
        let nonce_of = |m: &mut Scram| {
            let first = text(m.initial().unwrap());
            first.strip_prefix("n,,n=u,r=").unwrap().to_owned()
        };
        let a = nonce_of(&mut Scram::new(ScramHash::Sha256, "u", Secret::new("p")));
        let b = nonce_of(&mut Scram::new(ScramHash::Sha256, "u", Secret::new("p")));
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(
            a.bytes().all(|c| (0x21..=0x7e).contains(&c) && c != b','),
            "{a}"
        );
        assert!(STANDARD.decode(&a).unwrap().len() >= 24);
    }

    const NONCE: &str = "clientnonce";
    const SALT: &str = "c2FsdHNhbHQ=";

    fn after_first(hash: ScramHash) -> Scram {
        let mut m = Scram::new(hash, "user", Secret::new("pencil")).with_nonce(NONCE);
        m.initial().unwrap();
        m
    }

    fn first_error(server_first: &[u8]) -> SaslError {
        after_first(ScramHash::Sha256)
            .step(server_first)
            .unwrap_err()
    }

    #[test]
    fn malformed_server_first_messages_are_rejected() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "the message is empty"),
            (b"r=clientnonceS,s=c2FsdA==,i=4096\xff", "not UTF-8"),
            (b"s=c2FsdA==,i=4096", "has s= where the nonce (r=) belongs"),
            (
                b"r=clientnonceS,i=4096",
                "has i= where the salt (s=) belongs",
            ),
            (b"r=clientnonceS,s=c2FsdA==", "has no iteration count (i=)"),
            (b"r=clientnonceS", "has no salt (s=)"),
            (b"r=clientnonceS,s=c2FsdA==,4096", "not of the form x=value"),
            (
                b"r=clientnonceS,s=c2FsdA==,i=4096,,",
                "not of the form x=value",
            ),
            (
                b"r=clientnonceS,s=!!notbase64,i=4096",
                "salt (s=) is not valid base64",
            ),
            (b"r=clientnonceS,s=,i=4096", "salt (s=) is empty"),
            (b"r=clientnonceS,s=c2FsdA==,i=", "not a number"),
            (b"r=clientnonceS,s=c2FsdA==,i=-4096", "not a number"),
            (b"r=clientnonceS,s=c2FsdA==,i=4096.0", "not a number"),
            (
                b"r=otherclientS,s=c2FsdA==,i=4096",
                "does not begin with ours",
            ),
            (
                b"r=clientnonc,s=c2FsdA==,i=4096",
                "does not begin with ours",
            ),
            (b"r=,s=c2FsdA==,i=4096", "does not begin with ours"),
            (
                b"r=clientnonce,s=c2FsdA==,i=4096",
                "did not add its own part",
            ),
            (
                "r=clientnonce\u{e9},s=c2FsdA==,i=4096".as_bytes(),
                "non-printable",
            ),
        ];
        for (message, want) in cases {
            let err = first_error(message);
            assert!(
                matches!(
                    err,
                    SaslError::Malformed {
                        mechanism: "SCRAM-SHA-256",
                        ..
                    }
                ),
                "{}: {err:?}",
                String::from_utf8_lossy(message)
            );
            assert!(
                err.to_string().contains(want),
                "{}: {err}",
                String::from_utf8_lossy(message)
            );
        }
    }

    #[test]
    fn iteration_counts_outside_the_bounds_are_unacceptable() {
        for (count, want) in [
            ("0", "0 PBKDF2 iterations, below Kafka's minimum of 4096"),
            ("4095", "4095 PBKDF2 iterations, below"),
            (
                "1000001",
                "1000001 PBKDF2 iterations, above courier's maximum of 1000000",
            ),
            ("99999999999999999999999", "above courier's maximum"),
        ] {
            let err = first_error(format!("r=clientnonceS,s={SALT},i={count}").as_bytes());
            assert!(
                matches!(err, SaslError::Unacceptable { .. }),
                "{count}: {err:?}"
            );
            assert!(err.to_string().contains(want), "{count}: {err}");
        }
        // The bounds themselves are fine.
        for count in [MIN_ITERATIONS, 16384] {
            let mut m = after_first(ScramHash::Sha256);
            let step = m.step(format!("r=clientnonceS,s={SALT},i={count}").as_bytes());
            assert!(matches!(step, Ok(Step::Respond(_))), "{count}: {step:?}");
        }
    }

    #[test]
    fn mandatory_extensions_and_errors_in_server_first_are_reported() {
        let err = first_error(b"m=future,r=clientnonceS,s=c2FsdA==,i=4096");
        assert!(matches!(err, SaslError::Unacceptable { .. }), "{err:?}");
        assert!(err.to_string().contains("(m=)"), "{err}");

        let err = first_error(b"e=unknown-user");
        assert!(err.is_refused(), "{err:?}");
        assert_eq!(
            err.to_string(),
            "the broker refused SASL/SCRAM-SHA-256 authentication: the broker has no \
             SCRAM-SHA-256 credentials for this user (unknown-user)"
        );
    }

    #[test]
    fn extensions_after_the_iteration_count_are_ignored() {
        let mut m = after_first(ScramHash::Sha512);
        let step = m.step(format!("r=clientnonceS,s={SALT},i=4096,x=future").as_bytes());
        assert!(matches!(step, Ok(Step::Respond(_))), "{step:?}");
    }

    /// A client that has sent its client-final, and the server signature it expects.
    fn after_final() -> (Scram, String) {
        let mut m = Scram::new(ScramHash::Sha256, "user", Secret::new("pencil"))
            .with_nonce("rOprNGfwEbeRWgbNEkqO");
        m.initial().unwrap();
        m.step(
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,\
              i=4096",
        )
        .unwrap();
        (m, "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_owned())
    }

    #[test]
    fn a_wrong_server_signature_is_caught() {
        let (_, good) = after_final();
        let mut forged = STANDARD.decode(&good).unwrap();
        forged[31] ^= 1;
        let truncated = &STANDARD.decode(&good).unwrap()[..16];
        for bad in [
            STANDARD.encode(&forged),
            STANDARD.encode(truncated),
            String::new(),
        ] {
            let (mut m, _) = after_final();
            let err = m.step(format!("v={bad}").as_bytes()).unwrap_err();
            assert_eq!(
                err,
                SaslError::ServerSignatureMismatch {
                    mechanism: "SCRAM-SHA-256"
                }
            );
            assert_eq!(
                err.to_string(),
                "the broker's SCRAM-SHA-256 signature does not match: the broker does not know \
                 this password, or something between us altered the exchange"
            );
            // The exchange is over: no second chance with another signature.
            let again = m.step(format!("v={good}").as_bytes());
            assert!(
                matches!(again, Err(SaslError::OutOfOrder { .. })),
                "{again:?}"
            );
        }
        // An extension after the right signature is fine.
        let (mut m, good) = after_final();
        assert_eq!(
            m.step(format!("v={good},x=1").as_bytes()).unwrap(),
            Step::Done
        );
    }

    #[test]
    fn malformed_server_final_messages_are_rejected() {
        for (message, want) in [
            (&b""[..], "the message is empty"),
            (b"v=***", "signature (v=) is not valid base64"),
            (b"x=1", "neither a signature (v=) nor an error (e=)"),
            (b"6rriTRBi", "not of the form x=value"),
            (b"v=6rri\xff", "not UTF-8"),
        ] {
            let (mut m, _) = after_final();
            let err = m.step(message).unwrap_err();
            assert!(matches!(err, SaslError::Malformed { .. }), "{err:?}");
            assert!(err.to_string().contains(want), "{err}");
        }
    }

    #[test]
    fn server_errors_are_refusals_in_plain_words() {
        for (value, want) in [
            ("invalid-proof", "the password is wrong (invalid-proof)"),
            ("unknown-user", "no SCRAM-SHA-256 credentials for this user"),
            ("extensions-not-supported", "such as tokenauth"),
            (
                "channel-binding-not-supported",
                "courier does not use channel binding",
            ),
            ("no-resources", "try again later"),
            ("other-error", "gave no reason"),
            ("weird\nvalue", "the broker says \"weird?value\""),
        ] {
            let (mut m, _) = after_final();
            let err = m.step(format!("e={value}").as_bytes()).unwrap_err();
            assert!(err.is_refused(), "{err:?}");
            assert!(err.to_string().contains(want), "{value}: {err}");
        }
    }

    #[test]
    fn broker_refusal_hints_at_the_credentials() {
        let m = Scram::new(ScramHash::Sha512, "alice", Secret::new("hunter2"));
        let msg = "Authentication failed during authentication due to invalid credentials with \
                   SASL mechanism SCRAM-SHA-512";
        let text = m.refused(Some(msg)).to_string();
        assert!(
            text.starts_with(
                "the broker refused SASL/SCRAM-SHA-512 authentication: the broker said \
             \"Authentication failed"
            ),
            "{text}"
        );
        assert!(
            text.contains("--add-config 'SCRAM-SHA-512=[password=...]'"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        let token = m.token_auth(true).refused(None).to_string();
        assert!(token.contains("delegation token"), "{token}");
    }

    #[test]
    fn bad_user_names_are_refused_before_sending() {
        for user in ["", "a\0b"] {
            let err = Scram::new(ScramHash::Sha256, user, Secret::new("pw"))
                .initial()
                .unwrap_err();
            assert!(
                matches!(err, SaslError::InvalidCredentials { .. }),
                "{err:?}"
            );
        }
    }

    #[test]
    fn calls_out_of_order_are_refused() {
        let mut m = Scram::new(ScramHash::Sha256, "u", Secret::new("p"));
        assert!(matches!(m.step(b"r=x"), Err(SaslError::OutOfOrder { .. })));
        m.initial().unwrap();
        assert!(matches!(m.initial(), Err(SaslError::OutOfOrder { .. })));
        let mut done = after_final();
        done.0.step(format!("v={}", done.1).as_bytes()).unwrap();
        assert!(matches!(
            done.0.step(b"v=x"),
            Err(SaslError::OutOfOrder { .. })
        ));
    }

    #[test]
    fn debug_never_shows_the_password_or_derived_keys() {
        let (m, _) = after_final();
        let shown = format!("{m:?}");
        assert_eq!(
            shown,
            "Scram { mechanism: \"SCRAM-SHA-256\", username: \"user\", password: <redacted>, \
             token_auth: false, state: \"client-final sent\" }"
        );
    }

    proptest! {
        // Each case derives a key with 4096 PBKDF2 rounds; a few dozen are enough.
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Neither client message, nor Debug, nor any error contains the password.
        #[test]
        fn the_password_is_never_sent(
            password in "[ -~\u{a0}-\u{2ff}]{8,40}",
            user in "[ -~]{1,20}",
            server_part in "[!-+\\-.-~]{1,30}",
            salt in proptest::collection::vec(any::<u8>(), 1..40),
            sha512 in any::<bool>(),
        ) {
            let hash = if sha512 { ScramHash::Sha512 } else { ScramHash::Sha256 };
            let mut m = Scram::new(hash, user, Secret::new(password.clone()));
            let first = text(m.initial().unwrap());
            let nonce = first.rsplit_once(",r=").unwrap().1.to_owned();
            let server_first =
                format!("r={nonce}{server_part},s={},i=4096", STANDARD.encode(&salt));
            let last = respond(m.step(server_first.as_bytes()).unwrap());
            prop_assert!(!first.contains(&password));
            prop_assert!(!last.contains(&password));
            prop_assert!(!last.contains(&STANDARD.encode(password.as_bytes())));
            let shown = format!("{m:?}");
            prop_assert!(!shown.contains(&password));
            let err = m.step(b"v=AAAA").unwrap_err();
            prop_assert!(!err.to_string().contains(&password));
        }

        /// Arbitrary server messages never panic, and anything but the real signature
        /// fails the exchange.
        #[test]
        fn arbitrary_server_messages_never_panic(
            first in proptest::collection::vec(any::<u8>(), 0..200),
            last in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut m = after_first(ScramHash::Sha256);
            if let Ok(Step::Respond(_)) = m.step(&first) {
                prop_assert!(m.step(&last).is_err());
            }
            let (mut m, _) = after_final();
            prop_assert!(m.step(&last).is_err());
        }

        /// Server-first messages close to valid, with random nonce suffixes, salts and
        /// counts: accepted exactly when the count is within bounds.
        #[test]
        fn near_valid_server_first_messages(
            suffix in "[!-+\\-.-~]{0,8}",
            salt in "[A-Za-z0-9+/=]{0,12}",
            count in 0u64..2_000_000,
        ) {
            let mut m = after_first(ScramHash::Sha256);
            let count = if (4096..=1_000_000).contains(&count) { 4096 + count % 2 } else { count };
            let result = m.step(format!("r={NONCE}{suffix},s={salt},i={count}").as_bytes());
            let salt_ok = STANDARD.decode(&salt).is_ok_and(|s| !s.is_empty());
            let ok = !suffix.is_empty() && salt_ok && (4096..=1_000_000).contains(&count);
            prop_assert_eq!(result.is_ok(), ok, "{:?}", result);
        }
    }
}
