use super::{Global, Targets};
use berth_cluster as cluster;
use berth_core::error::Result;
use berth_core::ui::Ui;

pub async fn run(targets: Targets, global: &Global, ui: Ui) -> Result<()> {
    let names = targets.names(global)?;
    for name in names {
        let _lock = global.lock(&name, ui)?;
        let profile = global.load(&name)?;
        let ctx = global.ctx_for(ui, Some(&profile)).await?;
        let step = ui.step(format!("Stopping {name}"));
        cluster::stop(&ctx, &profile, super::interrupted).await?;
        step.done();
    }
    Ok(())
}
