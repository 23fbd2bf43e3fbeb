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
        // A cluster over several engines is deleted from those that answer.
        let unreached = match &profile {
            Some(p) => cluster::unreached(&ctx, p),
            None => Vec::new(),
        };
        for left in unreached {
            let engine = &left.engine;
            let mut names: Vec<String> = left
                .containers
                .iter()
                .chain(&left.volumes)
                .cloned()
                .collect();
            let mut fix = format!(
                "`docker -H {engine} rm -f {}` and `docker -H {engine} volume rm {}`",
                left.containers.join(" "),
                left.volumes.join(" ")
            );
            if let Some(network) = &left.network {
                names.push(format!("the Swarm's network {network}"));
                fix.push_str(&format!(
                    ", then `docker network rm {network}` on a Swarm manager"
                ));
            }
            ui.info(format!(
                "warning: the engine at {engine} did not answer; left: {}; once it is back, {fix} remove them",
                names.join(", ")
            ));
        }
    }
    // The helpers of this home on the engine it finds now.
    cluster::remove_helpers(&global.ctx(ui).await?).await?;
    Ok(())
}
