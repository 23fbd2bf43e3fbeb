use super::{Global, Targets};
use berth_cluster as cluster;
use berth_core::error::Result;
use berth_core::ui::Ui;

pub async fn run(targets: Targets, global: &Global, ui: Ui) -> Result<()> {
    let names = targets.names(global)?;
    let ctx = global.ctx(ui).await?;
    for name in names {
        let _lock = global.lock(&name, ui)?;
        let profile = global.load(&name)?;
        let step = ui.step(format!("Stopping {name}"));
        cluster::stop(&ctx, &profile, super::interrupted).await?;
        step.done();
    }
    Ok(())
}
