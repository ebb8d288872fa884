//! The OAuth 2 client-credentials grant (RFC 6749 §4.4) for `sasl.oauthbearer.method=oidc`:
//! one HTTP POST to the identity provider's token endpoint, the access token out of its
//! JSON answer.
//!
//! A deliberately small HTTP/1.1 client (one request per connection, `Connection: close`),
//! as librdkafka and Java each carry their own: the request is fixed, and an HTTP stack
//! would bring far more code than the exchange needs. The client id and secret go in HTTP
//! Basic authentication, form-urlencoded first (RFC 6749 §2.3.1), as Kafka's Java login
//! handler sends them. Answers are bounded: 1 MiB, 10 s to connect, 10 s to answer.
//! `https://` endpoints are verified against the system's roots (Mozilla's bundled when the
//! system has none) plus the CAs configured for the brokers.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::RootCertStore;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::NetError;
use crate::config::{OidcConfig, Secret};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_ANSWER: usize = 1 << 20;

/// A token endpoint, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    tls: bool,
    host: String,
    port: u16,
    /// Path and query, starting with `/`.
    target: String,
}

fn parse_url(url: &str) -> Result<Endpoint, String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err("not an http:// or https:// URL".into());
    };
    let (authority, target) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    if authority.contains('@') {
        return Err(
            "credentials in the URL are not supported: use sasl.oauthbearer.client.id \
                    and sasl.oauthbearer.client.secret"
                .into(),
        );
    }
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or("an IPv6 host without ']'")?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| "a bad port")?,
            None => default_port,
        };
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| "a bad port")?),
            None => (authority.to_string(), default_port),
        }
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    Ok(Endpoint {
        tls,
        host,
        port,
        target,
    })
}

/// `application/x-www-form-urlencoded` escaping.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A token as the endpoint gave it.
#[derive(Debug, Clone)]
pub(crate) struct FetchedToken {
    pub(crate) value: Secret,
    pub(crate) expires_at: Option<SystemTime>,
}

/// Why no token came.
#[derive(Debug, Clone)]
pub(crate) struct FetchError {
    pub(crate) message: String,
    /// The identity provider refused the credentials (retrying cannot help), as opposed to
    /// being unreachable or failing.
    pub(crate) definitive: bool,
}

