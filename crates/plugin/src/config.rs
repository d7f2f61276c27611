//! The network configuration podnet-cni reads on stdin.

use serde::Deserialize;
use serde_json::Value;

use podnet_cni_spec::{codes, parse_version_field, CniError, CniResult, Version};
use podnet_ipam::{IpamConfig, RangeSet};

/// The IPAM type served in-process.
pub const PODNET_IPAM: &str = "podnet-ipam";

/// How the pod is wired to the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A veth into a node bridge that holds the gateway.
    #[default]
    Bridge,
    /// A routed veth: /32 (/128) in the pod, proxy ARP and a host route on the node.
    Ptp,
}

/// The plugin's configuration. Unknown fields are refused (code 2) so typos do not pass silently.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetConf {
    /// Spec version of this config.
    pub cni_version: String,
    /// Network name.
    pub name: String,
    /// Plugin type (`podnet-cni`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Capabilities declared in a conflist (passed through by some runtimes).
    #[serde(default)]
    pub capabilities: Option<Value>,
    /// `bridge` (default) or `ptp`.
    #[serde(default)]
    pub mode: Mode,
    /// Bridge name in bridge mode.
    #[serde(default = "default_bridge")]
    pub bridge: String,
    /// MTU of the veth pair and the bridge.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Let a pod reach itself through the bridge (needed for Service hairpin).
    #[serde(default)]
    pub hairpin_mode: bool,
    /// Put the bridge in promiscuous mode.
    #[serde(default)]
    pub promisc_mode: bool,
    /// Masquerade traffic from the pod to destinations outside its subnets.
    #[serde(default)]
    pub ip_masq: bool,
    /// The IPAM section (kept raw: a delegated plugin gets it as it is).
    #[serde(default)]
    pub ipam: Option<Value>,
    /// DNS settings to return.
    #[serde(default)]
    pub dns: Option<Value>,
    /// `args.cni.ips` / `args.cni.mac`.
    #[serde(default)]
    pub args: Option<ArgsSection>,
    /// Capability arguments filled in by the runtime.
    #[serde(default)]
    pub runtime_config: RuntimeConfig,
    /// The result of the previous plugin in a chain.
    #[serde(default)]
    pub prev_result: Option<Value>,
    /// GC: the attachments that are still valid (CNI 1.1).
    #[serde(default, rename = "cni.dev/valid-attachments")]
    pub valid_attachments: Option<Vec<Attachment>>,
    /// GC: the pre-1.1 spelling of the same list.
    #[serde(default, rename = "cni.dev/attachments")]
    pub attachments: Option<Vec<Attachment>>,
}

fn default_bridge() -> String {
    "podnet0".to_string()
}

/// `args` in the network configuration.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ArgsSection {
    /// The `cni` namespace of args.
    #[serde(default)]
    pub cni: Option<CniArgsSection>,
}

/// `args.cni`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CniArgsSection {
    /// Static addresses.
    #[serde(default)]
    pub ips: Vec<String>,
    /// MAC of the pod interface.
    #[serde(default)]
    pub mac: Option<String>,
}

/// `runtimeConfig`: capability arguments. Other plugins' capabilities are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    /// Static addresses (`ips` capability).
    #[serde(default)]
    pub ips: Vec<String>,
    /// MAC of the pod interface (`mac` capability).
    #[serde(default)]
    pub mac: Option<String>,
    /// Ranges replacing the configured ones (`ipRanges` capability).
    #[serde(default)]
    pub ip_ranges: Option<Vec<RangeSet>>,
}

/// One entry of `cni.dev/valid-attachments`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// Container id.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// Interface name.
    pub ifname: String,
}

/// A parsed configuration with its version.
#[derive(Debug, Clone)]
pub struct Config {
    /// The spec version the answer must use.
    pub version: Version,
    /// The configuration.
    pub net: NetConf,
    /// The configuration as received (for delegation).
    pub raw: Value,
}

impl Config {
    /// Parses stdin. Bad JSON is code 6, unknown fields code 2, bad values code 7,
    /// an unsupported version code 1.
    pub fn parse(stdin: &[u8]) -> Result<Config, CniError> {
        Config::from_value(decode(stdin)?)
    }

    /// Parses an already decoded configuration (see [`Config::parse`]).
    pub fn from_value(raw: Value) -> Result<Config, CniError> {
        let version = parse_version_field(&raw)?;
        let net: NetConf = serde_json::from_value(raw.clone()).map_err(field_error)?;
        if net.name.is_empty()
            || net.name.contains(['/', '\0'])
            || net.name == "."
            || net.name == ".."
        {
            return Err(CniError::new(
                codes::INVALID_CONFIG,
                "invalid network name",
                format!("{:?}: must be non-empty and hold no '/'", net.name),
            ));
        }
        if let Some(mtu) = net.mtu {
            if !(68..=65535).contains(&mtu) {
                return Err(CniError::new(
                    codes::INVALID_CONFIG,
                    "invalid mtu",
                    mtu.to_string(),
                ));
            }
        }
        Ok(Config { version, net, raw })
    }

    /// The IPAM type, if there is an IPAM section.
    pub fn ipam_type(&self) -> Result<String, CniError> {
        let ipam = self.net.ipam.as_ref().ok_or_else(|| {
            CniError::msg(
                codes::INVALID_CONFIG,
                "network configuration has no ipam section",
            )
        })?;
        ipam.get("type")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| CniError::msg(codes::INVALID_CONFIG, "ipam section has no type"))
    }

    /// The in-process IPAM configuration (`ipam.type` = `podnet-ipam`).
    pub fn ipam_config(&self) -> Result<IpamConfig, CniError> {
        let ipam = self.net.ipam.clone().unwrap_or(Value::Null);
        serde_json::from_value(ipam).map_err(field_error)
    }

    /// The previous plugin's result, if chained.
    pub fn prev_result(&self) -> Result<Option<CniResult>, CniError> {
        match &self.net.prev_result {
            None | Some(Value::Null) => Ok(None),
            Some(v) => CniResult::from_value(v, self.version).map(Some),
        }
    }

    /// The attachments GC must keep.
    pub fn valid_attachments(&self) -> Vec<Attachment> {
        let mut v = self.net.valid_attachments.clone().unwrap_or_default();
        v.extend(self.net.attachments.clone().unwrap_or_default());
        v
    }
}

/// Decodes stdin as JSON: code 6 when it is not.
pub fn decode(stdin: &[u8]) -> Result<Value, CniError> {
    serde_json::from_slice(stdin).map_err(|e| {
        CniError::new(
            codes::DECODE,
            "cannot decode network configuration",
            e.to_string(),
        )
    })
}

/// The version to answer in: the configuration's when podnet speaks it, else the newest.
pub fn answer_version(raw: Option<&Value>) -> Version {
    raw.and_then(|v| parse_version_field(v).ok())
        .unwrap_or(Version::V1_1_0)
}

fn field_error(e: serde_json::Error) -> CniError {
    let text = e.to_string();
    let code = if text.starts_with("unknown field") {
        codes::UNSUPPORTED_FIELD
    } else {
        codes::INVALID_CONFIG
    };
    CniError::new(code, "invalid network configuration", text)
}
