//! `logs --export`: everything needed to debug a cluster that is not one's
//! own, in one .tar.gz, as `kind export logs` makes: each unit's journal per
//! node, the files berth rendered into the nodes, the profile, the engine's
//! and the nodes' descriptions, the cluster's objects and versions. Never a
//! private key or a credential. What cannot be had (a stopped node, an API
//! server that does not answer) is listed in the archive and returned.

use std::io::Write as _;
use std::path::Path;

use super::Ctx;
use super::logs::COMPONENTS;
use berth_core::error::{Error, Result};
use berth_core::profile::{Node, Profile};
use berth_engine::ContainerState;
use berth_node::command;

/// Writes the archive to `path` (atomically) and returns what is missing
/// from it, each with the reason. `build` names the berth that writes it
/// (its version and commit).
pub async fn export(ctx: &Ctx, profile: &Profile, path: &Path, build: &str) -> Result<Vec<String>> {
    let mut archive = Archive::default();
    let mut missing = Vec::new();
    let step = ctx
        .ui
        .step(format!("Collecting the logs of profile {}", profile.name));

    archive.add("versions.txt", versions(profile, build));
    archive.add(
        "profile.json",
        serde_json::to_string_pretty(profile).expect("a profile serialises"),
    );
    match ctx.docker.describe().await {
        Ok(info) => archive.add("engine.json", pretty(&info)),
        Err(e) => missing.push(format!("engine.json: {e}")),
    }
    let states = super::containers(ctx, &ctx.names(profile).filter()).await?;
    for node in profile.nodes() {
        let dir = format!("nodes/{}", node.name);
        let Some(state) = states.get(&node.container).copied() else {
            missing.push(format!("{dir}: its container {} is gone", node.container));
            continue;
        };
        match ctx.docker.inspect_json(&node.container).await {
            Ok(inspect) => archive.add(&format!("{dir}/inspect.json"), pretty(&inspect)),
            Err(e) => missing.push(format!("{dir}/inspect.json: {e}")),
        }
        if state != ContainerState::Running {
            missing.push(format!(
                "{dir}: journals and files (the node is {}; `berth start -p {}` first)",
                state.display().to_lowercase(),
                profile.name
            ));
            continue;
        }
        node_contents(ctx, &node, &dir, &mut archive, &mut missing).await;
    }
    objects(ctx, profile, &states, &mut archive, &mut missing).await;
    if !missing.is_empty() {
        archive.add("MISSING.txt", missing.join("\n") + "\n");
    }
    archive.write(path)?;
    step.done();
    Ok(missing)
}

async fn node_contents(
    ctx: &Ctx,
    node: &Node,
    dir: &str,
    archive: &mut Archive,
    missing: &mut Vec<String>,
) {
    for (unit, _) in COMPONENTS {
        match ctx
            .docker
            .exec(&node.container, &command::journal_of(unit))
            .await
        {
            Ok(out)
                if !out.stdout.trim().is_empty() && !out.stdout.starts_with("-- No entries --") =>
            {
                archive.add(&format!("{dir}/journal/{unit}.log"), out.stdout)
            }
            Ok(_) => {}
            Err(e) => missing.push(format!("{dir}/journal/{unit}.log: {e}")),
        }
    }
    let lists = [
        ("units.txt", command::unit_table(false)),
        ("failed-units.txt", command::unit_table(true)),
        ("files.txt", command::rendered_files()),
        ("images.txt", command::images(false)),
    ];
    for (file, cmd) in lists {
        match ctx.docker.exec(&node.container, &cmd).await {
            Ok(out) => archive.add(&format!("{dir}/{file}"), out.stdout + &out.stderr),
            Err(e) => missing.push(format!("{dir}/{file}: {e}")),
        }
    }
}

/// The cluster's nodes, pods and events, through the control plane's own
/// kubectl (it is the one node that always has an admin kubeconfig).
async fn objects(
    ctx: &Ctx,
    profile: &Profile,
    states: &std::collections::HashMap<String, ContainerState>,
    archive: &mut Archive,
    missing: &mut Vec<String>,
) {
    let control_plane = profile.control_plane();
    if states.get(&control_plane.container) != Some(&ContainerState::Running) {
        missing.push("objects.txt: the control-plane node does not run".into());
        return;
    }
    let cmd = command::kubectl(&[
        "--request-timeout=10s",
        "get",
        "nodes,pods,events",
        "--all-namespaces",
        "-o",
        "wide",
    ]);
    match ctx.docker.exec(&control_plane.container, &cmd).await {
        Ok(out) if out.code == 0 => archive.add("objects.txt", out.stdout),
        Ok(out) => missing.push(format!(
            "objects.txt: the API server did not answer ({})",
            out.stderr.trim()
        )),
        Err(e) => missing.push(format!("objects.txt: {e}")),
    }
}

fn versions(profile: &Profile, build: &str) -> String {
    let runtime = match &profile.runtime {
        Some(r) => format!(
            "etcd {}, containerd {}, runc {}",
            r.etcd, r.containerd, r.runc
        ),
        None => "the node image's own etcd, containerd and runc".into(),
    };
    format!(
        "berth {build}\nKubernetes {}\nruntime: {runtime}\nnode image: {}\ncgroup v{}\nprivilege: {:?}\n",
        profile.kubernetes_version,
        profile.node_image,
        if profile.cgroup_v2 { 2 } else { 1 },
        profile.privilege,
    )
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).expect("JSON serialises")
}

/// The archive's files, in the order they were added.
#[derive(Default)]
struct Archive {
    files: Vec<(String, String)>,
}

impl Archive {
    fn add(&mut self, path: &str, content: String) {
        self.files.push((path.to_string(), content));
    }

    /// Writes a .tar.gz beside `path`, then moves it there: a failed export
    /// never leaves half an archive.
    fn write(self, path: &Path) -> Result<()> {
        let failed = |e: std::io::Error| {
            Error::failure(format!("cannot write {}: {e}", path.display()))
                .with_hint("pass --export a path in a folder you may write to")
        };
        let top = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(|n| {
                n.trim_end_matches(".gz")
                    .trim_end_matches(".tgz")
                    .trim_end_matches(".tar")
            })
            .unwrap_or("berth-logs")
            .to_string();
        let partial = path.with_extension("partial");
        let file = std::fs::File::create(&partial).map_err(failed)?;
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::default(),
        ));
        for (name, content) in &self.files {
            berth_node::append_file(
                &mut builder,
                &format!("{top}/{name}"),
                content.as_bytes(),
                0o644,
            )
            .map_err(failed)?;
        }
        let mut gz = builder.into_inner().map_err(failed)?;
        gz.flush().map_err(failed)?;
        gz.finish().map_err(failed)?;
        std::fs::rename(&partial, path).map_err(failed)
    }
}
