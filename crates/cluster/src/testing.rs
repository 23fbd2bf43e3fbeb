//! What the plans' unit tests share.

/// Runs `f` to its end on a runtime of its own, with time and I/O.
pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A signal that never comes.
pub(crate) async fn never() -> &'static str {
    std::future::pending().await
}

/// A running profile `dev` with `workers`, made by an earlier start: its
/// state, network and node containers.
pub(crate) fn running(
    workers: Vec<u32>,
) -> (
    tempfile::TempDir,
    std::sync::Arc<berth_engine::fake::FakeEngine>,
    crate::Ctx,
    berth_core::profile::Profile,
) {
    use berth_engine::Kind;
    let (dir, engine, ctx) = crate::Ctx::with_fake_engine();
    let mut profile = berth_core::profile::Profile {
        workers,
        ..berth_core::profile::Profile::example("dev")
    };
    let names = ctx.names(&profile);
    let labels = names.labels_created_by("earlier-start");
    let network = engine.add(Kind::Network, &names.network(), &labels);
    profile.network_id = Some(network.id);
    ctx.store.save(&profile).unwrap();
    for node in profile.nodes() {
        engine.add(Kind::Container, &node.container, &labels);
    }
    (dir, engine, ctx, profile)
}
