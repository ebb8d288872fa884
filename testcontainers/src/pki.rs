//! Test certificates, made fresh by every secured cluster: a CA, the broker's and a
//! client's certificates, and deliberately bad material for negative tests.
//!
//! Everything is ECDSA P-256 (rcgen on `ring`): quick to generate, and Java 17's
//! default TLS stack and Kafka's PEM key store both take it. Each file is written into
//! the cluster's run dir, so it goes when the cluster goes; the PEM text is kept in
//! memory too, for clients that take PEM strings instead of paths.

use std::fs;
use std::path::{Path, PathBuf};

use pkcs8::der::pem::LineEnding;
use pkcs8::pkcs5::pbes2;
use pkcs8::PrivateKeyInfoRef;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use ring::rand::SecureRandom;
use time::{Duration as TimeDuration, OffsetDateTime};

use crate::KitError;

/// The password of [`ClientKeyFiles::encrypted_key_path`] and of
/// [`ClientKeyFiles::pkcs12_path`]. Fixed, so that a failing test's config can be
/// replayed by hand from the kept run dir.
pub const CLIENT_KEY_PASSWORD: &str = "courier-key-pass";

/// A certificate and its private key, as PEM text and as files.
#[derive(Debug, Clone)]
pub struct CertKey {
    /// The certificate followed by the certificate of its issuer, PEM.
    pub cert_pem: String,
    /// The private key, unencrypted PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub key_pem: String,
    /// File holding [`Self::cert_pem`].
    pub cert_path: PathBuf,
    /// File holding [`Self::key_pem`].
    pub key_path: PathBuf,
    /// Key and certificate chain in one PEM file, what Kafka's `ssl.keystore.type=PEM`
    /// with `ssl.keystore.location` reads.
    pub keystore_path: PathBuf,
}

/// The mTLS client certificate's key in the forms a client may be configured with.
#[derive(Debug, Clone)]
pub struct ClientKeyFiles {
    /// The key as encrypted PKCS#8 PEM (`-----BEGIN ENCRYPTED PRIVATE KEY-----`, PBES2:
    /// PBKDF2-HMAC-SHA256 and AES-256-CBC), password [`Self::password`].
    pub encrypted_key_pem: String,
    /// File holding [`Self::encrypted_key_pem`].
    pub encrypted_key_path: PathBuf,
    /// Key and certificate chain in one PEM file with the key encrypted: Kafka's
    /// `ssl.keystore.type=PEM` plus `ssl.key.password`.
    pub encrypted_keystore_path: PathBuf,
    /// A PKCS#12 bundle of the client certificate chain and key (Java's
    /// `ssl.keystore.type=PKCS12`), password [`Self::password`].
    pub pkcs12_path: PathBuf,
    /// The password of both the encrypted key and the PKCS#12 bundle.
    pub password: String,
}

/// A CA certificate.
#[derive(Debug, Clone)]
pub struct CaCert {
    /// The CA certificate, PEM.
    pub cert_pem: String,
    /// File holding [`Self::cert_pem`]; also what Kafka's `ssl.truststore.type=PEM`
    /// with `ssl.truststore.location` reads.
    pub cert_path: PathBuf,
}

