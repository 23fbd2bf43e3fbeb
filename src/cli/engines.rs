use clap::Subcommand;

use super::{Global, Output, print_json};
use berth_core::error::{Error, Result};
use berth_core::ui::Ui;
use berth_engine::Joined;

#[derive(Subcommand)]
pub enum EnginesCmd {
    /// Make the engines named with --engine one Docker Swarm, which a
    /// cluster over several engines stands on: a Swarm one of them manages
    /// takes the others in, else the first makes one (with three or more,
    /// the first three manage it). One in another Swarm is refused.
    Join,
}

pub async fn run(cmd: EnginesCmd, global: &Global, ui: Ui) -> Result<()> {
    let EnginesCmd::Join = cmd;
    if global.engine.len() < 2 {
        return Err(
            Error::usage("`engines join` needs the engines to join, each with --engine")
                .with_hint("berth engines join --engine tcp://a:2376 --engine tcp://b:2376"),
        );
    }
    let endpoints = global
        .engine
        .iter()
        .map(|e| berth_engine::discover::from_process(Some(e)))
        .collect::<Result<Vec<_>, _>>()?;
    let members =
        futures_util::future::try_join_all(endpoints.iter().map(berth_engine::Docker::connect_to))
            .await?;
    let step = ui.step("Joining the engines into one Swarm");
    let joined = berth_engine::join(&members).await?;
    step.done();
    let text = match &joined {
        Joined::Already => "The engines are one Swarm already".to_string(),
        Joined::Made { to, joined } => {
            format!("{} joined the Swarm of {to}", joined.join(", "))
        }
    };
    match global.output {
        Output::Json => print_json(&match joined {
            Joined::Already => serde_json::json!({"already": true}),
            Joined::Made { to, joined } => serde_json::json!({"manager": to, "joined": joined}),
        }),
        Output::Text => ui.info(text),
    }
    Ok(())
}
