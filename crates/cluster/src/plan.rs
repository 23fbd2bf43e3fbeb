//! Plans: what a command does to a cluster, as a short list of named steps
//! over a state of the command's own (kind's `create` is a list of actions
//! run in turn). Each step says, beside what it does, what takes it back;
//! the plan's runner shows each titled step with its timing and records
//! the steps begun, so that a failed or interrupted plan is undone exactly,
//! last step first.

use std::future::Future;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;

use super::Ctx;
use berth_core::error::{Error, Result};

pub(super) trait Step<S>: Copy + std::fmt::Debug {
    /// What the user sees while the step runs, with its timing; `None` for
    /// a step that shows its own progress, or that is too quick to show.
    fn title(self, state: &S) -> Option<String>;

    async fn run(self, ctx: &Ctx, state: &mut S) -> Result<()>;

    /// Takes back what `run` made, also when `run` was cut off half-way
    /// or never got far: it must find out what there is to take back.
    async fn undo(self, _ctx: &Ctx, _state: &S) -> Result<()> {
        Ok(())
    }
}

/// The error of a step that needs the output of `step`, which has not
/// run: the plan's order is wrong. An error, not a panic, so that what the
/// plan made is still taken back.
fn missing(step: &str) -> Error {
    Error::failure(format!(
        "berth's plan ran a step before {step}, whose output it needs"
    ))
    .with_hint("this is a bug in berth: please report it with the command that failed")
}

/// The output `step` left in a plan's state.
pub(super) fn output<'a, T>(value: &'a Option<T>, step: &str) -> Result<&'a T> {
    value.as_ref().ok_or_else(|| missing(step))
}

/// The output `step` left in a plan's state, to change.
pub(super) fn output_mut<'a, T>(value: &'a mut Option<T>, step: &str) -> Result<&'a mut T> {
    value.as_mut().ok_or_else(|| missing(step))
}

/// Runs `steps` in order, each recorded in `begun` before it runs, so that
/// the caller knows what to undo also when this future is dropped (an
/// interrupted plan).
pub(super) async fn run<S, T: Step<S>>(
    ctx: &Ctx,
    steps: &[T],
    state: &mut S,
    begun: &mut Vec<T>,
) -> Result<()> {
    for &step in steps {
        begun.push(step);
        let shown = step.title(state).map(|title| ctx.ui.step(title));
        step.run(ctx, state).await?;
        if let Some(shown) = shown {
            shown.done();
        }
    }
    Ok(())
}

/// Undoes `begun`, last first. Every step is undone even when one cannot
/// be; the first failure is returned.
pub(super) async fn undo<S, T: Step<S>>(ctx: &Ctx, begun: &[T], state: &S) -> Result<()> {
    let mut first = Ok(());
    for &step in begun.iter().rev() {
        if let Err(e) = step.undo(ctx, state).await
            && first.is_ok()
        {
            first = Err(e);
        }
    }
    first
}

/// What a verb's plan is, for the messages of a failed or cut one.
pub(super) struct Verb<'a> {
    /// What was cut, as "the start of profile dev".
    pub what: String,
    /// What to do after an interruption, as "`berth start -p dev` starts
    /// it again".
    pub again: String,
    /// How what the plan made is taken back; `None` for a plan whose steps
    /// take nothing back (stop, delete, a restart).
    pub undo: Option<Undo<'a>>,
}

/// Looks up what a cut undo left, when it is cut.
pub(super) type Left<'a> = Box<dyn FnOnce() -> LocalBoxFuture<'a, Vec<String>> + 'a>;

/// `Left` from an async closure.
pub(super) fn left<'a, F, Fut>(look: F) -> Left<'a>
where
    F: FnOnce() -> Fut + 'a,
    Fut: Future<Output = Vec<String>> + 'a,
{
    Box::new(move || Box::pin(look()))
}

/// How a failed or cut plan's making is taken back.
pub(super) struct Undo<'a> {
    /// Whose making it is, as "this start".
    pub maker: &'static str,
    /// Keep it instead (`--keep-on-failure`), saying so with this line.
    pub kept: Option<String>,
    /// What to do when the undo is cut, as "`berth delete -p dev` removes
    /// what is left".
    pub left_hint: String,
    /// Names what is left when the undo is cut.
    pub left: Left<'a>,
}

