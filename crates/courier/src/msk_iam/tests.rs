use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use serde_json::Value;

use super::*;
use crate::net::sasl::OAuthBearerToken;

/// Tokens made by AWS's Python signer with fixed credentials and a frozen clock, by
/// `tests/fixtures/msk_iam/generate_python.py` (which says how to regenerate them).
const PYTHON_SIGNER: &str = include_str!("../../tests/fixtures/msk_iam/python_signer.json");

struct Case {
    name: String,
    region: String,
    credentials: Credentials,
    at: SystemTime,
    user_agent: String,
    token: String,
    expiry_ms: u64,
    canonical_request: String,
    string_to_sign: String,
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("fixture field {key} is not a string"))
}

fn python_cases() -> Vec<Case> {
    let doc: Value = serde_json::from_str(PYTHON_SIGNER).expect("fixture is JSON");
    let cases: Vec<Case> = doc["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| {
            let mut credentials =
                Credentials::new(str_of(c, "access_key_id"), str_of(c, "secret_access_key"));
            if let Some(t) = c["session_token"].as_str() {
                credentials = credentials.with_session_token(t);
            }
            Case {
                name: str_of(c, "name").to_owned(),
                region: str_of(c, "region").to_owned(),
                credentials,
                at: UNIX_EPOCH + Duration::from_secs_f64(c["time"].as_f64().expect("time")),
                user_agent: str_of(c, "user_agent").to_owned(),
                token: str_of(c, "token").to_owned(),
                expiry_ms: c["expiry_ms"].as_u64().expect("expiry_ms"),
                canonical_request: str_of(c, "canonical_request").to_owned(),
                string_to_sign: str_of(c, "string_to_sign").to_owned(),
            }
        })
        .collect();
    // A fixture file that lost its cases must not pass by checking nothing.
    assert!(cases.len() >= 4, "{} cases", cases.len());
    assert!(cases.iter().any(|c| c.credentials.session_token.is_some()));
    cases
}

/// Tokens made by AWS's Go signer, by `tests/fixtures/msk_iam/go_signer` (`go run .`):
/// a second implementation (on aws-sdk-go-v2's SigV4 presigner rather than botocore's).
const GO_SIGNER: &str = include_str!("../../tests/fixtures/msk_iam/go_signer.json");

fn decode(token: &str) -> String {
    String::from_utf8(
        URL_SAFE_NO_PAD
            .decode(token)
            .expect("base64url without padding"),
    )
    .expect("UTF-8")
}

fn millis(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).unwrap().as_millis()
}

#[test]
fn tokens_are_byte_for_byte_those_of_the_official_python_signer() {
    for case in python_cases() {
        let name = &case.name;
        // The intermediates first, so a mismatch says which step differs.
        let signed =
            signed_url(&case.region, &case.credentials, case.at, &case.user_agent).expect("signs");
        assert_eq!(
            signed.presigned.canonical_request, case.canonical_request,
            "{name}"
        );
        assert_eq!(
            signed.presigned.string_to_sign, case.string_to_sign,
            "{name}"
        );
        assert_eq!(signed.url, decode(&case.token), "{name}");

        let token = sign(&case.region, &case.credentials, case.at, &case.user_agent).unwrap();
        assert_eq!(token.value.expose(), case.token, "{name}");
        assert_eq!(
            millis(token.expires_at.unwrap()),
            u128::from(case.expiry_ms),
            "{name}"
        );
    }
}

