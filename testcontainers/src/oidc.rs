//! A tiny OpenID Connect provider on 127.0.0.1, for OAUTHBEARER against real Kafka.
//!
//! It serves what Kafka's built-in OAuth classes talk to, over plain HTTP/1.1 (one
//! request per connection, `Connection: close`):
//!
//! - `GET /jwks`: the JWKS with the ES256 (ECDSA P-256) key that signs every token;
//!   the broker's `OAuthBearerValidatorCallbackHandler` verifies tokens with it.
//! - `POST /token`: the client-credentials grant (RFC 6749 §4.4): form field
//!   `grant_type=client_credentials`, the client's id and secret by HTTP Basic auth or as
//!   `client_id`/`client_secret` form fields, optional `scope`; answers
//!   `{"access_token": <JWT>, "token_type": "bearer", "expires_in": N}`.
//! - `GET /.well-known/openid-configuration`: the discovery document naming both.
//!
//! Tokens carry `iss` (the server's base URL), `aud`, `sub` (the client id), `iat`,
//! `nbf`, `exp`, `jti` and, when asked for, `scope`. [`OidcServer::tokens_issued`]
//! counts what `/token` handed out, so a test can see a client refresh its token.
//! [`OidcServer::mint`] and friends sign tokens directly, good and bad.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::json;

use crate::KitError;

/// How an [`OidcServer`] is set up.
#[derive(Debug, Clone)]
pub struct OidcOptions {
    /// The `aud` claim of every token, and what brokers are told to expect.
    pub audience: String,
    /// The client registered at start (more with [`OidcServer::add_client`]).
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// Lifetime of tokens from `/token` (`exp - iat`); changeable later with
    /// [`OidcServer::set_token_lifetime`].
    pub token_lifetime: Duration,
}

impl Default for OidcOptions {
    fn default() -> Self {
        Self {
            audience: "courier-kafka".into(),
            client_id: "courier-client".into(),
            client_secret: "courier-client-secret".into(),
            token_lifetime: Duration::from_secs(3600),
        }
    }
}

/// The claims of a token to sign with [`OidcServer::sign`]. Start from
/// [`OidcServer::claims`], which fills in what a valid token has.
#[derive(Debug, Clone)]
pub struct TokenClaims {
    /// `sub`: the principal Kafka sees.
    pub subject: String,
    /// `iss`.
    pub issuer: String,
    /// `aud`.
    pub audience: String,
    /// `scope`, space-separated; `None` leaves the claim out.
    pub scope: Option<String>,
    /// `iat` and `nbf`, seconds since the epoch.
    pub issued_at: i64,
    /// `exp`, seconds since the epoch.
    pub expires_at: i64,
    /// Sign with a key that is not in the JWKS (under the same `kid`): a forgery.
    pub forged: bool,
}

/// The key id in every token header and in the JWKS.
const KEY_ID: &str = "courier-kit-es256";

struct State {
    key: EcdsaKeyPair,
    /// Signs forgeries: a different key published under nobody's name.
    forger: EcdsaKeyPair,
    rng: SystemRandom,
    base_url: String,
    audience: String,
    /// The client registered at start: (id, secret).
    first_client: (String, String),
    clients: Mutex<BTreeMap<String, String>>,
    lifetime: Mutex<Duration>,
    /// Per-client lifetimes that override `lifetime`, so tests sharing one server can
    /// each pick theirs.
    client_lifetimes: Mutex<BTreeMap<String, Duration>>,
    issued_to: Mutex<BTreeMap<String, u64>>,
    tokens_issued: AtomicU64,
    token_requests: AtomicU64,
    jwks_requests: AtomicU64,
    fail_next: AtomicU64,
    next_jti: AtomicU64,
}

/// A running OIDC provider. Dropping it stops the server.
pub struct OidcServer {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn new_key(rng: &SystemRandom) -> Result<EcdsaKeyPair, KitError> {
    let bad = |e: String| KitError::Setup(format!("generating an ES256 key: {e}"));
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng)
        .map_err(|e| bad(e.to_string()))?;
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), rng)
        .map_err(|e| bad(e.to_string()))
}

