//! `virtctl version`: the client version, and the server's when it can be reached.
//!
//! The server version comes from KubeVirt's `GET /apis/subresources.kubevirt.io/v1/version`,
//! falling back to the Kubernetes `GET /version` when that path is not served. An
//! unreachable server is reported on stderr and does not fail the command, so `version`
//! also works without a cluster.

use std::io::Write;

use serde_json::Value;

use crate::client::{self, ClientError, ConnectionOptions};
use crate::error::{chain, Error, Result};

const KUBEVIRT_VERSION_PATH: &str = "/apis/subresources.kubevirt.io/v1/version";
const KUBERNETES_VERSION_PATH: &str = "/version";

/// Prints `Client Version: ...` and, when reachable, `Server Version: ...`.
///
/// # Errors
/// [`Error::Output`] when stdout cannot be written.
pub fn run(connection: &ConnectionOptions, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    writeln!(out, "Client Version: {}", client_info()).map_err(Error::Output)?;
    match server_version(connection) {
        Ok(info) => writeln!(out, "Server Version: {}", format_info(&info)).map_err(Error::Output),
        Err(failure) => {
            writeln!(err, "Server Version: unavailable: {}", chain(&failure)).map_err(Error::Output)
        }
    }
}

/// The client's `version.Info`, in upstream's printed layout.
pub fn client_info() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!(
        "version.Info{{GitVersion:\"v{}\", Compiler:\"rustc\", Platform:\"{}/{arch}\"}}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
    )
}

/// Formats a server version document (`gitVersion`, `gitCommit`, ...) like Go's `%#v`
/// of `version.Info`, keeping only the fields the server sent.
pub fn format_info(info: &Value) -> String {
    const FIELDS: [(&str, &str); 7] = [
        ("gitVersion", "GitVersion"),
        ("gitCommit", "GitCommit"),
        ("gitTreeState", "GitTreeState"),
        ("buildDate", "BuildDate"),
        ("goVersion", "GoVersion"),
        ("compiler", "Compiler"),
        ("platform", "Platform"),
    ];
    let parts: Vec<String> = FIELDS
        .iter()
        .filter_map(|(key, label)| {
            info.get(key)
                .and_then(Value::as_str)
                .map(|v| format!("{label}:{v:?}"))
        })
        .collect();
    format!("version.Info{{{}}}", parts.join(", "))
}

fn server_version(connection: &ConnectionOptions) -> Result<Value> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    runtime.block_on(async {
        let session = client::connect(connection).await.map_err(Error::Config)?;
        match client::get_json(&session.client, KUBEVIRT_VERSION_PATH).await {
            Ok(info) => Ok(info),
            Err(err) if err.is_not_found() => {
                client::get_json(&session.client, KUBERNETES_VERSION_PATH)
                    .await
                    .map_err(api_error)
            }
            Err(err) => Err(api_error(err)),
        }
    })
}

fn api_error(source: ClientError) -> Error {
    Error::Api {
        action: "cannot get the server version".to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn client_version_names_this_build() {
        let info = client_info();
        assert!(info.starts_with(&format!(
            "version.Info{{GitVersion:\"v{}\"",
            env!("CARGO_PKG_VERSION")
        )));
    }

    #[test]
    fn server_info_is_printed_in_go_layout() {
        let info = json!({"gitVersion": "v1.33.0", "gitCommit": "abc", "platform": "linux/amd64"});
        assert_eq!(
            format_info(&info),
            "version.Info{GitVersion:\"v1.33.0\", GitCommit:\"abc\", Platform:\"linux/amd64\"}"
        );
    }
}