/// `%XX` back to bytes, for the Go signer's `User-Agent` value.
fn percent_decode(text: &str) -> String {
    let mut out = Vec::new();
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex: String = bytes.by_ref().take(2).map(char::from).collect();
            out.push(u8::from_str_radix(&hex, 16).expect("%XX"));
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn tokens_match_the_official_go_signer_once_laid_out_as_it_does() {
    let doc: Value = serde_json::from_str(GO_SIGNER).expect("fixture is JSON");
    let cases = doc["cases"].as_array().expect("cases");
    assert!(cases.len() >= 3);
    for c in cases {
        let name = str_of(c, "name");
        let mut credentials =
            Credentials::new(str_of(c, "access_key_id"), str_of(c, "secret_access_key"));
        if let Some(t) = c["session_token"].as_str() {
            credentials = credentials.with_session_token(t);
        }
        let theirs = decode(str_of(c, "token"));
        // The Go signer reads the clock itself; its expiry says when it signed.
        let expiry_ms = c["expiry_ms"].as_u64().expect("expiry_ms");
        let at = UNIX_EPOCH + Duration::from_millis(expiry_ms) - TOKEN_LIFETIME;
        let (_, agent) = theirs.split_once("&User-Agent=").unwrap();
        let agent = percent_decode(agent.split('&').next().unwrap());
        assert!(agent.starts_with("aws-msk-iam-sasl-signer-go/"), "{agent}");

        let ours = signed_url(str_of(c, "region"), &credentials, at, &agent).unwrap();
        // Go re-encodes the whole query after adding User-Agent, sorting it by name.
        let (base, query) = ours.url.split_once('?').unwrap();
        let mut pairs: Vec<&str> = query.split('&').collect();
        pairs.sort_by_key(|kv| kv.split_once('=').unwrap().0);
        let laid_out = format!("{base}?{}", pairs.join("&"));
        assert_eq!(laid_out, theirs, "{name}");
        assert_eq!(
            URL_SAFE_NO_PAD.encode(&laid_out),
            str_of(c, "token"),
            "{name}"
        );
    }
}

#[test]
fn the_user_agent_is_appended_outside_the_signature() {
    for case in python_cases() {
        let ours = decode(
            sign(&case.region, &case.credentials, case.at, USER_AGENT)
                .unwrap()
                .value
                .expose(),
        );
        let theirs = decode(&case.token);
        let (our_signed, our_agent) = ours.rsplit_once("&User-Agent=").unwrap();
        let (their_signed, their_agent) = theirs.rsplit_once("&User-Agent=").unwrap();
        // Everything up to the signature is the same whatever the agent...
        assert_eq!(our_signed, their_signed, "{}", case.name);
        // ...which is courier's own, encoded as the signers encode theirs.
        assert_eq!(
            our_agent,
            format!("courier%2F{}", env!("CARGO_PKG_VERSION")),
            "{}",
            case.name
        );
        assert_eq!(their_agent, "aws-msk-iam-sasl-signer-python%2F1.0.2");
    }
}

#[test]
fn token_layout_is_the_signers() {
    let case = python_cases()
        .into_iter()
        .find(|c| c.credentials.session_token.is_some())
        .unwrap();
    let url = decode(
        sign(&case.region, &case.credentials, case.at, USER_AGENT)
            .unwrap()
            .value
            .expose(),
    );
    let (base, query) = url.split_once('?').unwrap();
    assert_eq!(
        base,
        format!("https://kafka.{}.amazonaws.com/", case.region)
    );
    let keys: Vec<&str> = query
        .split('&')
        .map(|kv| kv.split_once('=').unwrap().0)
        .collect();
    assert_eq!(
        keys,
        [
            "Action",
            "X-Amz-Algorithm",
            "X-Amz-Credential",
            "X-Amz-Date",
            "X-Amz-Expires",
            "X-Amz-SignedHeaders",
            "X-Amz-Security-Token",
            "X-Amz-Signature",
            "User-Agent",
        ]
    );
    let params: HashMap<&str, &str> = query
        .split('&')
        .map(|kv| kv.split_once('=').unwrap())
        .collect();
    assert_eq!(params["Action"], "kafka-cluster%3AConnect");
    assert_eq!(params["X-Amz-Expires"], "900");
    assert_eq!(params["X-Amz-SignedHeaders"], "host");
    assert!(params["X-Amz-Credential"].ends_with("%2Fkafka-cluster%2Faws4_request"));
}

#[test]
fn tokens_pass_couriers_own_oauthbearer_checks() {
    for case in python_cases() {
        let t = sign(&case.region, &case.credentials, case.at, USER_AGENT).unwrap();
        let expires_at = t.expires_at.unwrap();
        let bearer = OAuthBearerToken::new(t.value)
            .expect("a b64token")
            .with_lifetime(expires_at);
        // Not a JWT: the lifetime can only come from the provider.
        assert!(bearer.jwt_claims().is_none());
        assert_eq!(bearer.expires_at(), Some(expires_at));
    }
}

#[test]
fn expiry_counts_from_the_whole_second_signed() {
    let creds = Credentials::new("AKID", "secret");
    let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_999);
    let t = sign("us-east-1", &creds, at, USER_AGENT).unwrap();
    assert_eq!(
        t.expires_at,
        Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000 + 900))
    );
    assert!(decode(t.value.expose()).contains("X-Amz-Date=20231114T221320Z"));
}

