use super::{Global, Targets};
use berth_cluster as cluster;
use berth_core::error::Result;
use berth_core::ui::Ui;

pub async fn run(targets: Targets, global: &Global, ui: Ui, freeze: bool) -> Result<()> {
    let names = targets.names(global)?;
    let (verb, state) = if freeze {
        ("Pausing", "paused")
    } else {
        ("Unpausing", "running")
    };
    for name in names {
        let _lock = global.lock(&name, ui)?;
        let profile = global.load(&name)?;
        let ctx = global.ctx_for(ui, Some(&profile)).await?;
        let step = ui.step(format!("{verb} {name}"));
        if cluster::pause(&ctx, &profile, freeze, super::interrupted).await? {
            step.done();
        } else {
            step.done_with(&format!("it is already {state}"));
        }
    }
    Ok(())
}