/// Fetches tokens from one token endpoint.
pub(crate) struct OidcClient {
    url: String,
    endpoint: Endpoint,
    client_id: String,
    client_secret: Secret,
    scope: Option<String>,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl OidcClient {
    /// A client for `config`; `https://` endpoints trust the system's roots and
    /// `extra_roots` (the brokers' configured CAs).
    pub(crate) fn new(
        config: &OidcConfig,
        extra_roots: &[CertificateDer<'static>],
    ) -> Result<OidcClient, NetError> {
        let bad = |why: String| NetError::Authentication {
            addr: config.token_endpoint().to_string(),
            mechanism: "OAUTHBEARER".into(),
            message: format!("sasl.oauthbearer.token.endpoint.url: {why}"),
            definitive: true,
        };
        let endpoint = parse_url(config.token_endpoint()).map_err(bad)?;
        let tls = if endpoint.tls {
            let mut roots = RootCertStore::empty();
            let (added, _) =
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if added == 0 {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
            roots.add_parsable_certificates(extra_roots.iter().cloned());
            let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
            Some(tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg)))
        } else {
            None
        };
        Ok(OidcClient {
            url: config.token_endpoint().to_string(),
            endpoint,
            client_id: config.client_id().to_string(),
            client_secret: config.client_secret.clone(),
            scope: config.scope().map(str::to_string),
            tls,
        })
    }

    /// Asks the token endpoint for a token.
    pub(crate) async fn fetch(&self) -> Result<FetchedToken, FetchError> {
        let transient = |message: String| FetchError {
            message,
            definitive: false,
        };
        let url = &self.url;
        let addr = format!("{}:{}", self.endpoint.host, self.endpoint.port);
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr))
            .await
            .map_err(|_| transient(format!("{url} did not accept a connection within 10 s")))?
            .map_err(|e| transient(format!("cannot connect to {url}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let request = self.request();
        let answer = match &self.tls {
            Some(tls) => {
                let name = ServerName::try_from(self.endpoint.host.clone())
                    .map_err(|_| transient(format!("{url}: not a host name TLS can check")))?;
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, tls.connect(name, tcp))
                    .await
                    .map_err(|_| transient(format!("TLS with {url} timed out")))?
                    .map_err(|e| FetchError {
                        message: format!("TLS with {url} failed: {e}"),
                        definitive: e
                            .get_ref()
                            .is_some_and(|i| i.downcast_ref::<rustls::Error>().is_some()),
                    })?;
                exchange(stream, &request).await
            }
            None => exchange(tcp, &request).await,
        }
        .map_err(|e| transient(format!("{url}: {e}")))?;
        let (status, body) = parse_answer(&answer).map_err(|e| transient(format!("{url}: {e}")))?;
        let json: serde_json::Value = serde_json::from_slice(body).map_err(|_| {
            transient(format!(
                "{url} answered HTTP {status} with a body that is not JSON"
            ))
        })?;
        if status != 200 {
            let error = json.get("error").and_then(|v| v.as_str()).unwrap_or("");
            let description = json
                .get("error_description")
                .and_then(|v| v.as_str())
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            // RFC 6749 §5.2: these say the request itself is refused.
            let definitive = matches!(
                error,
                "invalid_client"
                    | "unauthorized_client"
                    | "invalid_scope"
                    | "invalid_grant"
                    | "unsupported_grant_type"
            ) || status == 401;
            return Err(FetchError {
                message: format!(
                    "{url} refused the client credentials: HTTP {status} {error}{description}; \
                     check sasl.oauthbearer.client.id, sasl.oauthbearer.client.secret and \
                     sasl.oauthbearer.scope"
                ),
                definitive,
            });
        }
        let token = json
            .get("access_token")
            .and_then(|v| v.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| transient(format!("{url} answered without an access_token")))?;
        let expires_at = json
            .get("expires_in")
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .map(|secs| SystemTime::now() + Duration::from_secs(secs.min(10 * 365 * 86_400)));
        Ok(FetchedToken {
            value: Secret::new(token),
            expires_at,
        })
    }

    fn request(&self) -> Vec<u8> {
        let mut body = String::from("grant_type=client_credentials");
        if let Some(scope) = &self.scope {
            body.push_str("&scope=");
            body.push_str(&form_encode(scope));
        }
        let credentials = format!(
            "{}:{}",
            form_encode(&self.client_id),
            form_encode(self.client_secret.expose())
        );
        let basic = base64::engine::general_purpose::STANDARD.encode(credentials);
        let host = if self.endpoint.host.contains(':') {
            format!("[{}]", self.endpoint.host)
        } else {
            self.endpoint.host.clone()
        };
        format!(
            "POST {} HTTP/1.1\r\nHost: {host}:{}\r\nAuthorization: Basic {basic}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nAccept: application/json\r\n\
             User-Agent: courier/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.endpoint.target,
            self.endpoint.port,
            env!("CARGO_PKG_VERSION"),
            body.len()
        )
        .into_bytes()
    }
}

/// Sends `request` and reads the whole answer (the server closes the connection).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &[u8],
) -> Result<Vec<u8>, String> {
    tokio::time::timeout(ANSWER_TIMEOUT, async {
        stream
            .write_all(request)
            .await
            .map_err(|e| format!("sending the request: {e}"))?;
        let mut answer = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = match stream.read(&mut buf).await {
                Ok(n) => n,
                // A TLS server that closes without close_notify: the answer is what came.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                Err(e) => return Err(format!("reading the answer: {e}")),
            };
            if n == 0 {
                return Ok(answer);
            }
            if answer.len() + n > MAX_ANSWER {
                return Err("the answer is larger than 1 MiB".into());
            }
            answer.extend_from_slice(&buf[..n]);
            if complete(&answer) {
                return Ok(answer);
            }
        }
    })
    .await
    .map_err(|_| "no complete answer within 10 s".to_string())?
}

/// Whether `answer` holds a whole HTTP response already (by Content-Length or the last
/// chunk), so a server that keeps the connection open is not waited for.
fn complete(answer: &[u8]) -> bool {
    parse_answer(answer).is_ok()
}

