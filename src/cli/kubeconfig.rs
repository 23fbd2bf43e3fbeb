use super::Global;
use crate::cluster;
use crate::error::Result;

pub fn run(global: &Global) -> Result<()> {
    let name = global.profile_name()?;
    let profile = global.load(&name)?;
    print!(
        "{}",
        crate::kubeconfig::standalone(&cluster::admin_entry(&global.store(), &profile)?)
    );
    Ok(())
}
