//! The Apache Kafka distribution the local backend runs: jars from Maven Central,
//! fetched once per machine into a per-user cache.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::KitError;

/// The pinned Kafka version. `org.apache.kafka:kafka_2.13` and `kafka-tools` both
/// resolve at this version on Maven Central.
pub const KAFKA_VERSION: &str = "4.3.1";

/// What the kit fetches. The slf4j 2 API and its log4j2 binding are named explicitly:
/// Maven's nearest-wins resolution otherwise picks slf4j 1.7 with no binding, Kafka's
/// own logs are dropped, and a broker that fails to start says nothing.
const DEPENDENCIES: &[(&str, &str, &str)] = &[
    ("org.apache.kafka", "kafka_2.13", KAFKA_VERSION),
    ("org.apache.kafka", "kafka-tools", KAFKA_VERSION),
    ("org.slf4j", "slf4j-api", "2.0.17"),
    ("org.apache.logging.log4j", "log4j-slf4j2-impl", "2.25.4"),
];

/// A Kafka installation on this machine: a directory of jars and a `java` to run them.
#[derive(Debug, Clone)]
pub struct KafkaDist {
    libs: PathBuf,
    java: PathBuf,
    cache: PathBuf,
}

impl KafkaDist {
    /// Finds the jars, fetching them with Maven on first use.
    ///
    /// `COURIER_KAFKA_LIBS` names a directory of jars to use as is. Otherwise the jars
    /// live in `$COURIER_CACHE_DIR` (default `$XDG_CACHE_HOME/courier` or
    /// `~/.cache/courier`) under `kafka-<version>/libs`. Concurrent test binaries fetch
    /// once: the fetch holds a file lock.
    pub fn locate() -> Result<Self, KitError> {
        let java = find_java()?;
        let cache = cache_root().join(format!("kafka-{KAFKA_VERSION}"));
        if let Some(libs) = std::env::var_os("COURIER_KAFKA_LIBS") {
            let libs = PathBuf::from(libs);
            if !libs
                .join(format!("kafka_2.13-{KAFKA_VERSION}.jar"))
                .exists()
            {
                return Err(KitError::Setup(format!(
                    "COURIER_KAFKA_LIBS={} does not hold kafka_2.13-{KAFKA_VERSION}.jar: \
                     point it at a directory of Kafka {KAFKA_VERSION} jars or unset it",
                    libs.display()
                )));
            }
            fs::create_dir_all(&cache)
                .map_err(|e| io_setup("creating the cache dir", &cache, e))?;
            return Ok(Self { libs, java, cache });
        }
        fs::create_dir_all(&cache).map_err(|e| io_setup("creating the cache dir", &cache, e))?;
        let libs = cache.join("libs");
        let lock_path = cache.join(".lock");
        let lock = fs::File::create(&lock_path).map_err(|e| io_setup("creating", &lock_path, e))?;
        lock.lock()
            .map_err(|e| io_setup("locking", &lock_path, e))?;
        if !libs.join(".complete").exists() {
            fetch_with_maven(&cache, &libs)?;
        }
        drop(lock);
        Ok(Self { libs, java, cache })
    }

    /// The directory holding the jars.
    pub fn libs(&self) -> &Path {
        &self.libs
    }

    /// The `java` executable.
    pub fn java(&self) -> &Path {
        &self.java
    }

    /// A `java` command with the Kafka jars on the class path, running `main_class`,
    /// logging at WARN to stderr (tools) unless `log_config` is given.
    pub fn java_command(&self, main_class: &str, log_config: Option<&Path>) -> Command {
        self.java_command_with(main_class, log_config, &[])
    }

