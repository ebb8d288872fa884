//! DescribeConfigs (API key 32) responses, v1..=4.

use super::{DecodeError, Reader, Response};

/// Another source of a config's value, in precedence order (v1+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeConfigsSynonym {
    /// Config name at that source (e.g. the broker-level name).
    pub name: String,
    /// Its value there, `None` if sensitive or unset.
    pub value: Option<String>,
    /// The source (ConfigSource id: 1 topic, 4 static broker, 5 default, ...).
    pub source: i8,
}

/// One config of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeConfigsResourceResult {
    /// Config name.
    pub name: String,
    /// Effective value, `None` if sensitive or unset.
    pub value: Option<String>,
    /// Whether it is read-only.
    pub read_only: bool,
    /// Where the value comes from (ConfigSource id).
    pub config_source: i8,
    /// Whether it is sensitive.
    pub is_sensitive: bool,
    /// Other sources of the value, when synonyms were asked for.
    pub synonyms: Vec<DescribeConfigsSynonym>,
    /// Data type id (v3+; 0, unknown, before).
    pub config_type: i8,
    /// Documentation, when asked for (v3+; invalid UTF-8 replaced).
    pub documentation: Option<String>,
}

/// The configs of one resource, or its error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeConfigsResult {
    /// Error code, 0 for none.
    pub error_code: i16,
    /// Error message, if any (invalid UTF-8 replaced).
    pub error_message: Option<String>,
    /// Resource type (2 topic, 4 broker, ...).
    pub resource_type: i8,
    /// Resource name.
    pub resource_name: String,
    /// The configs.
    pub configs: Vec<DescribeConfigsResourceResult>,
}

/// A DescribeConfigs response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeConfigsResponse {
    /// Throttle time in milliseconds.
    pub throttle_time_ms: i32,
    /// One result per resource asked for.
    pub results: Vec<DescribeConfigsResult>,
}

fn min_string(flexible: bool) -> usize {
    if flexible {
        1
    } else {
        2
    }
}

fn min_array(flexible: bool) -> usize {
    if flexible {
        1
    } else {
        4
    }
}

/// Smallest result entry: error_code, error_message, resource_type, resource_name,
/// configs, tags.
fn min_result_size(flexible: bool) -> usize {
    2 + 2 * min_string(flexible) + 1 + min_array(flexible) + usize::from(flexible)
}

/// Smallest config entry at `version`.
fn min_entry_size(version: i16, flexible: bool) -> usize {
    let v3 = if version >= 3 {
        1 + min_string(flexible)
    } else {
        0
    };
    2 * min_string(flexible) + 3 + min_array(flexible) + v3 + usize::from(flexible)
}

/// Smallest synonym entry: name, value, source, tags.
fn min_synonym_size(flexible: bool) -> usize {
    2 * min_string(flexible) + 1 + usize::from(flexible)
}

fn read_entry(
    r: &mut Reader<'_>,
    version: i16,
) -> Result<DescribeConfigsResourceResult, DecodeError> {
    let flexible = r.is_flexible();
    let entry = DescribeConfigsResourceResult {
        name: r.string("name")?,
        value: r.nullable_string("value")?,
        read_only: r.bool("read_only")?,
        config_source: r.i8("config_source")?,
        is_sensitive: r.bool("is_sensitive")?,
        synonyms: r.array("synonyms", min_synonym_size(flexible), |r| {
            let s = DescribeConfigsSynonym {
                name: r.string("name")?,
                value: r.nullable_string("value")?,
                source: r.i8("source")?,
            };
            r.skip_tagged_fields("tagged_fields")?;
            Ok(s)
        })?,
        config_type: if version >= 3 {
            r.i8("config_type")?
        } else {
            0
        },
        documentation: if version >= 3 {
            r.nullable_string_lossy("documentation")?
        } else {
            None
        },
    };
    r.skip_tagged_fields("tagged_fields")?;
    Ok(entry)
}

impl DescribeConfigsResult {
    /// The config named `name`, if listed.
    pub fn config(&self, name: &str) -> Option<&DescribeConfigsResourceResult> {
        self.configs.iter().find(|c| c.name == name)
    }
}

impl Response for DescribeConfigsResponse {
    const NAME: &'static str = "DescribeConfigs";
    const API_KEY: i16 = 32;
    const MIN_VERSION: i16 = 1;
    const MAX_VERSION: i16 = 4;
    const FIRST_FLEXIBLE_VERSION: Option<i16> = Some(4);

    fn read(r: &mut Reader<'_>, version: i16) -> Result<Self, DecodeError> {
        let flexible = r.is_flexible();
        let throttle_time_ms = r.i32("throttle_time_ms")?;
        let results = r.array("results", min_result_size(flexible), |r| {
            let res = DescribeConfigsResult {
                error_code: r.i16("error_code")?,
                error_message: r.nullable_string_lossy("error_message")?,
                resource_type: r.i8("resource_type")?,
                resource_name: r.string("resource_name")?,
                configs: r.array("configs", min_entry_size(version, flexible), |r| {
                    read_entry(r, version)
                })?,
            };
            r.skip_tagged_fields("tagged_fields")?;
            Ok(res)
        })?;
        r.skip_tagged_fields("tagged_fields")?;
        Ok(DescribeConfigsResponse {
            throttle_time_ms,
            results,
        })
    }
}