/// Runs a verb's plan to its end: on a failed step, or when `interrupted`
/// resolves (a signal, named), every begun step is undone, last first,
/// unless the verb keeps what it made; `interrupted` resolving again
/// stops the undo, and the undo's `left` then names what is left. The one
/// place where undo, signals, the leftover report and keep-on-failure live.
pub(super) async fn execute<S, T, F, Fut>(
    ctx: &Ctx,
    verb: Verb<'_>,
    steps: &[T],
    state: &mut S,
    interrupted: F,
) -> Result<()>
where
    T: Step<S>,
    F: Fn() -> Fut,
    Fut: Future<Output = &'static str>,
{
    let mut begun = Vec::new();
    let outcome = tokio::select! {
        result = run(ctx, steps, state, &mut begun) => result,
        signal = interrupted() => Err(Error::interrupted(format!(
            "{} was interrupted ({signal})",
            verb.what
        ))
        .with_hint(verb.again.clone())),
    };
    let Err(error) = outcome else {
        return Ok(());
    };
    let Some(Undo {
        maker,
        kept,
        left_hint,
        left,
    }) = verb.undo
    else {
        return Err(error);
    };
    // Requests the engine got before the cut still complete there: give
    // them a moment, so that what they make is undone too; helpers a cut
    // step left running would hold what the undo removes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = super::remove_helpers(ctx).await;
    if let Some(kept) = kept {
        ctx.ui.info(kept);
        return Err(error);
    }
    let step = ctx.ui.step(format!(
        "Removing what {maker} made (Ctrl-C again stops at once)"
    ));
    let state = &*state;
    tokio::select! {
        undone = undo(ctx, &begun, state) => match undone {
            Ok(()) => {
                step.done();
                Err(error)
            }
            // What failed first is what the user needs to know; what could
            // not be taken back, and how to, comes with it.
            Err(failed) => {
                drop(step);
                let mut error = error;
                error.message = format!(
                    "{}; taking back what {maker} made failed too: {}",
                    error.message, failed.message
                );
                // First what lets the cleanup work (an engine that
                // answers again), then how to finish it.
                error.hint = Some(match failed.hint.or(error.hint) {
                    Some(first) if !left_hint.is_empty() => format!("{first}; then {left_hint}"),
                    Some(first) => first,
                    None => left_hint,
                })
                .filter(|hint| !hint.is_empty());
                Err(error)
            }
        },
        _ = interrupted() => {
            drop(step);
            let left = left().await;
            Err(Error::interrupted(format!(
                "{}; the cleanup was stopped, left: {}",
                error.message,
                if left.is_empty() { "nothing".to_string() } else { left.join(", ") }
            ))
            .with_hint(left_hint))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::never;

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Toy {
        Make(u8),
        Fail,
        /// Says it began, then never ends: a step a signal cuts.
        Hang,
    }

    /// What was made, and the record of what ran and was undone.
    #[derive(Default)]
    struct Made {
        things: Vec<u8>,
        log: Vec<String>,
        undone: std::sync::Mutex<Vec<Toy>>,
        hanging: std::sync::Arc<tokio::sync::Notify>,
    }

    impl Step<Made> for Toy {
        fn title(self, _: &Made) -> Option<String> {
            None
        }
        async fn run(self, _: &Ctx, made: &mut Made) -> Result<()> {
            made.log.push(format!("run {self:?}"));
            match self {
                Toy::Make(n) => {
                    made.things.push(n);
                    Ok(())
                }
                Toy::Fail => Err(berth_core::error::Error::failure("it failed")),
                Toy::Hang => {
                    made.hanging.notify_one();
                    std::future::pending().await
                }
            }
        }
        async fn undo(self, _: &Ctx, made: &Made) -> Result<()> {
            made.undone.lock().unwrap().push(self);
            match self {
                Toy::Make(2) => Err(berth_core::error::Error::failure("cannot undo 2")),
                // An undo that never ends: only a second signal stops it.
                Toy::Make(9) => {
                    made.hanging.notify_one();
                    std::future::pending().await
                }
                _ => Ok(()),
            }
        }
    }

    #[test]
    fn a_failed_step_stops_the_plan_and_every_begun_step_is_undone_last_first() {
        let (_dir, _engine, ctx) = Ctx::with_fake_engine();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut made = Made::default();
        let mut begun = Vec::new();
        let steps = [Toy::Make(1), Toy::Make(2), Toy::Fail, Toy::Make(3)];
        let result = runtime.block_on(run(&ctx, &steps, &mut made, &mut begun));
        assert_eq!(result.unwrap_err().message, "it failed");
        assert_eq!(made.things, [1, 2], "a step after the failed one ran");
        assert_eq!(made.log, ["run Make(1)", "run Make(2)", "run Fail"]);
        // The failed step is undone too: it may have made half of its work.
        assert_eq!(begun, [Toy::Make(1), Toy::Make(2), Toy::Fail]);
        // Every begun step is undone, also after one that cannot be; its
        // failure is the one returned.
        let undone = runtime.block_on(undo(&ctx, &begun, &made));
        assert_eq!(undone.unwrap_err().message, "cannot undo 2");
        assert_eq!(
            *made.undone.lock().unwrap(),
            [Toy::Fail, Toy::Make(2), Toy::Make(1)]
        );
    }

    fn verb(undo: Option<bool>, left: &'static [&'static str]) -> Verb<'static> {
        Verb {
            what: "the toy of profile dev".into(),
            again: "toy again".into(),
            undo: undo.map(|keep| Undo {
                maker: "this toy",
                kept: keep.then(|| "kept".into()),
                left_hint: "`toy delete` removes what is left".into(),
                left: super::left(
                    move || async move { left.iter().map(|l| l.to_string()).collect() },
                ),
            }),
        }
    }

    /// Signals that come only on the `nth` wait for one (0: while the plan
    /// runs, 1: while it is undone), once something hangs.
    fn signal_at<'a>(
        made: &Made,
        calls: &'a std::sync::atomic::AtomicU32,
        nth: u32,
    ) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = &'static str> + 'a>> + 'a {
        let hanging = made.hanging.clone();
        move || {
            let this = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let hanging = hanging.clone();
            Box::pin(async move {
                if this != nth {
                    std::future::pending::<()>().await;
                }
                hanging.notified().await;
                "SIGINT"
            })
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_signal_cuts_the_plan_and_every_begun_step_is_undone() {
        let (_dir, _engine, ctx) = Ctx::with_fake_engine();
        let mut made = Made::default();
        // The first signal comes once the hanging step runs; another never.
        let calls = std::sync::atomic::AtomicU32::new(0);
        let interrupted = signal_at(&made, &calls, 0);
        let steps = [Toy::Make(1), Toy::Hang, Toy::Make(3)];
        let result = runtime().block_on(execute(
            &ctx,
            verb(Some(false), &[]),
            &steps,
            &mut made,
            interrupted,
        ));
        let error = result.unwrap_err();
        assert_eq!(error.exit, berth_core::error::Exit::Interrupted);
        assert_eq!(
            error.message,
            "the toy of profile dev was interrupted (SIGINT)"
        );
        assert_eq!(error.hint.as_deref(), Some("toy again"));
        assert_eq!(made.things, [1], "a step after the cut one ran");
        assert_eq!(*made.undone.lock().unwrap(), [Toy::Hang, Toy::Make(1)]);
    }

    #[test]
    fn a_failed_plan_is_kept_when_asked_and_a_plan_without_undo_is_left_as_it_stopped() {
        let (_dir, _engine, ctx) = Ctx::with_fake_engine();
        for verb in [verb(Some(true), &[]), verb(None, &[])] {
            let mut made = Made::default();
            let steps = [Toy::Make(1), Toy::Fail];
            let result = runtime().block_on(execute(&ctx, verb, &steps, &mut made, never));
            assert_eq!(result.unwrap_err().message, "it failed");
            assert!(made.undone.lock().unwrap().is_empty());
        }
    }

    #[test]
    fn a_second_signal_stops_the_undo_and_names_what_is_left() {
        let (_dir, _engine, ctx) = Ctx::with_fake_engine();
        let mut made = Made::default();
        // No signal while the plan runs; one once its undo hangs.
        let calls = std::sync::atomic::AtomicU32::new(0);
        let interrupted = signal_at(&made, &calls, 1);
        let steps = [Toy::Make(9), Toy::Fail];
        let verb = verb(Some(false), &["container dev-m02"]);
        let result = runtime().block_on(execute(&ctx, verb, &steps, &mut made, interrupted));
        let error = result.unwrap_err();
        assert_eq!(error.exit, berth_core::error::Exit::Interrupted);
        assert_eq!(
            error.message,
            "it failed; the cleanup was stopped, left: container dev-m02"
        );
        assert_eq!(
            error.hint.as_deref(),
            Some("`toy delete` removes what is left")
        );
        assert_eq!(*made.undone.lock().unwrap(), [Toy::Fail, Toy::Make(9)]);
    }

    #[test]
    fn an_undo_that_fails_is_said_after_what_failed_first() {
        let (_dir, _engine, ctx) = Ctx::with_fake_engine();
        let mut made = Made::default();
        let steps = [Toy::Make(1), Toy::Make(2), Toy::Fail];
        let result = runtime().block_on(execute(
            &ctx,
            verb(Some(false), &[]),
            &steps,
            &mut made,
            never,
        ));
        let error = result.unwrap_err();
        assert_eq!(
            error.message,
            "it failed; taking back what this toy made failed too: cannot undo 2"
        );
        // What it left is named, with how to take it back later.
        assert_eq!(
            error.hint.as_deref(),
            Some("`toy delete` removes what is left")
        );
        // The rest is taken back all the same.
        assert_eq!(
            *made.undone.lock().unwrap(),
            [Toy::Fail, Toy::Make(2), Toy::Make(1)]
        );
    }
}
