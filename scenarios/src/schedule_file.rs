//! Schedule files: what `run --schedule` reads and `shrink` writes.
//!
//! A file holds either a JSON list of [`Scheduled`] entries (`[{"at_ms": 0, "fault": {...}}]`)
//! or a whole `run --json` report, whose `schedule` field is taken, so a report can be fed back
//! as it is.

use std::path::Path;

use serde_json::Value;
use sim::Scheduled;

#[derive(Debug, thiserror::Error)]
pub enum ScheduleFileError {
    #[error("cannot read schedule file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("schedule file {path} is not a schedule: {reason}")]
    Parse { path: String, reason: String },
    #[error("cannot write schedule file {path}: {source}")]
    Write { path: String, source: std::io::Error },
}

/// Reads a schedule from `path`.
pub fn read(path: &Path) -> Result<Vec<Scheduled>, ScheduleFileError> {
    let name = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|source| ScheduleFileError::Read { path: name.clone(), source })?;
    parse(&text).map_err(|reason| ScheduleFileError::Parse { path: name, reason })
}

/// Parses a schedule list, or the `schedule` field of a run report.
pub fn parse(text: &str) -> Result<Vec<Scheduled>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let list = match value {
        Value::Object(mut report) => {
            report.remove("schedule").ok_or_else(|| "a JSON object without a `schedule` field".to_string())?
        }
        list => list,
    };
    serde_json::from_value(list).map_err(|e| e.to_string())
}

/// Writes `schedule` to `path` as a pretty-printed JSON list, creating its folder.
pub fn write(path: &Path, schedule: &[Scheduled]) -> Result<(), ScheduleFileError> {
    let name = path.display().to_string();
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let text = serde_json::to_string_pretty(schedule).expect("schedules serialize");
        std::fs::write(path, text + "\n")
    };
    write().map_err(|source| ScheduleFileError::Write { path: name, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim::{Fault, Target};

    #[test]
    fn reads_a_list_and_a_report_alike() {
        let schedule = vec![Scheduled { at_ms: 5, fault: Fault::Kill(Target::role("pg-primary")) }];
        let list = serde_json::to_string(&schedule).unwrap();
        assert_eq!(parse(&list).unwrap(), schedule);
        let report = format!(r#"{{"scenario":"x","seed":3,"schedule":{list}}}"#);
        assert_eq!(parse(&report).unwrap(), schedule);
        assert_eq!(parse("[]").unwrap(), vec![]);
        assert!(parse(r#"{"seed":3}"#).unwrap_err().contains("schedule"));
        assert!(parse(r#"[{"at_ms":1,"fault":{"kind":"explode"}}]"#).is_err());
    }
}
