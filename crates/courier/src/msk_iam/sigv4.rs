//! AWS Signature Version 4, query-string form ("presigned URL"), for requests that sign
//! no header but `host` and carry no body: all MSK IAM needs, and no more.
//!
//! Steps as AWS documents them ("Create a signed AWS API request", "Authenticating
//! requests: using query parameters"):
//!
//! 1. the canonical request: method, canonical URI, canonical query string (every
//!    parameter, the `X-Amz-*` ones included but `X-Amz-Signature`, URI-encoded and
//!    sorted), canonical headers (`host:<host>`), signed headers (`host`) and the hex
//!    SHA-256 of the empty payload;
//! 2. the string to sign: `AWS4-HMAC-SHA256`, the timestamp, the credential scope
//!    `<date>/<region>/<service>/aws4_request` and the hex SHA-256 of the canonical
//!    request;
//! 3. the signing key, HMAC-SHA256 chained from `"AWS4" + secret` over the date, region,
//!    service and `aws4_request`, and the signature, the hex HMAC of the string to sign.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const SIGNED_HEADERS: &str = "host";

/// A request to presign. Parameter names and values are given decoded; they are
/// URI-encoded here, the same way for the URL and for the canonical query.
pub(crate) struct Request<'a> {
    pub method: &'a str,
    pub host: &'a str,
    /// The canonical URI, already normalized (`/` for MSK).
    pub path: &'a str,
    /// The operation's own parameters, in the order the URL gets them.
    pub params: &'a [(&'a str, &'a str)],
    pub service: &'a str,
    pub region: &'a str,
    pub expires_secs: u64,
}

/// Who signs.
pub(crate) struct Signer<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub session_token: Option<&'a str>,
}

/// A presigned request, with the intermediate texts for tests to compare against
/// published ones. No `Debug`: the query and the canonical request hold the session
/// token.
pub(crate) struct Presigned {
    /// The URL's query (without `?`): the operation's parameters, then the `X-Amz-*`
    /// ones, `X-Amz-Signature` last.
    pub query: String,
    // Only the tests read these: the query holds all a token needs.
    #[cfg_attr(not(test), allow(dead_code))]
    pub canonical_request: String,
    #[cfg_attr(not(test), allow(dead_code))]
    pub string_to_sign: String,
    #[cfg_attr(not(test), allow(dead_code))]
    pub signature: String,
}

/// A signing time in SigV4's two forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AmzDate {
    /// `YYYYMMDD`, for the credential scope.
    pub date: String,
    /// `YYYYMMDDTHHMMSSZ`, for `X-Amz-Date`.
    pub date_time: String,
    /// The time truncated to whole seconds (what `X-Amz-Date` says, so what the token's
    /// expiry counts from).
    pub unix_secs: u64,
}

/// The last second `X-Amz-Date` can write with four year digits: 9999-12-31T23:59:59Z.
const LAST_FOUR_DIGIT_YEAR_SECOND: u64 = 253_402_300_799;

