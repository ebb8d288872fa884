//! The Docker backend: one broker in a container through the `testcontainers` crate.
//!
//! Not exercised on courier's CI machines, which have no Docker engine; it is compiled
//! there (`--features docker`) so it keeps building. `COURIER_DOCKER_IMAGE=redpanda`
//! picks `redpandadata/redpanda` instead of `apache/kafka`.
//!
//! The advertised address must be the one the host reaches, which is only known once
//! a port is mapped; mapping a free host port to the same container port sidesteps
//! that without an entrypoint script.

use std::net::TcpListener;
use std::path::Path;

use testcontainers::core::{ContainerPort, WaitFor};
use testcontainers::runners::SyncRunner;
use testcontainers::{Container, GenericImage, ImageExt};

use crate::{KitError, KAFKA_VERSION};

/// Whether a Docker engine answers on this machine.
pub(crate) fn engine_answers() -> bool {
    if let Some(host) = std::env::var_os("DOCKER_HOST") {
        return !host.is_empty();
    }
    Path::new("/var/run/docker.sock").exists()
        && std::process::Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
}

/// A single-broker cluster in a container; removed on drop.
pub(crate) struct DockerCluster {
    _container: Container<GenericImage>,
    port: u16,
}

impl DockerCluster {
    pub(crate) fn start(brokers: usize) -> Result<Self, KitError> {
        if brokers != 1 {
            return Err(KitError::Unsupported(format!(
                "the Docker backend runs one broker; {brokers}-broker clusters need the local \
                 backend (COURIER_KAFKA_BACKEND=local)"
            )));
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| KitError::Setup(format!("no free port: {e}")))?
            .port();
        let redpanda = std::env::var("COURIER_DOCKER_IMAGE").is_ok_and(|v| v == "redpanda");
        let request = if redpanda {
            GenericImage::new("redpandadata/redpanda", "latest")
                .with_wait_for(WaitFor::message_on_either_std(
                    "Successfully started Redpanda",
                ))
                .with_mapped_port(port, ContainerPort::Tcp(port))
                .with_cmd([
                    "redpanda".to_string(),
                    "start".into(),
                    "--mode".into(),
                    "dev-container".into(),
                    "--smp".into(),
                    "1".into(),
                    "--kafka-addr".into(),
                    format!("0.0.0.0:{port}"),
                    "--advertise-kafka-addr".into(),
                    format!("127.0.0.1:{port}"),
                ])
        } else {
            GenericImage::new("apache/kafka", KAFKA_VERSION)
                .with_wait_for(WaitFor::message_on_stdout("Kafka Server started"))
                .with_mapped_port(port, ContainerPort::Tcp(port))
                .with_env_var("KAFKA_NODE_ID", "1")
                .with_env_var("KAFKA_PROCESS_ROLES", "broker,controller")
                .with_env_var(
                    "KAFKA_LISTENERS",
                    format!("PLAINTEXT://0.0.0.0:{port},CONTROLLER://127.0.0.1:9093"),
                )
                .with_env_var(
                    "KAFKA_ADVERTISED_LISTENERS",
                    format!("PLAINTEXT://127.0.0.1:{port}"),
                )
                .with_env_var("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
                .with_env_var(
                    "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
                    "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                )
                .with_env_var("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@127.0.0.1:9093")
                .with_env_var("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
                .with_env_var("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
                .with_env_var("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
                .with_env_var("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
                .with_env_var("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
        };
        let container = request
            .start()
            .map_err(|e| KitError::Setup(format!("starting the Docker container: {e}")))?;
        Ok(Self {
            _container: container,
            port,
        })
    }

    pub(crate) fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}
