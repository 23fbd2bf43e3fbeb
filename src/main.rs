use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Output piped into `head` and the like ends quietly when the reader
    // goes, as with any other command, instead of panicking on EPIPE.
    // SAFETY: setting a signal's disposition to the default before any
    // thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // A shell asking for completions (the script `berth completion` prints
    // calls berth back with COMPLETE set) is answered here, and berth exits.
    clap_complete::CompleteEnv::with_factory(<berth::cli::Cli as clap::CommandFactory>::command)
        .var(berth::cli::COMPLETE_VAR)
        .complete();
    let cli = berth::cli::Cli::parse();
    let ui = berth_core::ui::Ui::new(cli.global.quiet);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the async runtime starts");
    match runtime.block_on(berth::cli::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            ui.error(&error);
            error.exit_code()
        }
    }
}
