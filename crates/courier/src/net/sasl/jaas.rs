//! `sasl.jaas.config`: the Java client's login configuration, as users paste it.
//!
//! The syntax is one entry of a JAAS configuration file (Java's `ConfigFile`, read by
//! Kafka's `JaasConfig` with a `StreamTokenizer`):
//!
//! ```text
//! <LoginModuleClass> <flag> key="value" key2=value2 ... ;
//! ```
//!
//! The flag is `required`, `requisite`, `sufficient` or `optional` (Kafka ignores it:
//! there is one module). Values are double- or single-quoted strings with backslash
//! escapes, or unquoted words of letters, digits and `. _ - $`. Whitespace, newlines and
//! `//` or `/* */` comments may appear between tokens. courier also accepts a missing
//! final `;`, which Java does not.
//!
//! Errors never quote the input: a malformed line may hold a password anywhere, so they
//! say where (line and column) and what was expected, and name only options courier
//! knows.

use std::fmt;

use super::oauthbearer::SaslExtensions;
use crate::config::Secret;

const PLAIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";
const SCRAM_MODULE: &str = "org.apache.kafka.common.security.scram.ScramLoginModule";
const OAUTH_MODULE: &str = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule";

/// Options whose names courier may show in errors: those of the modules it maps.
const KNOWN_OPTIONS: &[&str] = &[
    "username",
    "password",
    "tokenauth",
    "clientId",
    "clientSecret",
    "scope",
];

/// A parsed `sasl.jaas.config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JaasConfig {
    login: JaasLogin,
    ignored_options: Vec<String>,
}

impl JaasConfig {
    /// Parses `sasl.jaas.config`.
    ///
    /// # Errors
    ///
    /// [`JaasError`] for a malformed line, a login module courier does not support, or
    /// options the module needs and lacks. The error never contains a value from the line.
    pub fn parse(text: &str) -> Result<JaasConfig, JaasError> {
        let entry = parse_entry(text)?;
        map_entry(entry)
    }

    /// What the configuration logs in with.
    pub fn login(&self) -> &JaasLogin {
        &self.login
    }

    /// The login, by value.
    pub fn into_login(self) -> JaasLogin {
        self.login
    }

    /// Options the module does not use, which Java ignores too; worth a warning, since a
    /// misspelt option name lands here.
    pub fn ignored_options(&self) -> &[String] {
        &self.ignored_options
    }
}

/// The credentials a login module yields. `Debug` hides the secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JaasLogin {
    /// `PlainLoginModule`: SASL/PLAIN.
    Plain {
        /// `username`.
        username: String,
        /// `password`.
        password: Secret,
    },
    /// `ScramLoginModule`: SASL/SCRAM-SHA-256 or -512 (`sasl.mechanism` says which).
    Scram {
        /// `username` (a delegation token's id when `token_auth`).
        username: String,
        /// `password` (a delegation token's HMAC when `token_auth`).
        password: Secret,
        /// `tokenauth="true"`: a delegation token (KIP-48).
        token_auth: bool,
    },
    /// `OAuthBearerLoginModule`: SASL/OAUTHBEARER with a token from an OAuth server.
    OAuthBearer(OAuthBearerLogin),
}

/// `OAuthBearerLoginModule`'s options (KIP-768's client credentials, KIP-342's
/// extensions).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OAuthBearerLogin {
    /// `clientId`.
    pub client_id: Option<String>,
    /// `clientSecret`.
    pub client_secret: Option<Secret>,
    /// `scope`.
    pub scope: Option<String>,
    /// The `extension_<name>="value"` options, as SASL extensions (`<name>=value`).
    pub extensions: SaslExtensions,
}