    /// [`Self::java_command`] with extra JVM arguments (e.g. `-Dkey=value` system
    /// properties) before the main class.
    pub fn java_command_with(
        &self,
        main_class: &str,
        log_config: Option<&Path>,
        jvm_args: &[String],
    ) -> Command {
        let mut cmd = Command::new(&self.java);
        cmd.args(jvm_args);
        cmd.arg("-cp").arg(self.libs.join("*"));
        match log_config {
            Some(cfg) => cmd.arg(format!("-Dlog4j2.configurationFile={}", cfg.display())),
            None => cmd.arg(format!(
                "-Dlog4j2.configurationFile={}",
                self.tools_log_config().display()
            )),
        };
        cmd.arg(main_class);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// A log4j2 config for command-line tools: warnings and errors to stderr only, so
    /// their stdout stays parseable.
    fn tools_log_config(&self) -> PathBuf {
        let path = self.cache.join("log4j2-tools.properties");
        if !path.exists() {
            let tmp = self
                .cache
                .join(format!("log4j2-tools.properties.{}", std::process::id()));
            let _ = fs::write(
                &tmp,
                "rootLogger.level=WARN\n\
                 rootLogger.appenderRef.e.ref=E\n\
                 appender.e.type=Console\n\
                 appender.e.name=E\n\
                 appender.e.target=SYSTEM_ERR\n\
                 appender.e.layout.type=PatternLayout\n\
                 appender.e.layout.pattern=%p %m%n\n",
            );
            let _ = fs::rename(&tmp, &path);
        }
        path
    }

    /// The cache directory of this Kafka version (holds the storage template).
    pub(crate) fn cache(&self) -> &Path {
        &self.cache
    }
}

fn io_setup(what: &str, path: &Path, e: io::Error) -> KitError {
    KitError::Setup(format!("{what} {}: {e}", path.display()))
}

fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("COURIER_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("courier");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache").join("courier"),
        None => std::env::temp_dir().join("courier-cache"),
    }
}

fn find_java() -> Result<PathBuf, KitError> {
    let candidate = match std::env::var_os("JAVA_HOME") {
        Some(home) => PathBuf::from(home).join("bin").join("java"),
        None => PathBuf::from("java"),
    };
    match Command::new(&candidate)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(candidate),
        _ => Err(KitError::Setup(format!(
            "no working Java found ({}): Kafka {KAFKA_VERSION} brokers need Java 17 or newer; \
             install it (e.g. `apt-get install openjdk-17-jre-headless`) or set JAVA_HOME",
            candidate.display()
        ))),
    }
}

fn fetch_with_maven(cache: &Path, libs: &Path) -> Result<(), KitError> {
    let deps: String = DEPENDENCIES
        .iter()
        .map(|(g, a, v)| {
            format!(
                "    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version></dependency>\n"
            )
        })
        .collect();
    let pom = format!(
        "<project xmlns=\"http://maven.apache.org/POM/4.0.0\">\n\
         <modelVersion>4.0.0</modelVersion>\n\
         <groupId>dev.courier.testkit</groupId><artifactId>kafka-dist</artifactId><version>1</version>\n\
         <packaging>pom</packaging>\n\
         <dependencies>\n{deps}</dependencies>\n</project>\n"
    );
    let pom_dir = cache.join("pom");
    fs::create_dir_all(&pom_dir).map_err(|e| io_setup("creating", &pom_dir, e))?;
    fs::write(pom_dir.join("pom.xml"), pom).map_err(|e| io_setup("writing", &pom_dir, e))?;
    let staging = cache.join("libs.partial");
    let _ = fs::remove_dir_all(&staging);
    eprintln!(
        "courier-testkit: fetching Apache Kafka {KAFKA_VERSION} jars from Maven Central into {} (once per machine)",
        libs.display()
    );
    let output = Command::new("mvn")
        .current_dir(&pom_dir)
        .args(["-q", "-B", "dependency:copy-dependencies", "-DincludeScope=runtime"])
        .arg(format!("-DoutputDirectory={}", staging.display()))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            KitError::Setup(format!(
                "could not run `mvn` ({e}): the local Kafka backend fetches the Kafka {KAFKA_VERSION} \
                 jars with Maven; install it (`apt-get install maven`), or set COURIER_KAFKA_LIBS \
                 to a directory of the jars, or KAFKA_BOOTSTRAP to use an external cluster"
            ))
        })?;
    if !output.status.success() {
        return Err(KitError::Setup(format!(
            "`mvn dependency:copy-dependencies` failed for Kafka {KAFKA_VERSION} ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    fs::write(staging.join(".complete"), KAFKA_VERSION)
        .map_err(|e| io_setup("writing", &staging, e))?;
    let _ = fs::remove_dir_all(libs);
    fs::rename(&staging, libs).map_err(|e| io_setup("moving the jars to", libs, e))?;
    Ok(())
}
