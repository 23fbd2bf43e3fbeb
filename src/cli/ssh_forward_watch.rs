use super::Global;
use berth_core::error::Result;

/// The watcher `start --ssh-forward` leaves beside its ssh: forwards the
/// profile's LoadBalancer Services until the ssh ends.
pub async fn run(global: &Global) -> Result<()> {
    let profile = global.load(&global.profile_name()?)?;
    berth_cluster::ssh_forward::watch(&global.store(), &profile).await
}
