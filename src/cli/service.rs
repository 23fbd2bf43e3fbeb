use clap::Args;

use super::{Global, Output, print_json};
use berth_cluster as cluster;
use berth_cluster::forward;
use berth_core::error::Result;
use berth_core::ui::Ui;

#[derive(Args)]
pub struct ServiceCmd {
    /// The Service's name.
    name: String,
    /// Its namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// Print only the URLs (one per TCP port of the Service) and serve.
    #[arg(long)]
    url: bool,
    /// The host port for the Service's first port (default: a free one).
    #[arg(long)]
    port: Option<u16>,
}

/// A Kubernetes DNS label: what Service and namespace names are.
fn is_dns_label(text: &str) -> bool {
    let b = text.as_bytes();
    let inner = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
    let edge = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    b.len() <= 63 && b.iter().all(inner) && edge(b.first()) && edge(b.last())
}

/// Forwards ports on 127.0.0.1 to the Service until interrupted (Ctrl-C
/// ends it with exit code 0).
pub async fn run(cmd: ServiceCmd, global: &Global, ui: Ui) -> Result<()> {
    for (what, value) in [("service", &cmd.name), ("namespace", &cmd.namespace)] {
        // Both become parts of API paths.
        if !is_dns_label(value) {
            return Err(berth_core::error::Error::usage(format!(
                "`{value}` is not a valid {what} name"
            ))
            .with_hint("Kubernetes names are lower-case letters, digits and `-`"));
        }
    }
    let name = global.profile_name()?;
    let profile = global.load(&name)?;
    let ctx = global.ctx_for(ui, Some(&profile)).await?;
    let client = cluster::client(&ctx.store, &profile).await?;
    let ports = match cmd.port {
        Some(port) => forward::HostPorts::First(port),
        None => forward::HostPorts::Free,
    };
    let forwards = forward::listen(&client, &cmd.namespace, &cmd.name, ports).await?;
    let urls: Vec<String> = forwards.iter().map(forward::Forward::url).collect();
    match (global.output, cmd.url) {
        (Output::Json, _) => print_json(&serde_json::json!({
            "service": format!("{}/{}", cmd.namespace, cmd.name),
            "urls": urls,
        })),
        (Output::Text, true) => urls.iter().for_each(|u| println!("{u}")),
        (Output::Text, false) => {
            for (forward, url) in forwards.iter().zip(&urls) {
                println!(
                    "{}/{} port {}: {url}",
                    cmd.namespace, cmd.name, forward.service_port
                );
            }
        }
    }
    serve(client, &cmd.namespace, &cmd.name, forwards, ui).await;
    Ok(())
}

/// Serves `forwards` to the Service until Ctrl-C, once what was printed is
/// out.
pub(super) async fn serve(
    client: kube::Client,
    namespace: &str,
    name: &str,
    forwards: Vec<forward::Forward>,
    ui: Ui,
) {
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    ui.info("Forwarding through the API server; Ctrl-C stops");
    tokio::select! {
        _ = forward::serve(client, namespace.into(), name.into(), forwards) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_that_could_leave_their_api_path_are_refused() {
        for good in ["web", "kube-system", "a1", &"x".repeat(63)] {
            assert!(super::is_dns_label(good), "{good}");
        }
        for bad in [
            "",
            "../secrets",
            "a/b",
            "Web",
            "-a",
            "a-",
            "a.b",
            &"x".repeat(64),
        ] {
            assert!(!super::is_dns_label(bad), "{bad}");
        }
    }
}
