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
