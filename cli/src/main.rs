//! `chaos`: list, run, sweep, replay and check the determinism of seeded scenarios.
//!
//! Reached as `cargo chaos <args>` (a cargo alias that builds this crate with `--cfg madsim` in
//! `target/madsim`). Exit codes: 0 everything held, 1 an invariant or determinism failed,
//! 2 bad input.

mod args;
mod commands;
mod logging;
mod seeds;

use std::process::ExitCode;

use clap::Parser;

/// A simulation allocates and frees small objects (frames, futures, timer entries) at a high
/// rate; mimalloc does that several times cheaper than glibc's malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc gives memory freed for a while back to the system (it "purges" it), and a process
/// that runs seed after seed, a sweep or a bench, takes it back through page faults, each of
/// which clears a fresh page: a tenth of a bench's time. Keeping it makes such a process about
/// 8% faster (`bench --scenario kill-az --seeds 0..4`, three runs each way: 13.5 s against
/// 14.8 s) for a tenth more peak memory. `MIMALLOC_PURGE_DELAY` in the environment still wins.
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // `mi_option_purge_delay` in mimalloc's `mi_option_e` (the same in its v2 and v3), which
    // the bindings do not name; -1 never purges.
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: setting an option is a store into mimalloc's option table, allowed at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // Help and version: not errors.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // Usage errors are one line (clap's first), exit 2.
            let rendered = e.render().to_string();
            let first = rendered.lines().find(|l| !l.trim().is_empty()).unwrap_or("error: bad usage");
            eprintln!("{} (see --help)", first.trim_end());
            return ExitCode::from(2);
        }
    };
    if !cfg!(madsim) {
        eprintln!(
            "error: this chaos binary was built without `--cfg madsim`, so it cannot simulate; a RUSTFLAGS \
             variable in the environment overrides the alias's rustflags: unset RUSTFLAGS and run `cargo chaos`"
        );
        return ExitCode::from(2);
    }
    match commands::dispatch(cli.command) {
        Ok(code) => code,
        Err(commands::Failure::Usage(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
        Err(commands::Failure::Other(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