/// Every certificate a secured cluster uses.
#[derive(Debug, Clone)]
pub struct Pki {
    /// Directory holding the files.
    pub dir: PathBuf,
    /// The test CA: trusted by the broker (client certificates) and by well-behaved
    /// clients.
    pub ca: CaCert,
    /// The broker's certificate: SANs IP `127.0.0.1` and DNS `localhost`, signed by
    /// [`Self::ca`].
    pub broker: CertKey,
    /// The mTLS client certificate (subject `CN=courier-client`), signed by
    /// [`Self::ca`].
    pub client: CertKey,
    /// [`Self::client`]'s key, encrypted and as PKCS#12.
    pub client_key: ClientKeyFiles,
    /// A CA nobody trusts.
    pub unknown_ca: CaCert,
    /// A broker certificate for `127.0.0.1`/`localhost` signed by [`Self::unknown_ca`].
    pub untrusted_broker: CertKey,
    /// A client certificate (`CN=courier-untrusted-client`) signed by
    /// [`Self::unknown_ca`]: the mTLS listener must refuse it.
    pub untrusted_client: CertKey,
    /// A broker certificate signed by [`Self::ca`] whose only SAN is DNS
    /// `wrong.example`: hostname verification against `127.0.0.1` must fail.
    pub wrong_host: CertKey,
    /// A broker certificate for `127.0.0.1`/`localhost` signed by [`Self::ca`] that
    /// expired a day ago (valid from 30 days ago).
    pub expired: CertKey,
}

fn setup(what: &str) -> impl Fn(rcgen::Error) -> KitError + '_ {
    move |e| KitError::Setup(format!("generating {what}: {e}"))
}

fn write(path: &Path, contents: &[u8]) -> Result<(), KitError> {
    fs::write(path, contents)
        .map_err(|e| KitError::Setup(format!("writing {}: {e}", path.display())))
}

