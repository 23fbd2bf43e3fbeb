use clap::Args;

use super::Global;
use crate::cluster;
use crate::error::Result;
use crate::ui::Ui;

#[derive(Args)]
pub struct Stop {
    /// Every profile.
    #[arg(long, conflicts_with = "profile")]
    all: bool,
}

pub async fn run(cmd: Stop, global: &Global, ui: Ui) -> Result<()> {
    let names = if cmd.all {
        global.store().names()
    } else {
        vec![global.profile_name()?]
    };
    let ctx = global.ctx(ui).await?;
    for name in names {
        let profile = global.load(&name)?;
        let step = ui.step(format!("Stopping {name}"));
        cluster::stop(&ctx, &profile).await?;
        step.done();
    }
    Ok(())
}