#[test]
fn a_different_second_or_secret_is_a_different_signature() {
    let signature = |secret: &str, secs: u64| {
        let creds = Credentials::new("AKID", secret);
        signed_url(
            "us-east-1",
            &creds,
            UNIX_EPOCH + Duration::from_secs(secs),
            USER_AGENT,
        )
        .unwrap()
        .presigned
        .signature
    };
    let base = signature("secret", 1_700_000_000);
    assert_eq!(base.len(), 64);
    assert_ne!(base, signature("secret", 1_700_000_001));
    assert_ne!(base, signature("secreT", 1_700_000_000));
}

#[test]
fn regions_are_checked() {
    let creds = || Credentials::new("AKID", "secret");
    for good in ["us-east-1", "us-gov-west-1", "cn-north-1", "eu-central-2"] {
        let p = MskIamTokenProvider::new(good, creds()).unwrap();
        assert_eq!(p.region(), good);
    }
    for bad in [
        "",
        "US-EAST-1",
        "us east 1",
        " us-east-1",
        "us-east-1\n",
        "us-east-1.evil.example/",
        "us-east-1/",
        "-us-east-1",
        "us-east-1-",
    ] {
        let e = MskIamTokenProvider::new(bad, creds()).unwrap_err();
        assert_eq!(
            e,
            MskIamError::InvalidRegion {
                region: bad.to_owned()
            }
        );
        assert!(e.to_string().contains("such as us-east-1"), "{e}");
    }
    let e = MskIamTokenProvider::with_credentials_provider(
        "Eu-West-1",
        Arc::new(|| -> Result<Credentials, String> { unreachable!() }),
    )
    .unwrap_err();
    assert!(matches!(e, MskIamError::InvalidRegion { .. }));
}

#[test]
fn empty_credentials_are_refused_before_signing() {
    let e = MskIamTokenProvider::new("us-east-1", Credentials::new("", "secret")).unwrap_err();
    assert_eq!(
        e,
        MskIamError::EmptyCredentials {
            field: "access key id"
        }
    );
    let e = MskIamTokenProvider::new("us-east-1", Credentials::new("AKID", "")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the AWS credentials have an empty secret access key"
    );
}

fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
    let vars: HashMap<String, OsString> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
        .collect();
    move |name| vars.get(name).cloned()
}

#[test]
fn from_env_reads_the_sdk_variables() {
    let env = env_of(&[
        ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "s3cr3t-value"),
        ("AWS_SESSION_TOKEN", "t0ken-value"),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ]);
    let p = MskIamTokenProvider::from_lookup(None, &env).unwrap();
    // AWS_REGION wins over AWS_DEFAULT_REGION, as in the SDKs.
    assert_eq!(p.region(), "eu-west-1");
    let Source::Fixed(c) = &p.source else {
        panic!("fixed credentials")
    };
    assert_eq!(
        c,
        &Credentials::new("ASIAEXAMPLE", "s3cr3t-value").with_session_token("t0ken-value")
    );
    // An explicit region wins over both.
    let p = MskIamTokenProvider::from_lookup(Some("ap-south-1"), &env).unwrap();
    assert_eq!(p.region(), "ap-south-1");

    let env = env_of(&[
        ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "s3cr3t-value"),
        ("AWS_SESSION_TOKEN", ""),
        ("AWS_REGION", ""),
        ("AWS_DEFAULT_REGION", "us-east-2"),
    ]);
    let p = MskIamTokenProvider::from_lookup(None, &env).unwrap();
    assert_eq!(p.region(), "us-east-2");
    let Source::Fixed(c) = &p.source else {
        panic!("fixed credentials")
    };
    assert_eq!(
        c.session_token, None,
        "an empty AWS_SESSION_TOKEN is no token"
    );
}