/// A generated CA: its certificate and what signs with it.
struct Authority {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Authority {
    fn new(common_name: &str, now: OffsetDateTime) -> Result<Self, KitError> {
        let key = KeyPair::generate().map_err(setup("a CA key"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = now - TimeDuration::days(1);
        params.not_after = now + TimeDuration::days(365);
        let cert = params
            .self_signed(&key)
            .map_err(setup("a CA certificate"))?;
        Ok(Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    fn write(&self, dir: &Path, stem: &str) -> Result<CaCert, KitError> {
        let cert_path = dir.join(format!("{stem}.pem"));
        write(&cert_path, self.cert_pem.as_bytes())?;
        Ok(CaCert {
            cert_pem: self.cert_pem.clone(),
            cert_path,
        })
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "courier test kit");
    dn.push(DnType::CommonName, common_name);
    dn
}

/// What a leaf certificate says about itself.
struct Leaf<'a> {
    common_name: &'a str,
    sans: &'a [&'a str],
    server: bool,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

/// Signs a leaf certificate and writes `<stem>.crt`, `<stem>.key` and
/// `<stem>-keystore.pem`; returns the key pair for callers that need it in other forms.
fn issue(
    ca: &Authority,
    leaf: &Leaf<'_>,
    dir: &Path,
    stem: &str,
) -> Result<(CertKey, KeyPair, Vec<u8>), KitError> {
    let key = KeyPair::generate().map_err(setup(stem))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name(leaf.common_name);
    params.subject_alt_names = leaf
        .sans
        .iter()
        .map(|s| match s.parse() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName((*s).try_into().map_err(setup(stem))?)),
        })
        .collect::<Result<_, KitError>>()?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![if leaf.server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    params.not_before = leaf.not_before;
    params.not_after = leaf.not_after;
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, &ca.issuer).map_err(setup(stem))?;
    let cert_der = cert.der().to_vec();
    // The chain a TLS peer sends: leaf, then the CA, so a peer that trusts the CA can
    // build the path without having the CA's certificate twice.
    let cert_pem = format!("{}{}", cert.pem(), ca.cert_pem);
    let key_pem = key.serialize_pem();
    let cert_path = dir.join(format!("{stem}.crt"));
    let key_path = dir.join(format!("{stem}.key"));
    let keystore_path = dir.join(format!("{stem}-keystore.pem"));
    write(&cert_path, cert_pem.as_bytes())?;
    write(&key_path, key_pem.as_bytes())?;
    write(&keystore_path, format!("{key_pem}{cert_pem}").as_bytes())?;
    Ok((
        CertKey {
            cert_pem,
            key_pem,
            cert_path,
            key_path,
            keystore_path,
        },
        key,
        cert_der,
    ))
}

/// Encrypts a PKCS#8 key with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC): the scheme
/// OpenSSL 3 writes by default and Java's `EncryptedPrivateKeyInfo` reads. (pkcs8's
/// own default KDF is scrypt, which Java cannot read.)
fn encrypt_key(pkcs8_der: &[u8], password: &str) -> Result<String, KitError> {
    let bad = |e: String| KitError::Setup(format!("encrypting the client key: {e}"));
    let rng = ring::rand::SystemRandom::new();
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    rng.fill(&mut salt).map_err(|e| bad(e.to_string()))?;
    rng.fill(&mut iv).map_err(|e| bad(e.to_string()))?;
    let params = pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(2048, &salt, iv)
        .map_err(|e| bad(e.to_string()))?;
    let info = PrivateKeyInfoRef::try_from(pkcs8_der).map_err(|e| bad(e.to_string()))?;
    let doc = info
        .encrypt_with_params(params, password)
        .map_err(|e| bad(e.to_string()))?;
    let pem = doc
        .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
        .map_err(|e| bad(e.to_string()))?;
    Ok(pem.to_string())
}

/// A PKCS#12 bundle of one key and its chain, PBES2/AES-256 with an HMAC-SHA256 MAC
/// (the algorithms Java 17's `keytool` writes too).
fn pkcs12(
    key_der: &[u8],
    chain_der: &[&[u8]],
    alias: &str,
    password: &str,
) -> Result<Vec<u8>, KitError> {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
    let bad = |e: p12_keystore::error::Error| KitError::Setup(format!("writing PKCS#12: {e}"));
    let key = PrivateKey::from_der(key_der).map_err(bad)?;
    let certs = chain_der
        .iter()
        .map(|der| Certificate::from_der(der))
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    let mut store = KeyStore::new();
    // The local key id ties the key bag to its certificate bag; any unique bytes do.
    let chain = PrivateKeyChain::new(alias, key, certs);
    store.add_entry(alias, KeyStoreEntry::PrivateKeyChain(chain));
    // 2048 rounds (the writer's default is 10,000): the bundle guards a throwaway test
    // key, and in a debug build each PBKDF2 round costs, at every cluster start.
    store
        .writer(password)
        .encryption_iterations(2048)
        .mac_iterations(2048)
        .write()
        .map_err(bad)
}

fn pem_to_der(pem_text: &str) -> Result<Vec<u8>, KitError> {
    use base64::Engine as _;
    let body: String = pem_text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| KitError::Setup(format!("decoding PEM: {e}")))
}

impl Pki {
    /// Generates every certificate and writes the files into `dir` (created if needed).
    pub fn generate(dir: &Path) -> Result<Self, KitError> {
        fs::create_dir_all(dir)
            .map_err(|e| KitError::Setup(format!("creating {}: {e}", dir.display())))?;
        let now = OffsetDateTime::now_utc();
        let valid = (now - TimeDuration::days(1), now + TimeDuration::days(365));
        let here = ["127.0.0.1", "localhost"];
        let ca = Authority::new("courier test CA", now)?;
        let unknown = Authority::new("courier unknown CA", now)?;
        let server = |cn, sans, (not_before, not_after)| Leaf {
            common_name: cn,
            sans,
            server: true,
            not_before,
            not_after,
        };
        let (broker, _, _) = issue(&ca, &server("localhost", &here, valid), dir, "broker")?;
        let (client, client_key, client_der) = issue(
            &ca,
            &Leaf {
                common_name: "courier-client",
                sans: &[],
                server: false,
                not_before: valid.0,
                not_after: valid.1,
            },
            dir,
            "client",
        )?;
        let (untrusted_broker, _, _) = issue(
            &unknown,
            &server("localhost", &here, valid),
            dir,
            "untrusted-broker",
        )?;
        let (untrusted_client, _, _) = issue(
            &unknown,
            &Leaf {
                common_name: "courier-untrusted-client",
                sans: &[],
                server: false,
                not_before: valid.0,
                not_after: valid.1,
            },
            dir,
            "untrusted-client",
        )?;
        let (wrong_host, _, _) = issue(
            &ca,
            &server("wrong.example", &["wrong.example"], valid),
            dir,
            "wrong-host",
        )?;
        let (expired, _, _) = issue(
            &ca,
            &server(
                "localhost",
                &here,
                (now - TimeDuration::days(30), now - TimeDuration::days(1)),
            ),
            dir,
            "expired",
        )?;

        let password = CLIENT_KEY_PASSWORD.to_string();
        let encrypted_key_pem = encrypt_key(client_key.serialized_der(), &password)?;
        let encrypted_key_path = dir.join("client-encrypted.key");
        write(&encrypted_key_path, encrypted_key_pem.as_bytes())?;
        let encrypted_keystore_path = dir.join("client-encrypted-keystore.pem");
        write(
            &encrypted_keystore_path,
            format!("{encrypted_key_pem}{}", client.cert_pem).as_bytes(),
        )?;
        let ca_der = pem_to_der(&ca.cert_pem)?;
        let p12 = pkcs12(
            client_key.serialized_der(),
            &[&client_der, &ca_der],
            "courier-client",
            &password,
        )?;
        let pkcs12_path = dir.join("client.p12");
        write(&pkcs12_path, &p12)?;

        Ok(Self {
            dir: dir.to_path_buf(),
            ca: ca.write(dir, "ca")?,
            broker,
            client,
            client_key: ClientKeyFiles {
                encrypted_key_pem,
                encrypted_key_path,
                encrypted_keystore_path,
                pkcs12_path,
                password,
            },
            unknown_ca: unknown.write(dir, "unknown-ca")?,
            untrusted_broker,
            untrusted_client,
            wrong_host,
            expired,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn material_is_written_and_keys_round_trip() {
        let dir = std::env::temp_dir().join(format!("courier-pki-test-{}", std::process::id()));
        let pki = Pki::generate(&dir).unwrap();
        for path in [
            &pki.ca.cert_path,
            &pki.broker.keystore_path,
            &pki.client.key_path,
            &pki.client_key.encrypted_key_path,
            &pki.client_key.pkcs12_path,
            &pki.expired.cert_path,
        ] {
            assert!(
                fs::metadata(path).unwrap().len() > 100,
                "{}",
                path.display()
            );
        }
        assert!(pki.broker.cert_pem.matches("BEGIN CERTIFICATE").count() == 2);
        assert!(pki.broker.cert_pem.ends_with(&pki.ca.cert_pem));
        assert!(pki
            .untrusted_broker
            .cert_pem
            .ends_with(&pki.unknown_ca.cert_pem));

        // The encrypted key decrypts with its password to the plain key, and not
        // without it.
        let enc = pem_to_der(&pki.client_key.encrypted_key_pem).unwrap();
        let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(enc.as_slice()).unwrap();
        let plain = info.decrypt(CLIENT_KEY_PASSWORD).unwrap();
        assert_eq!(plain.as_bytes(), pem_to_der(&pki.client.key_pem).unwrap());
        assert!(info.decrypt("wrong").is_err());

        // The PKCS#12 bundle opens with its password and holds the client's chain.
        let p12 = fs::read(&pki.client_key.pkcs12_path).unwrap();
        let store = p12_keystore::KeyStore::from_pkcs12(
            &p12,
            CLIENT_KEY_PASSWORD,
            p12_keystore::Pkcs12ImportPolicy::default(),
        )
        .unwrap();
        let (_, chain) = store.private_key_chain().unwrap();
        assert_eq!(chain.certs().len(), 2);
        assert_eq!(
            chain.key().as_der(),
            pem_to_der(&pki.client.key_pem).unwrap()
        );
        assert!(p12_keystore::KeyStore::from_pkcs12(
            &p12,
            "wrong",
            p12_keystore::Pkcs12ImportPolicy::default()
        )
        .is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
