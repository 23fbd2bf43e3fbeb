use super::{Global, Targets};
use crate::cluster;
use crate::error::Result;
use crate::ui::Ui;

pub async fn run(targets: Targets, global: &Global, ui: Ui) -> Result<()> {
    let names = targets.names(global)?;
    let ctx = global.ctx(ui).await?;
    for name in names {
        // An unreadable profile file still names what to remove.
        let profile = ctx.store.load(&name).ok().flatten();
        let step = ui.step(format!("Deleting {name}"));
        if cluster::remove_everything(&ctx, &name, profile.as_ref()).await? {
            step.done();
        } else {
            step.done_with("it did not exist");
        }
    }
    Ok(())
}
