//! `podnet`: the podnet command line.

use anyhow::Result;
use clap::{Parser, Subcommand};

mod agent;
mod sandbox;

#[derive(Parser)]
#[command(name = "podnet", version, about = "Kubernetes pod networking")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The node agent: routes to other nodes' pods, masquerade, the node's CNI config.
    Agent(Box<agent::AgentArgs>),
    /// A whole cluster's networking on this machine, in network namespaces, from Kubernetes YAML.
    Sandbox(sandbox::SandboxArgs),
    /// The CNI plugin's demo: pods in namespaces wired by podnet-cni, pinging each other.
    CniDemo {
        /// `bridge` or `ptp`.
        #[arg(long, default_value = "bridge")]
        mode: String,
        /// Number of pods.
        #[arg(long, default_value_t = 3)]
        pods: usize,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Agent(args) => agent::run(*args),
        Cmd::Sandbox(args) => match sandbox::run(args) {
            Ok(code) => std::process::exit(code),
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::exit(2)
            }
        },
        Cmd::CniDemo { mode, pods } => podnet::demo::run(&podnet::demo::Options { mode, pods }),
    }
}
