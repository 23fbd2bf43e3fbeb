use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use clap_complete::engine::ArgValueCandidates;

use super::{Global, Output};
use berth_cluster::logs::{self, Cursors, Line, Query};
use berth_core::error::Result;
use berth_core::ui::Ui;

#[derive(Args)]
#[command(after_help = "Examples:
  berth logs -p dev --component apiserver --tail 50
  berth logs -p dev --node dev-m02 --component kubelet -f
  berth logs -p dev --problems --since 10m      # what to paste into a bug report
  berth logs -p dev --export dev-logs.tar.gz    # everything, for someone else to debug")]
pub struct Logs {
    /// Only this node (`berth node list` names them); default: every node.
    #[arg(long, value_name = "NODE", add = ArgValueCandidates::new(super::completion::nodes))]
    node: Option<String>,
    /// Only this component (repeatable): etcd, kube-apiserver,
    /// kube-controller-manager, kube-scheduler, kubelet, kube-proxy,
    /// containerd, or berth's berth-addons, berth-dns, berth-routes,
    /// berth-storage, berth-pause-import; the kube- prefix may be left out.
    #[arg(long, value_name = "C")]
    component: Vec<String>,
    /// Follow new lines until Ctrl-C.
    #[arg(short, long)]
    follow: bool,
    /// Only lines of the last DURATION, such as 90s, 10m or 1h.
    #[arg(long, value_name = "DURATION", value_parser = super::start::parse_duration)]
    since: Option<Duration>,
    /// Only the last N lines (with --follow, default 10).
    #[arg(long, value_name = "N")]
    tail: Option<usize>,
    /// Only failed units and lines at warning level or above, newest last.
    #[arg(long, conflicts_with = "follow")]
    problems: bool,
    /// Write every unit's journal of every node, the rendered files, the
    /// profile, the engine's and nodes' descriptions and the cluster's
    /// objects into a .tar.gz (no private keys, no credentials).
    #[arg(long, value_name = "FILE.tar.gz", conflicts_with_all = ["follow", "problems", "component", "node", "since", "tail"])]
    export: Option<PathBuf>,
}

pub async fn run(cmd: Logs, global: &Global, ui: Ui) -> Result<()> {
    let name = global.profile_name()?;
    let profile = global.load(&name)?;
    let ctx = global.ctx_for(ui, Some(&profile)).await?;
    if let Some(path) = cmd.export {
        let missing =
            berth_cluster::export::export(&ctx, &profile, &path, &super::version::build()).await?;
        for part in &missing {
            ui.info(format!("missing from the archive: {part}"));
        }
        ui.info(format!("Wrote {}", path.display()));
        return Ok(());
    }
    let units = cmd
        .component
        .iter()
        .map(|c| logs::component(c))
        .collect::<Result<Vec<_>>>()?;
    let nodes = logs::nodes(&ctx, &profile, cmd.node.as_deref()).await?;
    let query = Query {
        units,
        since: cmd.since,
        tail: cmd
            .tail
            .or((cmd.follow && cmd.since.is_none()).then_some(10)),
        problems: cmd.problems,
    };
    // Prefixes tell lines apart only where there is more than one source.
    let prefix = Prefix {
        node: (nodes.len() > 1).then(|| nodes.iter().map(|n| n.name.len()).max().unwrap_or(0)),
        component: query.units.len() != 1,
    };
    let json = global.output == Output::Json;
    if cmd.problems {
        for (node, unit) in logs::failed_units(&ctx, &nodes).await? {
            print(
                &Line {
                    time_us: 0,
                    node,
                    component: unit,
                    message: "systemd: the unit failed".into(),
                },
                &prefix,
                json,
            );
        }
    }
    let mut cursors = Cursors::new();
    for line in logs::read(&ctx, &nodes, &query, &mut cursors).await? {
        print(&line, &prefix, json);
    }
    if !cmd.follow {
        return Ok(());
    }
    let next = Query {
        tail: None,
        ..query
    };
    let follow = async {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            for line in logs::read(&ctx, &nodes, &next, &mut cursors).await? {
                print(&line, &prefix, json);
            }
        }
    };
    // Ctrl-C ends a follow as it ends `journalctl -f`: successfully.
    tokio::select! {
        result = follow => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

struct Prefix {
    /// The width of the node column, when nodes are shown.
    node: Option<usize>,
    component: bool,
}

fn print(line: &Line, prefix: &Prefix, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string(line).expect("a line serialises")
        );
        return;
    }
    let mut out = String::new();
    if let Some(width) = prefix.node {
        out.push_str(&format!("{:width$} ", line.node));
    }
    if prefix.component {
        out.push_str(&format!("{:23} ", line.component));
    }
    if !out.is_empty() {
        out.push_str("| ");
    }
    println!("{out}{}", line.message);
}
