use clap::Args;

use super::Global;
use crate::cluster;
use crate::error::Result;
use crate::ui::Ui;

#[derive(Args)]
pub struct Delete {
    /// Every profile.
    #[arg(long, conflicts_with = "profile")]
    all: bool,
}

pub async fn run(cmd: Delete, global: &Global, ui: Ui) -> Result<()> {
    let names = if cmd.all {
        global.store().names()
    } else {
        vec![global.profile_name()?]
    };
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
