//! Delegation to another IPAM plugin found through `CNI_PATH`, as the spec describes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use podnet_cni_spec::{codes, CniError, CniResult, Env, Version};
use serde_json::Value;

/// Finds `plugin` in the `CNI_PATH` directories.
pub fn find(env: &Env, plugin: &str) -> Result<PathBuf, CniError> {
    if plugin.is_empty() || plugin.contains('/') {
        return Err(CniError::new(
            codes::INVALID_CONFIG,
            "invalid ipam type",
            plugin,
        ));
    }
    env.path
        .iter()
        .map(|dir| dir.join(plugin))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            CniError::new(
                codes::INVALID_CONFIG,
                format!("ipam plugin {plugin:?} not found"),
                format!("searched CNI_PATH {:?}", env.path),
            )
        })
}

/// Runs `plugin` with `command`, the same environment and `config` on stdin. Returns its
/// stdout parsed as JSON (`Value::Null` when it printed nothing).
pub fn exec(plugin: &Path, command: &str, config: &Value) -> Result<Value, CniError> {
    let input = serde_json::to_vec(config).map_err(|e| {
        CniError::new(
            codes::INTERNAL,
            "cannot encode delegate config",
            e.to_string(),
        )
    })?;
    let mut child = Process::new(plugin)
        .env("CNI_COMMAND", command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| delegate_error(plugin, "cannot start", e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(&input)
            .map_err(|e| delegate_error(plugin, "cannot write to", e.to_string()))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| delegate_error(plugin, "cannot wait for", e.to_string()))?;
    let value: Value = if out.stdout.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&out.stdout)
            .map_err(|e| delegate_error(plugin, "cannot decode the answer of", e.to_string()))?
    };
    if out.status.success() {
        return Ok(value);
    }
    Err(as_cni_error(plugin, &value))
}

fn as_cni_error(plugin: &Path, value: &Value) -> CniError {
    let code = value
        .get("code")
        .and_then(Value::as_u64)
        .unwrap_or(u64::from(codes::DELEGATE));
    let msg = value.get("msg").and_then(Value::as_str).unwrap_or("failed");
    let details = value.get("details").and_then(Value::as_str).unwrap_or("");
    CniError::new(
        u32::try_from(code).unwrap_or(codes::DELEGATE),
        format!("{}: {msg}", plugin.display()),
        details,
    )
}

fn delegate_error(plugin: &Path, what: &str, detail: String) -> CniError {
    CniError::new(
        codes::DELEGATE,
        format!("{what} {}", plugin.display()),
        detail,
    )
}

/// Runs ADD and parses the result in `version`'s format.
pub fn add(plugin: &Path, config: &Value, version: Version) -> Result<CniResult, CniError> {
    let v = exec(plugin, "ADD", config)?;
    CniResult::from_value(&v, version)
}
