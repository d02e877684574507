//! `cargo bench -p scenarios`: benchmark figures of scenarios on the turmoil engine (the plain
//! build's engine). The madsim figures come from `cargo chaos bench`, which runs the same code.
//!
//! Usage: `cargo bench -p scenarios --bench turmoil_engine -- [SCENARIO] [SEEDS]`
//! (defaults: smoke, 20 seeds).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let name = args.first().map(String::as_str).unwrap_or("smoke");
    let seeds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    let Some(scenario) = scenarios::find(name) else {
        eprintln!("error: unknown scenario `{name}`");
        std::process::exit(2);
    };
    match scenarios::bench::measure(scenario, 0..seeds, None) {
        Ok(figures) => print!("{}", figures.render()),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}
