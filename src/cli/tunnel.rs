use clap::Args;

use super::{Global, Output, print_json};
use berth_cluster as cluster;
use berth_cluster::forward;
use berth_core::error::Result;
use berth_core::ui::Ui;
use berth_node::addons::{self, Addon};

#[derive(Args)]
pub struct TunnelCmd {}

/// Serves the ingress controller's ports 80 and 443 on 127.0.0.1 through
/// the API server until Ctrl-C: on 80 and 443 where berth may listen there,
/// else on free ports, which it prints.
pub async fn run(_cmd: TunnelCmd, global: &Global, ui: Ui) -> Result<()> {
    let profile = super::addons::profile_with(global, Addon::Ingress)?;
    let ctx = global.ctx_for(ui, Some(&profile)).await?;
    let client = cluster::client(&ctx.store, &profile).await?;
    let (namespace, service) = (addons::INGRESS_NAMESPACE, addons::INGRESS_CONTROLLER);
    let forwards =
        forward::listen(&client, namespace, service, forward::HostPorts::SameOrFree).await?;
    let urls: Vec<String> = forwards.iter().map(forward::Forward::url).collect();
    match global.output {
        Output::Json => print_json(&serde_json::json!({ "urls": urls })),
        Output::Text => urls.iter().for_each(|u| println!("{u}")),
    }
    super::service::serve(client, namespace, service, forwards, ui).await;
    Ok(())
}