#[test]
fn from_env_names_what_is_missing() {
    let e = MskIamTokenProvider::from_lookup(
        None,
        &env_of(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
        ]),
    )
    .unwrap_err();
    assert_eq!(e, MskIamError::NoRegion);
    assert!(e.to_string().contains("AWS_REGION or AWS_DEFAULT_REGION"));

    let e = MskIamTokenProvider::from_lookup(
        Some("us-east-1"),
        &env_of(&[("AWS_ACCESS_KEY_ID", "AKID"), ("AWS_SECRET_ACCESS_KEY", "")]),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "AWS_SECRET_ACCESS_KEY is not set (or is empty)"
    );
    let e = Credentials::from_lookup(&env_of(&[("AWS_SECRET_ACCESS_KEY", "s3cr3t")])).unwrap_err();
    assert!(e.to_string().starts_with("AWS_ACCESS_KEY_ID "), "{e}");
    assert!(!e.to_string().contains("s3cr3t"));

    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![b's', 0xff]);
        let env = move |name: &str| match name {
            "AWS_ACCESS_KEY_ID" => Some(OsString::from("AKID")),
            "AWS_SECRET_ACCESS_KEY" => Some(bad.clone()),
            _ => None,
        };
        let e = Credentials::from_lookup(&env).unwrap_err();
        assert_eq!(e.to_string(), "AWS_SECRET_ACCESS_KEY is not valid UTF-8");
    }
}

