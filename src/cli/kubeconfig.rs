use super::Global;
use berth_cluster as cluster;
use berth_core::error::Result;

pub fn run(global: &Global) -> Result<()> {
    let name = global.profile_name()?;
    let profile = global.load(&name)?;
    print!(
        "{}",
        berth_core::kubeconfig::standalone(&cluster::admin_entry(&global.store(), &profile)?)
    );
    Ok(())
}
