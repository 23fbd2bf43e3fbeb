use super::{Global, Targets};
use crate::cluster;
use crate::error::Result;
use crate::ui::Ui;

pub async fn run(targets: Targets, global: &Global, ui: Ui) -> Result<()> {
    let names = targets.names(global)?;
    let ctx = global.ctx(ui).await?;
    for name in names {
        let _lock = global.lock(&name, ui)?;
        let profile = global.load(&name)?;
        let step = ui.step(format!("Stopping {name}"));
        cluster::stop(&ctx, &profile).await?;
        step.done();
    }
    Ok(())
}
