use super::{Global, Targets};
use berth_cluster as cluster;
use berth_core::error::Result;
use berth_core::ui::Ui;

pub async fn run(targets: Targets, global: &Global, ui: Ui) -> Result<()> {
    let ctx = global.ctx(ui).await?;
    let names = if targets.all {
        cluster::every_profile(&ctx).await?
    } else {
        vec![global.profile_name()?]
    };
    for name in names {
        let _lock = global.lock(&name, ui)?;
        // An unreadable profile file still names what to remove.
        let profile = ctx.store.load(&name).ok().flatten();
        let ctx = global.ctx_for(ui, profile.as_ref()).await?;
        let step = ui.step(format!("Deleting {name}"));
        if cluster::remove_everything(&ctx, &name, profile.as_ref(), super::interrupted).await? {
            step.done();
        } else {
            step.done_with("it did not exist");
        }
    }
    // The helpers of this home on the engine it finds now.
    cluster::remove_helpers(&global.ctx(ui).await?).await?;
    Ok(())
}