impl AmzDate {
    /// The UTC date and time of `at`, or `None` outside 1970..=9999 (a clock that far
    /// off cannot sign anything AWS accepts, and the formats have no room for it).
    pub fn new(at: SystemTime) -> Option<AmzDate> {
        let secs = at.duration_since(UNIX_EPOCH).ok()?.as_secs();
        if secs > LAST_FOUR_DIGIT_YEAR_SECOND {
            return None;
        }
        let (y, m, d) = civil_from_days(secs / 86_400);
        let s = secs % 86_400;
        let date = format!("{y:04}{m:02}{d:02}");
        let date_time = format!("{date}T{:02}{:02}{:02}Z", s / 3600, s % 3600 / 60, s % 60);
        Some(AmzDate {
            date,
            date_time,
            unix_secs: secs,
        })
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01, by shifting to years
/// that start on March 1st (so the leap day is the last day of a year) and counting
/// 400-year eras of 146 097 days.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Days from 0000-03-01 to 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months counted from March: 0 = March .. 11 = February.
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

/// SigV4's URI encoding: RFC 3986's unreserved characters stay, every other byte of the
/// UTF-8 text is `%XX` with upper-case hex (`/` too, and a space is `%20`, never `+`).
pub(crate) fn uri_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Presigns `request` for `signer` at `at`.
pub(crate) fn presign(request: &Request<'_>, signer: &Signer<'_>, at: &AmzDate) -> Presigned {
    let scope = format!(
        "{}/{}/{}/aws4_request",
        at.date, request.region, request.service
    );
    let credential = format!("{}/{scope}", signer.access_key_id);
    let expires = request.expires_secs.to_string();
    // The order botocore writes them in (the official MSK signers' URLs follow their
    // SDK's order; the signature does not depend on it, the canonical query is sorted).
    let mut auth: Vec<(&str, &str)> = vec![
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", &credential),
        ("X-Amz-Date", &at.date_time),
        ("X-Amz-Expires", &expires),
        ("X-Amz-SignedHeaders", SIGNED_HEADERS),
    ];
    if let Some(token) = signer.session_token {
        // Inside the signature: MSK, like most services, wants the token signed.
        auth.push(("X-Amz-Security-Token", token));
    }
    let encoded: Vec<(String, String)> = request
        .params
        .iter()
        .chain(&auth)
        .map(|(k, v)| (uri_encode(k), uri_encode(v)))
        .collect();

    let mut sorted: Vec<&(String, String)> = encoded.iter().collect();
    // By encoded name, then encoded value, comparing bytes.
    sorted.sort();
    let canonical_query = join_pairs(sorted.into_iter());
    let payload_hash = hex(&Sha256::digest(b""));
    let canonical_request = format!(
        "{}\n{}\n{canonical_query}\nhost:{}\n\n{SIGNED_HEADERS}\n{payload_hash}",
        request.method, request.path, request.host
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{scope}\n{}",
        at.date_time,
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );

    let mut key = hmac_sha256(
        format!("AWS4{}", signer.secret_access_key).as_bytes(),
        at.date.as_bytes(),
    );
    for part in [request.region, request.service, "aws4_request"] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    let signature = hex(&hmac_sha256(&key, string_to_sign.as_bytes()));

    let mut query = join_pairs(encoded.iter());
    query.push_str("&X-Amz-Signature=");
    query.push_str(&signature);
    Presigned {
        query,
        canonical_request,
        string_to_sign,
        signature,
    }
}

fn join_pairs<'a>(pairs: impl Iterator<Item = &'a (String, String)>) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// The credentials, region, service, expiry and time of every case in AWS's SigV4
    /// test suite (published in the AWS General Reference, kept in awslabs/aws-c-auth's
    /// `tests/aws-signing-test-suite/v4`), of which these are the query-signed
    /// (presigned) variants.
    fn suite_case(params: &[(&str, &str)], session_token: Option<&str>) -> Presigned {
        let request = Request {
            method: "GET",
            host: "example.amazonaws.com",
            path: "/",
            params,
            service: "service",
            region: "us-east-1",
            expires_secs: 3600,
        };
        let signer = Signer {
            access_key_id: "AKIDEXAMPLE",
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session_token,
        };
        // 2015-08-30T12:36:00Z
        presign(&request, &signer, &AmzDate::new(at(1_440_938_160)).unwrap())
    }

    const SUITE_AUTH_QUERY: &str = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=\
        AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fservice%2Faws4_request&X-Amz-Date=20150830T123600Z\
        &X-Amz-Expires=3600";

