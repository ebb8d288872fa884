//! TLS for broker connections (`security.protocol=ssl` and `sasl_ssl`).
//!
//! rustls on the `ring` crypto provider: `ring` builds into the static musl CLI with nothing
//! but a C compiler for the target, has years of production use behind rustls, and is small;
//! aws-lc-rs needs a larger C build (and cmake on some targets), and the pure-Rust providers
//! are too new to trust with payments (see `docs/SECURITY.md`).
//!
//! The broker's certificate is verified by default, chain and host name (the name or IP
//! address of `bootstrap.servers` or of the broker's advertised listener, which is also the
//! SNI), with TLS 1.2 and 1.3 offered. The two opt-outs librdkafka and Java have are honoured,
//! each with a warning when the configuration is built:
//! `ssl.endpoint.identification.algorithm=none` keeps the chain check and drops the name
//! check, `enable.ssl.certificate.verification=false` drops both (the handshake signature is
//! still checked, so the session is still bound to the certificate presented).
//!
//! Every failure is a [`NetError::Tls`] whose text says what failed and which setting to
//! change; [`TlsFailure::definitive`] tells failures that retrying cannot fix (an unknown CA,
//! a certificate for another host, TLS spoken to a plaintext port) from ones that may pass.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{AlertDescription, CertificateError, DigitallySignedStruct, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::NetError;
use crate::config::{TlsConfig, TlsVersion, TrustRoots};

/// Opens TLS sessions to brokers with one producer's TLS settings. Cheap to clone.
#[derive(Clone)]
pub struct TlsConnector {
    connector: tokio_rustls::TlsConnector,
    /// Whether the CAs are the system's (an unknown-CA error then says none is configured).
    system_roots: bool,
    verify_certificates: bool,
    verify_hostname: bool,
    client_certificate: bool,
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnector")
            .field("system_roots", &self.system_roots)
            .field("client_certificate", &self.client_certificate)
            .finish_non_exhaustive()
    }
}

impl PartialEq for TlsConnector {
    fn eq(&self, other: &Self) -> bool {
        // Two connectors are the same only if they are one (a clone).
        let a: &tokio_rustls::TlsConnector = &self.connector;
        let b: &tokio_rustls::TlsConnector = &other.connector;
        std::ptr::eq(a.config().as_ref(), b.config().as_ref())
    }
}