/// Why `sasl.jaas.config` cannot be used. Never contains a value from the line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JaasError {
    /// The line does not follow the syntax.
    Syntax {
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column (in characters) of the problem.
        column: usize,
        /// What was expected there.
        expected: &'static str,
    },
    /// More than one login module: Kafka's clients take exactly one.
    MultipleModules,
    /// A login module courier does not support.
    UnsupportedModule {
        /// The module's class name, when it looks like one (else it might be a password
        /// pasted in the wrong place, and is not shown).
        module: Option<String>,
        /// What to use instead.
        advice: &'static str,
    },
    /// A required option is missing.
    MissingOption {
        /// The module's short name.
        module: &'static str,
        /// The option.
        option: &'static str,
    },
    /// An option appears twice.
    DuplicateOption {
        /// The option's name, if it is one courier knows.
        option: Option<String>,
        /// 1-based line of the second one.
        line: usize,
    },
    /// An option's value is unusable.
    InvalidOption {
        /// The option's name.
        option: String,
        /// What is wrong with it (never the value itself).
        detail: String,
    },
    /// An option courier does not implement.
    UnsupportedOption {
        /// The option's name.
        option: String,
        /// Why, and what to use instead.
        advice: &'static str,
    },
}

impl fmt::Display for JaasError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sasl.jaas.config: ")?;
        match self {
            JaasError::Syntax {
                line,
                column,
                expected,
            } => write!(f, "line {line}, column {column}: expected {expected}"),
            JaasError::MultipleModules => f.write_str(
                "more than one login module; Kafka clients take exactly one, ended by \";\"",
            ),
            JaasError::UnsupportedModule {
                module: Some(module),
                advice,
            } => write!(
                f,
                "courier does not support the login module {module}: {advice}"
            ),
            JaasError::UnsupportedModule {
                module: None,
                advice,
            } => write!(
                f,
                "the first word is not a login module class name: {advice}"
            ),
            JaasError::MissingOption { module, option } => {
                write!(f, "{module} needs the option {option}")
            }
            JaasError::DuplicateOption {
                option: Some(option),
                line,
            } => write!(f, "the option {option} is given twice (line {line})"),
            JaasError::DuplicateOption { option: None, line } => {
                write!(f, "an option is given twice (line {line})")
            }
            JaasError::InvalidOption { option, detail } => {
                write!(f, "the option {option} {detail}")
            }
            JaasError::UnsupportedOption { option, advice } => {
                write!(f, "courier does not support the option {option}: {advice}")
            }
        }
    }
}

impl std::error::Error for JaasError {}

const SUPPORTED: &str = "courier reads org.apache.kafka.common.security.plain.PlainLoginModule, \
    ...scram.ScramLoginModule and ...oauthbearer.OAuthBearerLoginModule";

/// One option as written.
struct RawOption {
    key: String,
    value: String,
    line: usize,
}

struct Entry {
    module: String,
    options: Vec<RawOption>,
}

/// A position in the text, for errors.
#[derive(Clone, Copy)]
struct Pos {
    line: usize,
    column: usize,
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    pos: Pos,
}

enum Token {
    Word(String),
    Quoted(String),
    Equals,
    Semicolon,
    End,
}