/// The status and body of an HTTP/1.1 response (Content-Length, chunked, or up to the end).
fn parse_answer(answer: &[u8]) -> Result<(u16, &[u8]), String> {
    let head_end = find(answer, b"\r\n\r\n").ok_or("an answer without headers")?;
    let head = std::str::from_utf8(&answer[..head_end]).map_err(|_| "headers that are not text")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or("not an HTTP answer")?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().map_err(|_| "a bad Content-Length")?);
            } else if name.eq_ignore_ascii_case("transfer-encoding")
                && value.to_ascii_lowercase().contains("chunked")
            {
                chunked = true;
            }
        }
    }
    let body = &answer[head_end + 4..];
    if chunked {
        return dechunk(body).map(|b| (status, b));
    }
    match length {
        Some(n) if body.len() >= n => Ok((status, &body[..n])),
        Some(_) => Err("the answer ended before its Content-Length".into()),
        None => Ok((status, body)),
    }
}

/// The body of a chunked answer, if it is complete. Only single-chunk bodies are returned
/// in place; several chunks are refused, which token endpoints do not send for a few
/// hundred bytes (and an incomplete one is waited for).
fn dechunk(mut body: &[u8]) -> Result<&[u8], String> {
    let line_end = find(body, b"\r\n").ok_or("an incomplete chunk")?;
    let size_text = std::str::from_utf8(&body[..line_end]).map_err(|_| "a bad chunk size")?;
    let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
        .map_err(|_| "a bad chunk size")?;
    body = &body[line_end + 2..];
    if body.len() < size + 2 {
        return Err("an incomplete chunk".into());
    }
    let chunk = &body[..size];
    let rest = &body[size + 2..];
    if size == 0 {
        return Ok(chunk);
    }
    if !rest.starts_with(b"0\r\n") {
        return Err("a body in several chunks".into());
    }
    Ok(chunk)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_split_into_host_port_and_target() {
        assert_eq!(
            parse_url("https://idp.example.com/oauth2/token?x=1").unwrap(),
            Endpoint {
                tls: true,
                host: "idp.example.com".into(),
                port: 443,
                target: "/oauth2/token?x=1".into()
            }
        );
        let e = parse_url("http://[::1]:8080").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.target.as_str()),
            ("::1", 8080, "/")
        );
        assert!(parse_url("ftp://x/").is_err());
        assert!(parse_url("https://user:pw@x/").is_err());
        assert!(parse_url("https://:443/").is_err());
    }

    #[test]
    fn form_encoding_escapes_what_rfc_6749_asks() {
        assert_eq!(form_encode("a b+c/é"), "a+b%2Bc%2F%C3%A9");
        assert_eq!(form_encode("Az09-._~"), "Az09-._~");
    }

    #[test]
    fn answers_with_length_chunks_or_none_are_read() {
        let a = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}extra";
        assert_eq!(parse_answer(a).unwrap(), (200, &b"{}"[..]));
        let c = b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        assert_eq!(parse_answer(c).unwrap(), (400, &b"hello"[..]));
        assert!(parse_answer(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}").is_err());
        assert!(parse_answer(b"garbage").is_err());
        assert!(parse_answer(b"SMTP 220 hi\r\n\r\n").is_err());
    }

    #[test]
    fn the_request_carries_basic_auth_and_the_grant_never_the_secret_in_clear() {
        let c = OidcClient::new(
            &OidcConfig {
                token_endpoint: "http://127.0.0.1:9/token".into(),
                client_id: "courier app".into(),
                client_secret: Secret::new("s3cr:t"),
                scope: Some("kafka write".into()),
            },
            &[],
        )
        .unwrap();
        let r = String::from_utf8(c.request()).unwrap();
        assert!(r.starts_with("POST /token HTTP/1.1\r\n"), "{r}");
        assert!(
            r.ends_with("grant_type=client_credentials&scope=kafka+write"),
            "{r}"
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("courier+app:s3cr%3At");
        assert!(
            r.contains(&format!("Authorization: Basic {basic}\r\n")),
            "{r}"
        );
        assert!(!r.contains("s3cr:t"), "{r}");
    }
}