impl Eq for TlsConnector {}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsConnector {
    /// A connector for `config`'s trust roots, client certificate, checks and versions.
    pub fn new(config: &TlsConfig) -> Result<TlsConnector, NetError> {
        let provider = provider();
        let setup = |message: String| NetError::Tls {
            addr: String::new(),
            failure: TlsFailure {
                message,
                definitive: true,
                hung_up: false,
            },
        };
        let versions: Vec<&'static rustls::SupportedProtocolVersion> = config
            .versions()
            .iter()
            .map(|v| match v {
                TlsVersion::Tls12 => &rustls::version::TLS12,
                TlsVersion::Tls13 => &rustls::version::TLS13,
            })
            .collect();
        let mut roots = RootCertStore::empty();
        let system_roots = matches!(config.roots(), TrustRoots::System);
        match config.roots() {
            TrustRoots::Certificates { certs, from } => {
                for c in certs {
                    roots.add(c.clone()).map_err(|e| {
                        setup(format!("{from}: a certificate is not a usable CA: {e}"))
                    })?;
                }
            }
            TrustRoots::System => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    // A static binary in a scratch container has no system store: Mozilla's
                    // roots, as browsers trust them, rather than trusting nothing.
                    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                    tracing::debug!(
                        "no system CA certificates found; using Mozilla's bundled roots"
                    );
                } else {
                    tracing::debug!(roots = added, "using the system's CA certificates");
                }
            }
        }
        let roots = Arc::new(roots);
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| setup(format!("ssl.enabled.protocols: {e}")))?;
        let builder = if !config.verify_certificates() {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification {
                    algorithms: provider.signature_verification_algorithms,
                }))
        } else if !config.verify_hostname() {
            let inner = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| setup(format!("the trusted CAs: {e}")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoHostnameCheck { inner }))
        } else {
            builder.with_root_certificates(roots)
        };
        let client_config = match config.identity() {
            Some(id) => builder
                .with_client_auth_cert(id.chain.clone(), id.key.der())
                .map_err(|e| {
                    setup(format!(
                        "{}: the client certificate and key do not go together: {e}",
                        id.source()
                    ))
                })?,
            None => builder.with_no_client_auth(),
        };
        Ok(TlsConnector {
            connector: tokio_rustls::TlsConnector::from(Arc::new(client_config)),
            system_roots,
            verify_certificates: config.verify_certificates(),
            verify_hostname: config.verify_hostname(),
            client_certificate: config.identity().is_some(),
        })
    }

    /// What is checked of the broker's certificate, in words.
    pub fn checks(&self) -> &'static str {
        match (self.verify_certificates, self.verify_hostname) {
            (false, _) => "NOT verified (enable.ssl.certificate.verification=false)",
            (true, false) => {
                "verified against the trusted CAs, host name not checked \
                 (ssl.endpoint.identification.algorithm=none)"
            }
            (true, true) => "verified, host name checked",
        }
    }

    /// Runs the TLS handshake on `stream` to the broker at `addr` (`host:port`: the host is
    /// the name checked against the certificate and sent as SNI).
    pub async fn connect(
        &self,
        addr: &str,
        stream: TcpStream,
    ) -> Result<TlsStream<TcpStream>, NetError> {
        let host = host_of(addr);
        let name = ServerName::try_from(host.to_string()).map_err(|_| NetError::Tls {
            addr: addr.to_owned(),
            failure: TlsFailure {
                message: format!("'{host}' is not a host name or IP address TLS can check"),
                definitive: true,
                hung_up: false,
            },
        })?;
        self.connector
            .connect(name, stream)
            .await
            .map_err(|e| NetError::Tls {
                addr: addr.to_owned(),
                failure: self.explain(addr, &e),
            })
    }

    /// What a failed handshake (or the first read after it, where TLS 1.3 reports a refused
    /// client certificate) means for the user.
    pub(crate) fn explain(&self, addr: &str, e: &std::io::Error) -> TlsFailure {
        let definitive = |message: String| TlsFailure {
            message,
            definitive: true,
            hung_up: false,
        };
        let Some(tls) = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        else {
            return if e.kind() == std::io::ErrorKind::UnexpectedEof {
                // Kafka reads a TLS hello on a plaintext port as a request of some 300 MB and
                // hangs up: that is what this almost always is.
                TlsFailure {
                    hung_up: true,
                    ..definitive(format!(
                        "{addr} closed the connection during the TLS handshake: it is probably \
                         a plaintext listener (a broker drops a TLS hello it cannot read); use \
                         the broker's TLS port, or security.protocol=plaintext (sasl_plaintext) \
                         for a plaintext one"
                    ))
                }
            } else {
                TlsFailure {
                    message: format!("TLS handshake with {addr} failed: {e}"),
                    definitive: false,
                    hung_up: false,
                }
            };
        };
        let host = host_of(addr);
        let message = match tls {
            rustls::Error::InvalidCertificate(c) => match c {
                CertificateError::UnknownIssuer => {
                    let trusted = if self.system_roots {
                        "courier trusts the system's CAs, as none is configured"
                    } else {
                        "it is not among the configured CAs"
                    };
                    format!(
                        "the certificate of broker {addr} is signed by a CA courier does not \
                         trust ({trusted}): set ssl.ca.location (or ssl.ca.pem, \
                         ssl.truststore.location) to the CA that signed the broker's certificate"
                    )
                }
                CertificateError::NotValidForName => format!(
                    "the certificate of broker {addr} is not valid for '{host}': connect \
                     with a name the certificate lists (bootstrap.servers, the broker's \
                     advertised.listeners) or fix the certificate; \
                     ssl.endpoint.identification.algorithm=none skips this check (not \
                     recommended)"
                ),
                CertificateError::NotValidForNameContext { presented, .. } => format!(
                    "the certificate of broker {addr} is not valid for '{host}' (it names {}): \
                     connect with a name the certificate lists (bootstrap.servers, the \
                     broker's advertised.listeners) or fix the certificate; \
                     ssl.endpoint.identification.algorithm=none skips this check (not \
                     recommended)",
                    if presented.is_empty() {
                        "no host".to_string()
                    } else {
                        presented
                            .iter()
                            .map(|p| bare_name(p))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => format!(
                    "the certificate of broker {addr} has expired: renew it on the broker (or \
                     check this machine's clock)"
                ),
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    format!(
                        "the certificate of broker {addr} is not valid yet: check this machine's \
                         clock and the broker's"
                    )
                }
                CertificateError::Revoked => {
                    format!("the certificate of broker {addr} has been revoked")
                }
                other => format!("the certificate of broker {addr} is not acceptable: {other:?}"),
            },
            rustls::Error::AlertReceived(alert) => {
                return self.explain_alert(addr, *alert);
            }
            rustls::Error::InvalidMessage(_)
            | rustls::Error::InappropriateMessage { .. }
            | rustls::Error::InappropriateHandshakeMessage { .. } => format!(
                "{addr} did not answer with TLS: it is probably a plaintext listener; use the \
                 broker's TLS port, or security.protocol=plaintext (sasl_plaintext) for a \
                 plaintext one"
            ),
            rustls::Error::PeerIncompatible(why) => format!(
                "broker {addr} and courier share no TLS version or cipher suite ({why:?}): \
                 courier offers TLS 1.2 and 1.3 with modern suites (ssl.enabled.protocols)"
            ),
            other => {
                return TlsFailure {
                    message: format!("TLS with broker {addr} failed: {other}"),
                    definitive: false,
                    hung_up: false,
                }
            }
        };
        definitive(message)
    }

    fn explain_alert(&self, addr: &str, alert: AlertDescription) -> TlsFailure {
        let message = match alert {
            AlertDescription::CertificateRequired => format!(
                "broker {addr} requires a client certificate (mutual TLS): set \
                 ssl.certificate.location and ssl.key.location, or ssl.keystore.location"
            ),
            AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::AccessDenied
                if self.client_certificate =>
            {
                format!(
                    "broker {addr} refused courier's client certificate ({alert:?}): the broker \
                     does not trust the CA that signed it, or it has expired; check \
                     ssl.certificate.location / ssl.keystore.location"
                )
            }
            AlertDescription::BadCertificate
            | AlertDescription::HandshakeFailure
            | AlertDescription::CertificateUnknown
                if !self.client_certificate =>
            {
                format!(
                    "broker {addr} refused the TLS handshake ({alert:?}): it probably requires \
                     a client certificate (mutual TLS); set ssl.certificate.location and \
                     ssl.key.location, or ssl.keystore.location"
                )
            }
            AlertDescription::ProtocolVersion => format!(
                "broker {addr} speaks none of the TLS versions courier offers \
                 (ssl.enabled.protocols: TLS 1.2 and 1.3 are possible)"
            ),
            other => format!("broker {addr} ended the TLS handshake with an alert: {other:?}"),
        };
        TlsFailure {
            message,
            definitive: true,
            hung_up: false,
        }
    }
}