    /// Checks one suite case: its `query-canonical-request.txt` (given here as the
    /// canonical query, the rest being the same for every case), the last line of its
    /// `query-string-to-sign.txt` and its `query-signature.txt`.
    fn check(p: &Presigned, canonical_query: &str, request_hash: &str, signature: &str) {
        let canonical_request = format!(
            "GET\n/\n{canonical_query}\nhost:example.amazonaws.com\n\nhost\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(p.canonical_request, canonical_request);
        assert_eq!(
            p.string_to_sign,
            format!(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n\
                 {request_hash}"
            )
        );
        assert_eq!(p.signature, signature);
        assert!(p.query.ends_with(&format!("&X-Amz-Signature={signature}")));
    }

    #[test]
    fn aws_suite_get_vanilla_query() {
        // get-vanilla and get-vanilla-query: no parameters of the request's own.
        let p = suite_case(&[], None);
        check(
            &p,
            &format!("{SUITE_AUTH_QUERY}&X-Amz-SignedHeaders=host"),
            "bb7705b4aa3cb8e8f5e1e0b3d4c0b64030797a313c8ceee43e33117cc43eadc5",
            "e93c787ed7f371d5c6b165c1b38ede9550f4dce4144713e844b25b7192d3865d",
        );
    }

    #[test]
    fn aws_suite_get_vanilla_query_order_key_case() {
        // The request says Param2 first; the canonical query sorts.
        let p = suite_case(&[("Param2", "value2"), ("Param1", "value1")], None);
        check(
            &p,
            &format!("Param1=value1&Param2=value2&{SUITE_AUTH_QUERY}&X-Amz-SignedHeaders=host"),
            "b82878ecb2ab7ad194b9fe79b2946c2a36ee1627a219408089b2d774c1a0cedb",
            "86012e2c9ad4d77369f5d81c11f75158aae4f895a085212cc6d3f923d300bed5",
        );
        // The URL keeps the request's order.
        assert!(p
            .query
            .starts_with("Param2=value2&Param1=value1&X-Amz-Algorithm="));
    }

    #[test]
    fn aws_suite_get_vanilla_empty_query_key() {
        let p = suite_case(&[("Param1", "value1")], None);
        check(
            &p,
            &format!("Param1=value1&{SUITE_AUTH_QUERY}&X-Amz-SignedHeaders=host"),
            "74828b608f939673ed5a839190452a943b0178760f258da766209b21f8ca3f86",
            "49096700cbbaa5753443850f40df10f904fc2fdb544dc9512203cc77c471a9de",
        );
    }

    #[test]
    fn aws_suite_get_vanilla_query_unreserved() {
        let unreserved = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let p = suite_case(&[(unreserved, unreserved)], None);
        check(
            &p,
            &format!("{unreserved}={unreserved}&{SUITE_AUTH_QUERY}&X-Amz-SignedHeaders=host"),
            "c77f27ef2b499fbfee3f0b3c88bba7057b2b31ee9b62047078a5e0d6be91fd58",
            "8e76a88a7433637b12778d5592799b29ad21ecd6cf6325051c21d86f0acda2bf",
        );
    }

    #[test]
    fn aws_suite_get_vanilla_utf8_query() {
        let p = suite_case(&[("\u{1234}", "bar")], None);
        check(
            &p,
            &format!("%E1%88%B4=bar&{SUITE_AUTH_QUERY}&X-Amz-SignedHeaders=host"),
            "b2e8ae8e48ec880defebc6f6dc1d9fbc9f1856b33146f2943060ca71a50a7a77",
            "0bdd809b1519ac4f0c1dc3540e2cc46bd0c7f778eda408b2ebf3b913d21ff600",
        );
    }

    #[test]
    fn aws_suite_get_vanilla_query_order_encoded() {
        // Sorted by the *encoded* names: "%E1..." before "Param" before "Param-3".
        let p = suite_case(
            &[
                ("Param-3", "Value3"),
                ("Param", "Value2"),
                ("\u{1234}", "Value1"),
            ],
            None,
        );
        check(
            &p,
            &format!(
                "%E1%88%B4=Value1&Param=Value2&Param-3=Value3&{SUITE_AUTH_QUERY}\
                 &X-Amz-SignedHeaders=host"
            ),
            "9808d6cdc8245c74e705c68350fc6a62b91778cdd613890e5d177998c02c6f53",
            "c5f1848ceec943ac2ca68ee720460c23aaae30a2300586597ada94c4a65e4787",
        );
    }

    #[test]
    fn aws_suite_get_vanilla_with_session_token() {
        let token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
        let p = suite_case(&[], Some(token));
        check(
            &p,
            &format!("{SUITE_AUTH_QUERY}&X-Amz-Security-Token={token}&X-Amz-SignedHeaders=host"),
            "cb30434103085aa9e73780fc60dc9a9df818fd2a7b1de12a9f6f4d791f898761",
            "7ff2b50b376cb4d151970630573d6291dc128cc5c2a12ffb237f73cc53f67b6c",
        );
    }

    #[test]
    fn uri_encoding_keeps_only_unreserved_characters() {
        assert_eq!(
            uri_encode("kafka-cluster:Connect"),
            "kafka-cluster%3AConnect"
        );
        assert_eq!(uri_encode("a/b+c=d e%"), "a%2Fb%2Bc%3Dd%20e%25");
        assert_eq!(uri_encode("é"), "%C3%A9");
        for b in 0u8..=0x7f {
            let s = char::from(b).to_string();
            let e = uri_encode(&s);
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                assert_eq!(e, s);
            } else {
                assert_eq!(e, format!("%{b:02X}"));
            }
        }
    }

    #[test]
    fn amz_dates_at_known_instants() {
        let d = |secs| {
            let a = AmzDate::new(at(secs)).unwrap();
            assert_eq!(a.unix_secs, secs);
            assert!(a.date_time.starts_with(&a.date));
            a.date_time
        };
        assert_eq!(d(0), "19700101T000000Z");
        assert_eq!(d(951_782_399), "20000228T235959Z");
        assert_eq!(d(951_782_400), "20000229T000000Z"); // 2000 is a leap year
        assert_eq!(d(1_440_938_160), "20150830T123600Z");
        assert_eq!(d(4_107_542_399), "21000228T235959Z");
        assert_eq!(d(4_107_542_400), "21000301T000000Z"); // 2100 is not
        assert_eq!(d(LAST_FOUR_DIGIT_YEAR_SECOND), "99991231T235959Z");
        assert_eq!(AmzDate::new(at(LAST_FOUR_DIGIT_YEAR_SECOND + 1)), None);
        assert_eq!(AmzDate::new(UNIX_EPOCH - Duration::from_secs(1)), None);
        // Sub-second parts are dropped, not rounded.
        let a = AmzDate::new(at(59) + Duration::from_millis(999)).unwrap();
        assert_eq!(
            (a.date_time.as_str(), a.unix_secs),
            ("19700101T000059Z", 59)
        );
    }

    #[test]
    fn every_day_of_a_gregorian_cycle_follows_the_one_before() {
        // A whole 400-year cycle (the calendar repeats after it), checked day by day
        // against the month lengths, so every leap-year rule is exercised.
        fn days_in(y: u64, m: u64) -> u64 {
            match m {
                4 | 6 | 9 | 11 => 30,
                2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
                2 => 28,
                _ => 31,
            }
        }
        let mut prev = civil_from_days(0);
        assert_eq!(prev, (1970, 1, 1));
        for day in 1..=146_097 {
            let (y, m, d) = prev;
            let expected = if d < days_in(y, m) {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
            let got = civil_from_days(day);
            assert_eq!(got, expected, "day {day}");
            prev = got;
        }
        assert_eq!(prev, (2370, 1, 1));
    }
}
