use super::{Global, Targets};
use crate::error::{Error, Result};
use crate::ui::Ui;

/// Freezes (or thaws) every process of the node at once through the
/// engine's freezer: the cluster resumes exactly where it was.
pub async fn run(targets: Targets, global: &Global, ui: Ui, pause: bool) -> Result<()> {
    let names = targets.names(global)?;
    let ctx = global.ctx(ui).await?;
    for name in names {
        let profile = global.load(&name)?;
        let container = profile.container();
        let state = ctx.docker.container_state(&container).await?;
        let (want, verb) = if pause {
            ("running", "Pausing")
        } else {
            ("paused", "Unpausing")
        };
        match state.as_deref() {
            None => return Err(crate::cluster::broken(&name)),
            Some(s) if s == want => {
                let step = ui.step(format!("{verb} {name}"));
                if pause {
                    ctx.docker.pause_container(&container).await?;
                } else {
                    ctx.docker.unpause_container(&container).await?;
                }
                step.done();
            }
            Some(s) if pause && s == "paused" || !pause && s == "running" => {
                ui.info(format!("Profile {name} is already {s}"));
            }
            Some(s) => {
                return Err(Error::usage(format!("profile {name} is {s}, not {want}"))
                    .with_hint(format!("`berth start -p {name}` starts it")));
            }
        }
    }
    Ok(())
}
