//! `cargo bench -p scenarios`: benchmark figures of scenarios on the turmoil engine (the plain
//! build's engine). The madsim figures come from `cargo chaos bench`, which runs the same code;
//! `ci/bench-sim.sh` runs both and prints them in one table.
//!
//! Usage: `cargo bench -p scenarios --bench turmoil_engine -- [SCENARIOS] [SEEDS] [--json FILE]`
//! (defaults: smoke, 20 seeds). SCENARIOS is one name or several separated by commas; SEEDS is
//! a count from seed 0 or a range `A..B`; `--json FILE` also writes the figures as JSON, for
//! `cargo chaos bench --against FILE` (cargo runs benches in the package's folder: a relative
//! FILE is taken from `scenarios/`).

use std::ops::Range;

fn main() {
    let mut positional = Vec::new();
    let mut json = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--json" {
            match args.next() {
                Some(path) => json = Some(path),
                None => fail("--json needs a file"),
            }
        } else if !a.starts_with("--") {
            positional.push(a);
        }
    }
    let names = positional.first().map(String::as_str).unwrap_or("smoke");
    let seeds = match positional.get(1) {
        None => 0..20,
        Some(s) => parse_seeds(s).unwrap_or_else(|| fail(&format!("bad seeds `{s}`: expected a count or A..B"))),
    };
    if let Some(path) = &json {
        // Before the runs, which take minutes: a file that cannot be written fails now.
        if let Err(e) = std::fs::write(path, "[]\n") {
            fail(&format!("writing {path}: {e}"));
        }
    }
    let mut rows = Vec::new();
    for name in names.split(',').map(str::trim) {
        let Some(scenario) = scenarios::find(name) else { fail(&format!("unknown scenario `{name}`")) };
        match scenarios::bench::measure(scenario, seeds.clone(), None) {
            Ok(figures) => {
                print!("{}", figures.render());
                rows.push(figures);
            }
            Err(e) => fail(&e.to_string()),
        }
    }
    if let Some(path) = json {
        let all: Vec<serde_json::Value> = rows.iter().map(|f| f.to_json()).collect();
        let text = serde_json::to_string_pretty(&all).expect("figures serialize") + "\n";
        if let Err(e) = std::fs::write(&path, text) {
            fail(&format!("writing {path}: {e}"));
        }
    }
    println!();
    print!("{}", scenarios::bench::table(&rows));
}

fn parse_seeds(s: &str) -> Option<Range<u64>> {
    match s.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (a.parse().ok()?, b.parse().ok()?);
            (a < b).then_some(a..b)
        }
        None => s.parse().ok().filter(|n| *n > 0).map(|n| 0..n),
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2);
}