#[test]
fn secrets_never_show_in_debug_or_errors() {
    let creds = Credentials::new("AKIAEXAMPLE", "very-secret-key").with_session_token("sess-tok");
    let p = MskIamTokenProvider::new("us-east-1", creds.clone()).unwrap();
    for text in [format!("{creds:?}"), format!("{p:?}")] {
        assert!(text.contains("AKIAEXAMPLE"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
        assert!(!text.contains("very-secret-key"), "{text}");
        assert!(!text.contains("sess-tok"), "{text}");
    }
    let token = sign("us-east-1", &creds, SystemTime::now(), USER_AGENT).unwrap();
    assert!(!format!("{token:?}").contains(token.value.expose()));
    // The provider's Debug does not call the application's callback or show its state.
    let rotating = MskIamTokenProvider::with_credentials_provider(
        "us-east-1",
        Arc::new(|| -> Result<Credentials, String> { panic!("not called by Debug") }),
    )
    .unwrap();
    assert!(format!("{rotating:?}").contains("<application provider>"));
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn a_credentials_provider_is_asked_for_every_token() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let provider = MskIamTokenProvider::with_credentials_provider(
        "eu-west-1",
        Arc::new(move || -> Result<Credentials, String> {
            // A new temporary key each time, as a role's credentials rotate.
            let n = counter.fetch_add(1, Ordering::SeqCst);
            Ok(Credentials::new(format!("ASIAROTATED{n}"), "secret").with_session_token("t"))
        }),
    )
    .unwrap();
    let before = SystemTime::now();
    let first = block_on(provider.token()).unwrap();
    let second = block_on(provider.token()).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(decode(first.value.expose()).contains("X-Amz-Credential=ASIAROTATED0%2F"));
    assert!(decode(second.value.expose()).contains("X-Amz-Credential=ASIAROTATED1%2F"));
    // Good for 15 minutes from (the second of) signing.
    let expires = first.expires_at.unwrap();
    let lifetime = expires.duration_since(before).unwrap_or_default();
    assert!(
        lifetime > Duration::from_secs(898) && lifetime <= TOKEN_LIFETIME,
        "{lifetime:?}"
    );
}

#[test]
fn credentials_provider_failures_are_reported() {
    let failing = MskIamTokenProvider::with_credentials_provider(
        "eu-west-1",
        Arc::new(|| -> Result<Credentials, String> { Err("IMDS timed out".into()) }),
    )
    .unwrap();
    assert_eq!(
        block_on(failing.token()).unwrap_err(),
        "the AWS credentials provider failed: IMDS timed out"
    );
    let empty = MskIamTokenProvider::with_credentials_provider(
        "eu-west-1",
        Arc::new(|| -> Result<Credentials, String> { Ok(Credentials::new("AKID", "")) }),
    )
    .unwrap();
    assert_eq!(
        block_on(empty.generate()).unwrap_err(),
        MskIamError::EmptyCredentials {
            field: "secret access key"
        }
    );
}

/// An async provider, as the AWS SDK's credential chain is.
struct AsyncSource;

impl CredentialsProvider for AsyncSource {
    fn credentials(&self) -> CredentialsFuture<'_> {
        Box::pin(async {
            tokio::task::yield_now().await;
            Ok(Credentials::new("AKIDASYNC", "secret"))
        })
    }
}

#[test]
fn async_credentials_providers_work() {
    let p =
        MskIamTokenProvider::with_credentials_provider("us-west-2", Arc::new(AsyncSource)).unwrap();
    let url = decode(block_on(p.token()).unwrap().value.expose());
    assert!(url.starts_with("https://kafka.us-west-2.amazonaws.com/?Action="));
    assert!(url.contains("X-Amz-Credential=AKIDASYNC%2F"));
}

#[test]
fn a_clock_outside_the_formats_range_is_an_error() {
    let creds = Credentials::new("AKID", "secret");
    let e = sign(
        "us-east-1",
        &creds,
        UNIX_EPOCH - Duration::from_secs(1),
        USER_AGENT,
    )
    .unwrap_err();
    assert_eq!(e, MskIamError::Clock);
}

#[test]
fn the_provider_configures_an_oauthbearer_producer() {
    use crate::config::{SaslMechanism, SecurityProtocol};
    use crate::ProducerConfig;
    let p = MskIamTokenProvider::new("eu-west-1", Credentials::new("AKID", "secret")).unwrap();
    let config = ProducerConfig::builder()
        .bootstrap_servers("b-1.c.kafka.eu-west-1.amazonaws.com:9098")
        .security_protocol(SecurityProtocol::SaslSsl)
        .sasl_mechanism(SaslMechanism::OAuthBearer)
        .oauth_token_provider(Arc::new(p))
        .build()
        .unwrap();
    assert_eq!(
        config.sasl().unwrap().mechanism(),
        SaslMechanism::OAuthBearer
    );
}

proptest! {
    /// Whatever the credentials hold, the token is a b64token and its URL has nothing a
    /// URL may not carry raw: every value went through the encoding.
    #[test]
    fn any_credentials_make_a_well_formed_token(
        key_id in "\\PC{1,30}",
        secret in "\\PC{1,50}",
        session in proptest::option::of("\\PC{1,200}"),
        secs in 0u64..253_402_300_799,
    ) {
        let mut creds = Credentials::new(key_id, secret);
        if let Some(s) = session {
            creds = creds.with_session_token(s);
        }
        let t = sign("us-east-1", &creds, UNIX_EPOCH + Duration::from_secs(secs), USER_AGENT)
            .unwrap();
        prop_assert!(OAuthBearerToken::new(t.value.clone()).is_ok());
        let url = decode(t.value.expose());
        let query = url.strip_prefix("https://kafka.us-east-1.amazonaws.com/?").unwrap();
        prop_assert!(query
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~%=&".contains(&b)), "{}", query);
        prop_assert_eq!(query.split('&').count(), 8 + usize::from(creds.session_token.is_some()));
    }
}
