//! Times `podnet sandbox up` with 3 nodes plus P pods, all Ready (the command returns only
//! once every pod's declared ports accept connections), and `down`.
//!
//!     cargo build --release --bins && target/release/sandbox-bench [--pods 9,100] [--runs 5]

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Pod counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "9,100")]
    pods: Vec<usize>,
    /// Runs per pod count.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Routing mode.
    #[arg(long, default_value = "vxlan")]
    routing: String,
}

fn manifest(pods: usize) -> String {
    let mut s = String::new();
    for i in 0..pods {
        s += &format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}, labels: {{app: bench}}}}\nspec:\n  containers:\n  - name: c\n    ports: [{{name: http, containerPort: 80}}]\n"
        );
    }
    s += "---\napiVersion: v1\nkind: Service\nmetadata: {name: bench}\nspec:\n  selector: {app: bench}\n  ports: [{port: 80, targetPort: http}]\n";
    s
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let args = Args::parse();
    let exe = std::env::current_exe()?;
    let podnet: PathBuf = exe.with_file_name("podnet");
    let dir = std::env::temp_dir().join(format!("podnet-sandbox-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let name = format!("bench{}", std::process::id() % 10_000);
    println!(
        "sandbox up (3 nodes, {}) + pods Ready, and down; {} runs, medians",
        args.routing, args.runs
    );
    println!(
        "{:>6}  {:>10}  {:>10}  {:>10}",
        "pods", "up+Ready", "check", "down"
    );
    for &p in &args.pods {
        let file = dir.join(format!("pods-{p}.yaml"));
        std::fs::write(&file, manifest(p))?;
        let (mut up, mut check, mut down) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..args.runs {
            let run = |sub: &[&str]| -> Result<f64> {
                let t = Instant::now();
                let out = Command::new(&podnet)
                    .args(["sandbox", "--name", &name])
                    .args(sub)
                    .output()
                    .context("running podnet")?;
                if !out.status.success() {
                    let _ = Command::new(&podnet)
                        .args(["sandbox", "--name", &name, "down"])
                        .status();
                    bail!(
                        "podnet sandbox {sub:?}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                Ok(t.elapsed().as_secs_f64() * 1000.0)
            };
            let f = file.display().to_string();
            up.push(run(&[
                "up",
                "--nodes",
                "3",
                "--routing",
                &args.routing,
                "-f",
                &f,
            ])?);
            check.push(run(&["check", "--json"])?);
            down.push(run(&["down"])?);
        }
        println!(
            "{p:>6}  {:>8.0}ms  {:>8.0}ms  {:>8.0}ms",
            median(&mut up),
            median(&mut check),
            median(&mut down)
        );
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
