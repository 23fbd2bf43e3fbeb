//! Plans: what a command does to a cluster, as a short list of named steps
//! over a state of the command's own (kind's `create` is a list of actions
//! run in turn). Each step says, beside what it does, what takes it back;
//! the plan's runner shows each titled step with its timing and records
//! the steps begun, so that a failed or interrupted plan is undone exactly,
//! last step first.

use super::Ctx;
use berth_core::error::Result;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Toy {
        Make(u8),
        Fail,
    }

    /// What was made, and the record of what ran and was undone.
    #[derive(Default)]
    struct Made {
        things: Vec<u8>,
        log: Vec<String>,
        undone: std::sync::Mutex<Vec<Toy>>,
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
            }
        }
        async fn undo(self, _: &Ctx, made: &Made) -> Result<()> {
            made.undone.lock().unwrap().push(self);
            match self {
                Toy::Make(2) => Err(berth_core::error::Error::failure("cannot undo 2")),
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
}