/// Why a TLS session could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFailure {
    /// What failed and which setting to change.
    pub message: String,
    /// Whether retrying cannot help (a certificate or configuration problem) rather than a
    /// transport hiccup during the handshake.
    pub definitive: bool,
    /// The broker hung up during the handshake: a plaintext port almost always, but also a
    /// broker going down at that moment. Definitive only until a TLS session to the cluster
    /// has once succeeded (then the settings are proven and it is the broker).
    pub hung_up: bool,
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// `wrong.example` out of rustls's `DnsName("wrong.example")` (or `IpAddress(..)`).
fn bare_name(presented: &str) -> &str {
    presented
        .split_once("(\"")
        .and_then(|(_, rest)| rest.strip_suffix("\")"))
        .unwrap_or(presented)
}

/// The host part of `host:port` (IPv6 without its brackets).
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// `ssl.endpoint.identification.algorithm=none`: the chain is verified against the trusted
/// CAs, the host name is not.
#[derive(Debug)]
struct NoHostnameCheck {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for NoHostnameCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `enable.ssl.certificate.verification=false`: any certificate is accepted; the handshake
/// signature is still checked against it.
#[derive(Debug)]
struct NoVerification {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_taken_from_addresses() {
        assert_eq!(host_of("broker-1.example.com:9093"), "broker-1.example.com");
        assert_eq!(host_of("127.0.0.1:9093"), "127.0.0.1");
        assert_eq!(host_of("[::1]:9093"), "::1");
    }
}
