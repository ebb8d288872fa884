//! DescribeConfigs: a topic's effective configuration, for the durability audit.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{ApiKey, DescribeConfigsRequest};
use kafka_protocol::protocol::StrBytes;

use super::{BrokerConnection, NetError};

/// DescribeConfigs resource type of a topic.
const RESOURCE_TOPIC: i8 = 2;

/// Where a config value comes from (DescribeConfigs v1+ `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic.
    Topic,
    /// A broker setting (dynamic for one broker, dynamic cluster default, or the
    /// broker's `server.properties`).
    Broker,
    /// Kafka's built-in default.
    Default,
    /// Something else (a source this version does not know).
    Other(i8),
}

impl ConfigSource {
    fn from_wire(v: i8) -> Self {
        match v {
            1 => ConfigSource::Topic,
            2..=4 => ConfigSource::Broker,
            5 => ConfigSource::Default,
            other => ConfigSource::Other(other),
        }
    }
}

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigSource::Topic => f.write_str("topic config"),
            ConfigSource::Broker => f.write_str("broker config"),
            ConfigSource::Default => f.write_str("Kafka default"),
            ConfigSource::Other(v) => write!(f, "config source {v}"),
        }
    }
}

/// One effective config entry of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Config name, e.g. `min.insync.replicas`.
    pub name: String,
    /// Effective value (`None` for sensitive values).
    pub value: Option<String>,
    /// Where the value comes from.
    pub source: ConfigSource,
}

/// Reads `keys` of `topic`'s effective configuration (topic setting, else the
/// broker's, else Kafka's default: the broker resolves that). An error code from the
/// broker (unknown topic, authorization) comes back as `Err((code, message))` inside
/// `Ok`.
pub async fn describe_topic_config(
    conn: &BrokerConnection,
    topic: &str,
    keys: &[&str],
) -> Result<Result<Vec<ConfigEntry>, (i16, Option<String>)>, NetError> {
    let version = conn.version(ApiKey::DescribeConfigs)?;
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(StrBytes::from_string(topic.to_owned()))
            .with_configuration_keys(Some(
                keys.iter()
                    .map(|k| StrBytes::from_string((*k).to_owned()))
                    .collect(),
            ))]);
    let resp: courier_core::wire::DescribeConfigsResponse = conn.send(req, version).await?;
    let Some(result) = resp.results.into_iter().next() else {
        return Ok(Err((-1, Some("empty DescribeConfigs response".into()))));
    };
    if result.error_code != 0 {
        return Ok(Err((result.error_code, result.error_message)));
    }
    Ok(Ok(result
        .configs
        .into_iter()
        .map(|c| ConfigEntry {
            name: c.name,
            value: c.value,
            source: ConfigSource::from_wire(c.config_source),
        })
        .collect()))
}
