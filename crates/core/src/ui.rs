//! Human output on stderr: one line per step with its duration, a spinner on
//! a terminal, plain lines otherwise. Data goes to stdout, elsewhere.

use std::time::{Duration, Instant};

use console::{Term, style};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Clone, Copy)]
pub struct Ui {
    quiet: bool,
    tty: bool,
}

impl Ui {
    pub fn new(quiet: bool) -> Self {
        Self {
            quiet,
            tty: Term::stderr().is_term(),
        }
    }

    /// Starts a step; it ends with `done`, or as failed when dropped.
    pub fn step(&self, title: impl Into<String>) -> Step {
        let title = title.into();
        let bar = (!self.quiet && self.tty).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix} {wide_msg:.dim}")
                    .expect("valid template"),
            );
            bar.set_prefix(title.clone());
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        if !self.quiet && !self.tty {
            eprintln!("- {title} ...");
        }
        Step {
            ui: *self,
            title,
            started: Instant::now(),
            bar,
            finished: false,
        }
    }

    pub fn info(&self, message: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", message.as_ref());
        }
    }

    pub fn error(&self, error: &crate::error::Error) {
        let (label, hint) = if self.tty {
            (
                style("error:").red().bold().to_string(),
                style("hint:").yellow().bold().to_string(),
            )
        } else {
            ("error:".to_string(), "hint:".to_string())
        };
        eprintln!("{label} {}", error.message);
        for cause in error.causes() {
            eprintln!("  caused by: {cause}");
        }
        if let Some(text) = &error.hint {
            eprintln!("{hint} {text}");
        }
    }
}

/// `n` and `noun`, plural unless one: "1 node", "3 nodes".
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

pub struct Step {
    ui: Ui,
    title: String,
    started: Instant,
    bar: Option<ProgressBar>,
    finished: bool,
}

impl Step {
    /// Shows what the step is doing now, on a terminal only.
    pub fn detail(&self, text: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(text.trim().to_string());
        }
    }

    /// Shows a stage of a long step: on a terminal as `detail` does,
    /// otherwise as a line of its own, so a log shows where minutes went.
    pub fn stage(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(text.trim().to_string()),
            None if !self.ui.quiet => eprintln!("  {}", text.trim()),
            None => {}
        }
    }

    pub fn done(mut self) -> Duration {
        self.finish(true)
    }

    pub fn done_with(mut self, note: &str) -> Duration {
        self.title = format!("{} ({note})", self.title);
        self.finish(true)
    }

    fn finish(&mut self, ok: bool) -> Duration {
        self.finished = true;
        let took = self.started.elapsed();
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if !self.ui.quiet {
            let mark = match (ok, self.ui.tty) {
                (true, true) => style("✓").green().to_string(),
                (false, true) => style("✗").red().to_string(),
                (true, false) => "ok".into(),
                (false, false) => "FAILED".into(),
            };
            eprintln!(
                "{mark} {} {}",
                self.title,
                style(format!("{:.1}s", took.as_secs_f64())).dim()
            );
        }
        took
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if !self.finished {
            self.finish(false);
        }
    }
}

/// The terminal on stdin in raw mode while held: every key, Ctrl-C
/// included, goes to the program at the other end; restored when dropped.
pub struct RawTerminal(libc::termios);

impl RawTerminal {
    /// `None` when stdin is not a terminal.
    pub fn enter() -> Option<Self> {
        // SAFETY: termios is plain data that tcgetattr fills for fd 0.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(0, &mut saved) } != 0 {
            return None;
        }
        let mut raw = saved;
        // SAFETY: cfmakeraw changes the copy it is given.
        unsafe { libc::cfmakeraw(&mut raw) };
        (unsafe { libc::tcsetattr(0, libc::TCSANOW, &raw) } == 0).then_some(Self(saved))
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        // SAFETY: the settings read from fd 0 in `enter`.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &self.0) };
    }
}