impl OidcServer {
    /// Starts the server on a free port of 127.0.0.1.
    pub fn start(opts: OidcOptions) -> Result<Self, KitError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| KitError::Setup(format!("binding the OIDC server: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| KitError::Setup(e.to_string()))?;
        let rng = SystemRandom::new();
        let state = Arc::new(State {
            key: new_key(&rng)?,
            forger: new_key(&rng)?,
            rng,
            base_url: format!("http://{addr}"),
            audience: opts.audience,
            first_client: (opts.client_id.clone(), opts.client_secret.clone()),
            clients: Mutex::new(BTreeMap::from([(opts.client_id, opts.client_secret)])),
            lifetime: Mutex::new(opts.token_lifetime),
            client_lifetimes: Mutex::new(BTreeMap::new()),
            issued_to: Mutex::new(BTreeMap::new()),
            tokens_issued: AtomicU64::new(0),
            token_requests: AtomicU64::new(0),
            jwks_requests: AtomicU64::new(0),
            fail_next: AtomicU64::new(0),
            next_jti: AtomicU64::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let state = state.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("courier-testkit-oidc".into())
                .spawn(move || {
                    for conn in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(conn) = conn else { continue };
                        let state = state.clone();
                        // A thread per connection: a client that connects and sends
                        // nothing must not hold up the broker's JWKS refresh.
                        std::thread::spawn(move || serve(conn, &state));
                    }
                })
                .map_err(|e| KitError::Setup(format!("starting the OIDC server: {e}")))?
        };
        Ok(Self {
            addr,
            state,
            stop,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:<port>`: the `iss` of every token and what brokers expect.
    pub fn issuer(&self) -> &str {
        &self.state.base_url
    }

    /// The `aud` of every token and what brokers expect.
    pub fn audience(&self) -> &str {
        &self.state.audience
    }

    /// The JWKS URL (`sasl.oauthbearer.jwks.endpoint.url` on the broker).
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.state.base_url)
    }

    /// The token URL (`sasl.oauthbearer.token.endpoint.url` on a client).
    pub fn token_url(&self) -> String {
        format!("{}/token", self.state.base_url)
    }

    /// The discovery document's URL.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.state.base_url)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The id of the client registered at start ([`OidcOptions::client_id`]).
    pub fn client_id(&self) -> &str {
        &self.state.first_client.0
    }

    /// The secret of the client registered at start.
    pub fn client_secret(&self) -> &str {
        &self.state.first_client.1
    }

    /// Registers another client for the client-credentials grant.
    pub fn add_client(&self, id: &str, secret: &str) {
        self.state
            .clients
            .lock()
            .unwrap()
            .insert(id.to_string(), secret.to_string());
    }

    /// The lifetime of tokens `/token` issues from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        *self.state.lifetime.lock().unwrap() = lifetime;
    }

    /// The lifetime of tokens `/token` issues to clients without their own.
    pub fn token_lifetime(&self) -> Duration {
        *self.state.lifetime.lock().unwrap()
    }

    /// The lifetime of tokens `/token` issues to `client_id` from now on, whatever
    /// [`Self::set_token_lifetime`] says: tests sharing a server set their own client's.
    pub fn set_client_token_lifetime(&self, client_id: &str, lifetime: Duration) {
        self.state
            .client_lifetimes
            .lock()
            .unwrap()
            .insert(client_id.to_string(), lifetime);
    }

    /// How many tokens `/token` has issued.
    pub fn tokens_issued(&self) -> u64 {
        self.state.tokens_issued.load(Ordering::SeqCst)
    }

    /// How many tokens `/token` has issued to `client_id`.
    pub fn tokens_issued_to(&self, client_id: &str) -> u64 {
        self.state
            .issued_to
            .lock()
            .unwrap()
            .get(client_id)
            .copied()
            .unwrap_or(0)
    }

    /// How many requests reached `/token`, refused ones included.
    pub fn token_requests(&self) -> u64 {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    /// How many times the JWKS was fetched.
    pub fn jwks_requests(&self) -> u64 {
        self.state.jwks_requests.load(Ordering::SeqCst)
    }

    /// Makes the next `n` requests to `/token` fail with HTTP 503, to test a client's
    /// retries when the provider is briefly down.
    pub fn fail_next_token_requests(&self, n: u64) {
        self.state.fail_next.store(n, Ordering::SeqCst);
    }

    /// The claims of a valid token for `subject` that lives `lifetime` from now.
    pub fn claims(&self, subject: &str, lifetime: Duration) -> TokenClaims {
        let now = now_secs();
        TokenClaims {
            subject: subject.to_string(),
            issuer: self.state.base_url.clone(),
            audience: self.state.audience.clone(),
            scope: None,
            issued_at: now,
            expires_at: now + lifetime.as_secs() as i64,
            forged: false,
        }
    }

    /// Signs `claims` as a compact JWS (ES256).
    pub fn sign(&self, claims: &TokenClaims) -> String {
        self.state.sign(claims)
    }

    /// A valid token for `subject`, living `lifetime`.
    pub fn mint(&self, subject: &str, lifetime: Duration) -> String {
        self.sign(&self.claims(subject, lifetime))
    }

    /// A token for `subject` that expired an hour ago (well past Kafka's 30 s default
    /// clock skew allowance), otherwise valid.
    pub fn mint_expired(&self, subject: &str) -> String {
        let mut c = self.claims(subject, Duration::ZERO);
        c.issued_at -= 7200;
        c.expires_at -= 3600;
        self.sign(&c)
    }

    /// A token for `subject` with valid claims whose signature does not verify with
    /// the published key.
    pub fn mint_forged(&self, subject: &str) -> String {
        let mut c = self.claims(subject, Duration::from_secs(3600));
        c.forged = true;
        self.sign(&c)
    }
}

impl Drop for OidcServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl State {
    fn sign(&self, c: &TokenClaims) -> String {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": KEY_ID});
        let jti = self.next_jti.fetch_add(1, Ordering::SeqCst);
        let mut claims = json!({
            "iss": c.issuer,
            "aud": c.audience,
            "sub": c.subject,
            "iat": c.issued_at,
            "nbf": c.issued_at,
            "exp": c.expires_at,
            "jti": format!("{}-{jti}", std::process::id()),
        });
        if let Some(scope) = &c.scope {
            claims["scope"] = json!(scope);
        }
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let key = if c.forged { &self.forger } else { &self.key };
        // FIXED signing gives r || s, 32 bytes each: the JWS form of an ES256
        // signature (RFC 7518 §3.4), not DER.
        let sig = key
            .sign(&self.rng, signing_input.as_bytes())
            .expect("ECDSA P-256 signing does not fail");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    fn jwks(&self) -> String {
        // An uncompressed P-256 point: 0x04, x (32 bytes), y (32 bytes).
        let point = self.key.public_key().as_ref();
        json!({"keys": [{
            "kty": "EC",
            "crv": "P-256",
            "use": "sig",
            "alg": "ES256",
            "kid": KEY_ID,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }]})
        .to_string()
    }

    fn token(&self, req: &HttpRequest) -> (u16, String) {
        self.token_requests.fetch_add(1, Ordering::SeqCst);
        let failing = self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return (503, json!({"error": "temporarily_unavailable"}).to_string());
        }
        let form = parse_form(&req.body);
        if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
            return (400, json!({"error": "unsupported_grant_type"}).to_string());
        }
        let (id, secret) = match basic_auth(req) {
            Some(pair) => pair,
            None => match (form.get("client_id"), form.get("client_secret")) {
                (Some(id), Some(secret)) => (id.clone(), secret.clone()),
                _ => return (401, json!({"error": "invalid_client"}).to_string()),
            },
        };
        if self.clients.lock().unwrap().get(&id) != Some(&secret) {
            return (401, json!({"error": "invalid_client"}).to_string());
        }
        let lifetime = self
            .client_lifetimes
            .lock()
            .unwrap()
            .get(&id)
            .copied()
            .unwrap_or_else(|| *self.lifetime.lock().unwrap());
        let now = now_secs();
        let scope = form.get("scope").filter(|s| !s.is_empty()).cloned();
        *self
            .issued_to
            .lock()
            .unwrap()
            .entry(id.clone())
            .or_default() += 1;
        let token = self.sign(&TokenClaims {
            subject: id,
            issuer: self.base_url.clone(),
            audience: self.audience.clone(),
            scope: scope.clone(),
            issued_at: now,
            expires_at: now + lifetime.as_secs() as i64,
            forged: false,
        });
        self.tokens_issued.fetch_add(1, Ordering::SeqCst);
        let mut body = json!({
            "access_token": token,
            "token_type": "bearer",
            "expires_in": lifetime.as_secs(),
        });
        if let Some(scope) = scope {
            body["scope"] = json!(scope);
        }
        (200, body.to_string())
    }
}

struct HttpRequest {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn read_request(conn: &mut TcpStream) -> Option<HttpRequest> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 64 << 10 {
            return None;
        }
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut req = HttpRequest {
        method,
        path,
        headers,
        body: buf[head_end + 4..].to_vec(),
    };
    let len: usize = req
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if len > 1 << 20 {
        return None;
    }
    while req.body.len() < len {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        req.body.extend_from_slice(&chunk[..n]);
    }
    req.body.truncate(len);
    Some(req)
}

fn serve(mut conn: TcpStream, state: &State) {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
    conn.set_write_timeout(Some(Duration::from_secs(10))).ok();
    let Some(req) = read_request(&mut conn) else {
        return;
    };
    let path = req.path.split('?').next().unwrap_or("");
    let (status, body) = match (req.method.as_str(), path) {
        ("GET", "/jwks") => {
            state.jwks_requests.fetch_add(1, Ordering::SeqCst);
            (200, state.jwks())
        }
        ("POST", "/token") => state.token(&req),
        ("GET", "/.well-known/openid-configuration") => (
            200,
            json!({
                "issuer": state.base_url,
                "token_endpoint": format!("{}/token", state.base_url),
                "jwks_uri": format!("{}/jwks", state.base_url),
                "grant_types_supported": ["client_credentials"],
                "token_endpoint_auth_methods_supported":
                    ["client_secret_basic", "client_secret_post"],
                "id_token_signing_alg_values_supported": ["ES256"],
            })
            .to_string(),
        ),
        _ => (404, json!({"error": "not_found"}).to_string()),
    };
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Service Unavailable",
    };
    let extra = if status == 401 {
        "WWW-Authenticate: Basic realm=\"courier-testkit\"\r\n"
    } else {
        ""
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nCache-Control: no-store\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(response.as_bytes());
    let _ = conn.flush();
}

/// Client id and secret from `Authorization: Basic`, each form-url-decoded as RFC 6749
/// §2.3.1 asks (Kafka's client encodes them that way).
fn basic_auth(req: &HttpRequest) -> Option<(String, String)> {
    let value = req.header("authorization")?;
    let (scheme, b64) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(b64.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((url_decode(id), url_decode(secret)))
}

fn parse_form(body: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (url_decode(k), url_decode(v)),
            None => (url_decode(kv), String::new()),
        })
        .collect()
}

fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi * 16 + lo) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(addr: SocketAddr, request: &str) -> (u16, serde_json::Value) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let status = out[9..12].parse().unwrap();
        let body = out.split_once("\r\n\r\n").unwrap().1;
        (status, serde_json::from_str(body).unwrap())
    }

    fn post_token(addr: SocketAddr, auth: Option<&str>, form: &str) -> (u16, serde_json::Value) {
        let auth = auth
            .map(|a| format!("Authorization: Basic {}\r\n", STANDARD.encode(a)))
            .unwrap_or_default();
        http(
            addr,
            &format!(
                "POST /token HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: \
                 application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
                form.len()
            ),
        )
    }

    fn claims_of(jwt: &str) -> serde_json::Value {
        let payload = jwt.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    }

    fn verifies(server: &OidcServer, jwt: &str) -> bool {
        let (_, jwks) = http(server.addr(), "GET /jwks HTTP/1.1\r\nHost: x\r\n\r\n");
        let key = &jwks["keys"][0];
        let mut point = vec![4u8];
        point.extend(URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap());
        point.extend(URL_SAFE_NO_PAD.decode(key["y"].as_str().unwrap()).unwrap());
        let (input, sig) = jwt.rsplit_once('.').unwrap();
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point)
            .verify(input.as_bytes(), &URL_SAFE_NO_PAD.decode(sig).unwrap())
            .is_ok()
    }

    #[test]
    fn client_credentials_grant_issues_verifiable_tokens() {
        let server = OidcServer::start(OidcOptions::default()).unwrap();
        server.set_token_lifetime(Duration::from_secs(90));
        let (status, body) = post_token(
            server.addr(),
            Some("courier-client:courier-client-secret"),
            "grant_type=client_credentials&scope=kafka%20write",
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token_type"], "bearer");
        assert_eq!(body["expires_in"], 90);
        let jwt = body["access_token"].as_str().unwrap();
        let c = claims_of(jwt);
        assert_eq!(c["sub"], "courier-client");
        assert_eq!(c["aud"], "courier-kafka");
        assert_eq!(c["iss"], server.issuer());
        assert_eq!(c["scope"], "kafka write");
        assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 90);
        assert!(verifies(&server, jwt));

        // Form-field credentials work too; wrong ones and other grants do not.
        let (status, _) = post_token(
            server.addr(),
            None,
            "grant_type=client_credentials&client_id=courier-client&client_secret=courier-client-secret",
        );
        assert_eq!(status, 200);
        let (status, body) = post_token(
            server.addr(),
            Some("courier-client:nope"),
            "grant_type=client_credentials",
        );
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client"))
        );
        let (status, _) = post_token(
            server.addr(),
            Some("courier-client:courier-client-secret"),
            "grant_type=password",
        );
        assert_eq!(status, 400);
        assert_eq!(server.tokens_issued(), 2);
        assert_eq!(server.tokens_issued_to("courier-client"), 2);
        assert_eq!(server.token_requests(), 4);

        // A client's own lifetime wins over the server-wide one.
        server.add_client("other", "other-secret");
        server.set_client_token_lifetime("other", Duration::from_secs(7));
        let (status, body) = post_token(
            server.addr(),
            Some("other:other-secret"),
            "grant_type=client_credentials",
        );
        assert_eq!((status, body["expires_in"].as_u64()), (200, Some(7)));
        assert_eq!(server.tokens_issued_to("other"), 1);
        assert_eq!(server.tokens_issued_to("courier-client"), 2);

        server.fail_next_token_requests(1);
        let ok = Some("courier-client:courier-client-secret");
        assert_eq!(
            post_token(server.addr(), ok, "grant_type=client_credentials").0,
            503
        );
        assert_eq!(
            post_token(server.addr(), ok, "grant_type=client_credentials").0,
            200
        );
        assert_eq!(server.tokens_issued(), 4);
    }

    #[test]
    fn minted_tokens_are_good_expired_or_forged_as_asked() {
        let server = OidcServer::start(OidcOptions::default()).unwrap();
        let good = server.mint("alice", Duration::from_secs(60));
        assert!(verifies(&server, &good));
        assert_eq!(claims_of(&good)["sub"], "alice");
        let expired = server.mint_expired("alice");
        assert!(verifies(&server, &expired));
        assert!(claims_of(&expired)["exp"].as_i64().unwrap() < now_secs() - 3000);
        assert!(!verifies(&server, &server.mint_forged("alice")));
        // Minting does not count as issuing through the endpoint.
        assert_eq!(server.tokens_issued(), 0);
        let (status, doc) = http(
            server.addr(),
            "GET /.well-known/openid-configuration HTTP/1.1\r\n\r\n",
        );
        assert_eq!(status, 200);
        assert_eq!(doc["jwks_uri"], server.jwks_url());
        assert_eq!(doc["token_endpoint"], server.token_url());
    }

    #[test]
    fn url_decoding_handles_escapes_and_plus() {
        assert_eq!(url_decode("a%20b+c%2Bd%3a"), "a b c+d:");
        assert_eq!(url_decode("100%"), "100%");
        assert_eq!(url_decode("%zz"), "%zz");
    }
}