fn is_word_char(c: char) -> bool {
    // StreamTokenizer's word characters as Kafka sets them up (letters, digits with
    // parseNumbers, '.', '-', '_', '$'), plus everything beyond ASCII, as Java's does.
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '$') || !c.is_ascii()
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Lexer {
            chars: text.chars().peekable(),
            pos: Pos { line: 1, column: 1 },
        }
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.pos.line += 1;
            self.pos.column = 1;
        } else {
            self.pos.column += 1;
        }
        Some(c)
    }

    fn error(pos: Pos, expected: &'static str) -> JaasError {
        JaasError::Syntax {
            line: pos.line,
            column: pos.column,
            expected,
        }
    }

    /// Skips whitespace and comments.
    fn skip(&mut self) -> Result<(), JaasError> {
        loop {
            match self.chars.peek() {
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some('/') => {
                    let start = self.pos;
                    self.bump();
                    match self.bump() {
                        Some('/') => while self.bump().is_some_and(|c| c != '\n') {},
                        Some('*') => {
                            let mut star = false;
                            loop {
                                match self.bump() {
                                    None => {
                                        return Err(Self::error(
                                            start,
                                            "the end of a /* comment */",
                                        ))
                                    }
                                    Some('/') if star => break,
                                    Some(c) => star = c == '*',
                                }
                            }
                        }
                        _ => return Err(Self::error(start, "a comment after \"/\"")),
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// The next token and where it starts.
    fn next(&mut self) -> Result<(Token, Pos), JaasError> {
        self.skip()?;
        let start = self.pos;
        let Some(&c) = self.chars.peek() else {
            return Ok((Token::End, start));
        };
        let token = match c {
            '=' => {
                self.bump();
                Token::Equals
            }
            ';' => {
                self.bump();
                Token::Semicolon
            }
            '"' | '\'' => {
                self.bump();
                Token::Quoted(self.quoted(c, start)?)
            }
            c if is_word_char(c) => {
                let mut word = String::new();
                while let Some(&c) = self.chars.peek().filter(|&&c| is_word_char(c)) {
                    word.push(c);
                    self.bump();
                }
                Token::Word(word)
            }
            _ => {
                return Err(Self::error(
                    start,
                    "a name, a value, \"=\" or \";\" (a value with characters other than \
                     letters, digits and . _ - $ must be quoted)",
                ))
            }
        };
        Ok((token, start))
    }

    /// The rest of a quoted string. Escapes as Java's StreamTokenizer reads them, except
    /// octal ones: `\n`, `\t`, `\r`, and a backslash before anything else stands for that
    /// character (`\"`, `\\`).
    fn quoted(&mut self, quote: char, start: Pos) -> Result<String, JaasError> {
        let mut value = String::new();
        loop {
            match self.bump() {
                None => return Err(Self::error(start, "a closing quote for this value")),
                Some(c) if c == quote => return Ok(value),
                Some('\\') => match self.bump() {
                    None => return Err(Self::error(start, "a closing quote for this value")),
                    Some('n') => value.push('\n'),
                    Some('t') => value.push('\t'),
                    Some('r') => value.push('\r'),
                    Some(c) => value.push(c),
                },
                Some(c) => value.push(c),
            }
        }
    }
}

fn parse_entry(text: &str) -> Result<Entry, JaasError> {
    let mut lexer = Lexer::new(text);
    let module = match lexer.next()? {
        (Token::Word(w), _) => w,
        (Token::End, pos) => return Err(Lexer::error(pos, "a login module class name")),
        (_, pos) => return Err(Lexer::error(pos, "a login module class name")),
    };
    match lexer.next()? {
        (Token::Word(flag), pos) => {
            let known = ["required", "requisite", "sufficient", "optional"];
            if !known.iter().any(|k| k.eq_ignore_ascii_case(&flag)) {
                return Err(Lexer::error(
                    pos,
                    "the flag: required, requisite, sufficient or optional",
                ));
            }
        }
        (_, pos) => {
            return Err(Lexer::error(
                pos,
                "the flag: required, requisite, sufficient or optional",
            ))
        }
    }
    let mut options = Vec::new();
    loop {
        let key = match lexer.next()? {
            (Token::Word(key), _) => key,
            (Token::Semicolon, _) => break,
            (Token::End, _) => return Ok(Entry { module, options }),
            (_, pos) => return Err(Lexer::error(pos, "an option name, or \";\"")),
        };
        let line = lexer.pos.line;
        match lexer.next()? {
            (Token::Equals, _) => {}
            (_, pos) => return Err(Lexer::error(pos, "\"=\" after the option name")),
        }
        let value = match lexer.next()? {
            (Token::Word(v) | Token::Quoted(v), _) => v,
            (_, pos) => return Err(Lexer::error(pos, "the option's value")),
        };
        options.push(RawOption { key, value, line });
    }
    match lexer.next()? {
        (Token::End, _) => Ok(Entry { module, options }),
        _ => Err(JaasError::MultipleModules),
    }
}

/// The module, if the text is one courier maps. Matched by suffix, so that relocated
/// copies of Kafka's classes (`kafkashaded.org.apache.kafka...` in Databricks) work too.
fn module_kind(module: &str) -> Option<&'static str> {
    [PLAIN_MODULE, SCRAM_MODULE, OAUTH_MODULE]
        .into_iter()
        .find(|m| module == *m || module.strip_suffix(m).is_some_and(|p| p.ends_with('.')))
}

/// What to say about a module courier does not map.
fn unsupported_module(module: &str) -> JaasError {
    // Only echo text shaped like a Java class named *LoginModule: anything else may be a
    // secret pasted in the wrong place.
    let looks_like_class = module.contains('.')
        && module.ends_with("LoginModule")
        && module.split('.').all(|s| {
            s.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        });
    let short = module.rsplit('.').next().unwrap_or(module);
    let advice = match short {
        "Krb5LoginModule" => {
            "Kerberos (SASL/GSSAPI) is not implemented; use SASL/SCRAM-SHA-512, or \
             OAUTHBEARER, if the cluster offers it"
        }
        "IAMLoginModule" => {
            "AWS MSK IAM's own mechanism (SASL/AWS_MSK_IAM) is not implemented; MSK's IAM \
             listeners also take OAUTHBEARER: sasl.mechanism=OAUTHBEARER with \
             courier::msk_iam::MskIamTokenProvider (cargo feature msk-iam) as the token \
             provider. MSK also offers SASL/SCRAM (sasl.mechanism=SCRAM-SHA-512, credentials \
             in AWS Secrets Manager)"
        }
        "OAuthBearerLoginModule" | "PlainLoginModule" | "ScramLoginModule" => {
            "only Apache Kafka's own module of that name is understood (org.apache.kafka.\
             common.security...)"
        }
        _ => SUPPORTED,
    };
    JaasError::UnsupportedModule {
        module: looks_like_class.then(|| module.to_owned()),
        advice: if looks_like_class { advice } else { SUPPORTED },
    }
}

fn map_entry(entry: Entry) -> Result<JaasConfig, JaasError> {
    let Some(kind) = module_kind(&entry.module) else {
        return Err(unsupported_module(&entry.module));
    };
    let mut options: Vec<RawOption> = Vec::with_capacity(entry.options.len());
    for option in entry.options {
        if options.iter().any(|o| o.key == option.key) {
            return Err(JaasError::DuplicateOption {
                option: KNOWN_OPTIONS
                    .contains(&option.key.as_str())
                    .then_some(option.key),
                line: option.line,
            });
        }
        options.push(option);
    }
    let mut take = |key: &str| {
        let at = options.iter().position(|o| o.key == key)?;
        Some(options.remove(at).value)
    };
    let short = |m: &str| -> &'static str {
        match m {
            PLAIN_MODULE => "PlainLoginModule",
            SCRAM_MODULE => "ScramLoginModule",
            _ => "OAuthBearerLoginModule",
        }
    };
    let required = |value: Option<String>, option: &'static str| {
        value.ok_or(JaasError::MissingOption {
            module: short(kind),
            option,
        })
    };
    let login = match kind {
        PLAIN_MODULE => JaasLogin::Plain {
            username: required(take("username"), "username")?,
            password: Secret::new(required(take("password"), "password")?),
        },
        SCRAM_MODULE => {
            let username = required(take("username"), "username")?;
            let password = Secret::new(required(take("password"), "password")?);
            // Kafka reads tokenauth with Boolean.parseBoolean: "true" in any case is true.
            let token_auth = match take("tokenauth") {
                None => false,
                Some(v) if v.eq_ignore_ascii_case("true") => true,
                Some(v) if v.eq_ignore_ascii_case("false") => false,
                Some(_) => {
                    return Err(JaasError::InvalidOption {
                        option: "tokenauth".to_owned(),
                        detail: "must be true or false".to_owned(),
                    })
                }
            };
            JaasLogin::Scram {
                username,
                password,
                token_auth,
            }
        }
        _ => {
            let mut login = OAuthBearerLogin {
                client_id: take("clientId"),
                client_secret: take("clientSecret").map(Secret::new),
                scope: take("scope"),
                extensions: SaslExtensions::new(),
            };
            let mut rest = Vec::new();
            for option in options.drain(..) {
                if option.key.starts_with("unsecuredLogin") {
                    return Err(JaasError::UnsupportedOption {
                        option: option.key,
                        advice: "the unsecured OAUTHBEARER login makes an unsigned token, for \
                                 tests only; give clientId and clientSecret for a token \
                                 endpoint, or supply a token",
                    });
                }
                match option.key.strip_prefix("extension_") {
                    Some(name) => {
                        login.extensions.insert(name, option.value).map_err(|e| {
                            JaasError::InvalidOption {
                                detail: extension_detail(&e),
                                option: option.key.clone(),
                            }
                        })?;
                    }
                    None => rest.push(option),
                }
            }
            options = rest;
            JaasLogin::OAuthBearer(login)
        }
    };
    Ok(JaasConfig {
        login,
        ignored_options: options.into_iter().map(|o| o.key).collect(),
    })
}

/// The reason of an extension's rejection, from [`SaslExtensions::insert`]'s error
/// (which names the key, never the value).
fn extension_detail(error: &super::SaslError) -> String {
    match error {
        super::SaslError::InvalidCredentials { detail, .. } => format!("is unusable: {detail}"),
        other => format!("is unusable: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parse(text: &str) -> JaasConfig {
        JaasConfig::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn error(text: &str) -> JaasError {
        JaasConfig::parse(text).unwrap_err()
    }

    #[test]
    fn confluent_cloud_plain_line() {
        let c = parse(
            "org.apache.kafka.common.security.plain.PlainLoginModule required \
             username=\"ABCDEFGHIJ\" password=\"s3cr3t/+=\\\"quoted\\\"\\\\\";",
        );
        assert_eq!(
            c.login(),
            &JaasLogin::Plain {
                username: "ABCDEFGHIJ".into(),
                password: Secret::new("s3cr3t/+=\"quoted\"\\"),
            }
        );
        assert!(c.ignored_options().is_empty());
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn scram_with_unquoted_values_newlines_comments_and_no_semicolon() {
        let c = parse(
            "  org.apache.kafka.common.security.scram.ScramLoginModule\n\tREQUIRED\n\
             // the user\n username=alice.b-c_$ /* the\n password */ password='p\\'w d'\n\
             tokenauth=TRUE debug=true\n",
        );
        assert_eq!(
            c.into_login(),
            JaasLogin::Scram {
                username: "alice.b-c_$".into(),
                password: Secret::new("p'w d"),
                token_auth: true,
            }
        );
        let c = parse(
            "org.apache.kafka.common.security.scram.ScramLoginModule optional username=u \
             password=p tokenauth=\"false\" debug=true;",
        );
        assert_eq!(c.ignored_options(), ["debug"]);
        assert!(matches!(
            c.login(),
            JaasLogin::Scram {
                token_auth: false,
                ..
            }
        ));
    }

    #[test]
    fn oauthbearer_options_and_extensions() {
        let c = parse(
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
             clientId='my-client' clientSecret='my-secret' scope='kafka' \
             extension_logicalCluster='lkc-123' extension_identityPoolId='pool-4';",
        );
        let JaasLogin::OAuthBearer(login) = c.login() else {
            panic!("{c:?}")
        };
        assert_eq!(login.client_id.as_deref(), Some("my-client"));
        assert_eq!(
            login.client_secret.as_ref().map(Secret::expose),
            Some("my-secret")
        );
        assert_eq!(login.scope.as_deref(), Some("kafka"));
        assert_eq!(
            login.extensions.iter().collect::<Vec<_>>(),
            [("logicalCluster", "lkc-123"), ("identityPoolId", "pool-4")]
        );
        assert!(!format!("{c:?}").contains("my-secret"));

        // No options at all is fine: the token may come from elsewhere.
        let c =
            parse("org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;");
        assert_eq!(
            c.login(),
            &JaasLogin::OAuthBearer(OAuthBearerLogin::default())
        );
    }

    #[test]
    fn the_unsecured_oauthbearer_login_is_reported_unsupported() {
        let err = error(
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
             unsecuredLoginStringClaim_sub=\"alice\";",
        );
        assert!(
            matches!(&err, JaasError::UnsupportedOption { option, .. } if option == "unsecuredLoginStringClaim_sub"),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("unsigned token, for tests only"),
            "{err}"
        );
    }

    #[test]
    fn invalid_extensions_name_the_option_not_the_value() {
        let err = error(
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
             extension_auth=x extension_ok='v\u{e9}rysecret';",
        );
        assert!(
            err.to_string().contains("extension_auth is unusable"),
            "{err}"
        );
        let err = error(
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
             extension_ok='v\u{e9}rysecret';",
        );
        let text = err.to_string();
        assert!(text.contains("extension_ok is unusable"), "{text}");
        assert!(!text.contains("rysecret"), "{text}");
    }

    #[test]
    fn relocated_kafka_classes_are_recognized() {
        let c = parse(
            "kafkashaded.org.apache.kafka.common.security.plain.PlainLoginModule required \
             username=u password=p;",
        );
        assert!(matches!(c.login(), JaasLogin::Plain { .. }));
        // A suffix match needs a whole package segment.
        let err = error("xorg.apache.kafka.common.security.plain.PlainLoginModule required;");
        assert!(
            matches!(
                err,
                JaasError::UnsupportedModule {
                    module: Some(_),
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn other_modules_are_refused_with_advice() {
        let err = error(
            "com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true \
             keyTab=\"/etc/k.keytab\" principal=\"kafka@EXAMPLE.COM\";",
        );
        assert_eq!(
            err.to_string(),
            "sasl.jaas.config: courier does not support the login module \
             com.sun.security.auth.module.Krb5LoginModule: Kerberos (SASL/GSSAPI) is not \
             implemented; use SASL/SCRAM-SHA-512, or OAUTHBEARER, if the cluster offers it"
        );
        let err = error("software.amazon.msk.auth.iam.IAMLoginModule required;");
        assert!(
            err.to_string().contains("MSK also offers SASL/SCRAM"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("courier::msk_iam::MskIamTokenProvider (cargo feature msk-iam)"),
            "{err}"
        );
        let err = error("com.example.CustomLoginModule required;");
        assert!(err.to_string().contains(SUPPORTED), "{err}");
        // Something that is not a class name is not echoed: it may be a password.
        let err = error("hunter2secret required;");
        assert_eq!(
            err,
            JaasError::UnsupportedModule {
                module: None,
                advice: SUPPORTED
            }
        );
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn missing_and_duplicate_and_invalid_options() {
        let err =
            error("org.apache.kafka.common.security.plain.PlainLoginModule required username=u;");
        assert_eq!(
            err.to_string(),
            "sasl.jaas.config: PlainLoginModule needs the option password"
        );
        let err =
            error("org.apache.kafka.common.security.scram.ScramLoginModule required password=p;");
        assert_eq!(
            err,
            JaasError::MissingOption {
                module: "ScramLoginModule",
                option: "username"
            }
        );
        let err = error(
            "org.apache.kafka.common.security.plain.PlainLoginModule required username=u\n\
             password=a password=b;",
        );
        assert_eq!(
            err.to_string(),
            "sasl.jaas.config: the option password is given twice (line 2)"
        );
        let err = error(
            "org.apache.kafka.common.security.plain.PlainLoginModule required username=u \
             password=p zz9secret=1 zz9secret=2;",
        );
        assert_eq!(
            err,
            JaasError::DuplicateOption {
                option: None,
                line: 1
            }
        );
        let err = error(
            "org.apache.kafka.common.security.scram.ScramLoginModule required username=u \
             password=p tokenauth=yes;",
        );
        assert_eq!(
            err.to_string(),
            "sasl.jaas.config: the option tokenauth must be true or false"
        );
    }

    #[test]
    fn syntax_errors_say_where_and_what() {
        let m = "org.apache.kafka.common.security.plain.PlainLoginModule";
        for (text, line, column, want) in [
            ("", 1, 1, "a login module class name"),
            ("\"quoted\" required;", 1, 1, "a login module class name"),
            (m, 1, 56, "the flag"),
            (&format!("{m} mandatory;"), 1, 57, "the flag"),
            (
                &format!("{m} required username"),
                1,
                74,
                "\"=\" after the option name",
            ),
            (
                &format!("{m} required username=;"),
                1,
                75,
                "the option's value",
            ),
            (&format!("{m} required\n  =u;"), 2, 3, "an option name"),
            (
                &format!("{m} required password=\"abc"),
                1,
                75,
                "a closing quote",
            ),
            (
                &format!("{m} required password=\"abc\\"),
                1,
                75,
                "a closing quote",
            ),
            (
                &format!("{m} required password=ab+cd;"),
                1,
                77,
                "must be quoted",
            ),
            (
                &format!("{m} required /* open"),
                1,
                66,
                "the end of a /* comment */",
            ),
            (&format!("{m} required / x"), 1, 66, "a comment after"),
        ] {
            match JaasConfig::parse(text) {
                Err(JaasError::Syntax {
                    line: l,
                    column: c,
                    expected,
                }) => {
                    assert_eq!((l, c), (line, column), "{text}: {expected}");
                    assert!(expected.contains(want), "{text}: {expected}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        let err = error(&format!(
            "{m} required username=u password=p; {m} required;"
        ));
        assert_eq!(err, JaasError::MultipleModules);
    }

    #[test]
    fn the_password_never_appears_in_an_error_for_any_truncation_or_corruption() {
        let password = "Pa55w0rd-Zq8Xk";
        let good = format!(
            "org.apache.kafka.common.security.plain.PlainLoginModule required \
             username=\"alice\" password=\"{password}\";"
        );
        for end in 0..good.len() {
            for suffix in ["", "\"", "+", " x=", ";;", " password=\"dup\";"] {
                let text = format!("{}{suffix}", &good[..end]);
                if let Err(e) = JaasConfig::parse(&text) {
                    let shown = format!("{e} {e:?}");
                    assert!(!shown.contains("Zq8Xk"), "{text}: {shown}");
                }
            }
        }
    }

    proptest! {
        /// Arbitrary text never panics.
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = JaasConfig::parse(&text);
        }

        /// A line with a random password, corrupted at a random place: any error it
        /// gives, in Display or Debug, never contains the password.
        #[test]
        fn errors_never_contain_the_password(
            password in "[A-Za-z0-9+/=!@#%^&*()_.,;: '\"\\\\-]{10,30}",
            module in prop_oneof![
                Just("org.apache.kafka.common.security.plain.PlainLoginModule"),
                Just("org.apache.kafka.common.security.scram.ScramLoginModule"),
                Just("org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"),
                Just("com.sun.security.auth.module.Krb5LoginModule"),
            ],
            key in prop_oneof![Just("password"), Just("clientSecret"), Just("extension_x")],
            quoted in any::<bool>(),
            cut in any::<prop::sample::Index>(),
            insert in "\\PC{0,3}",
        ) {
            let escaped = password.replace('\\', "\\\\").replace('"', "\\\"");
            let value = if quoted { format!("\"{escaped}\"") } else { password.clone() };
            let line = format!("{module} required username=\"bob\" {key}={value} tokenauth=true;");
            let at = cut.index(line.len() + 1);
            let at = (0..=at).rev().find(|&i| line.is_char_boundary(i)).unwrap_or(0);
            let text = format!("{}{insert}{}", &line[..at], &line[at..]);
            // A secret long enough not to match words of the messages by chance.
            if let Err(e) = JaasConfig::parse(&text) {
                let shown = format!("{e} {e:?}");
                prop_assert!(!shown.contains(&password), "{}: {}", text, shown);
            }
        }
    }
}
