//! The data directory of a real stack, and what the supervisor publishes in it:
//!
//! - `disks/<node>/`: the node's files (its [`sim::disk::RealDisk`]); what a restart recovers.
//! - `lives/<node>`: how many times the node has started.
//! - `logs/<node>.log`: the node's output.
//! - `supervisor.json`: the running supervisor's pid and control port ([`SupervisorFile`]).
//! - `nodes.json`: every node with its pid, state and ports, rewritten on every change.
//! - `endpoints.json`: the balancers' URLs ([`Endpoints`]), for clients and tests.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: PathBuf) -> Self {
        DataDir { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn node_disk(&self, node: &str) -> PathBuf {
        self.root.join("disks").join(node)
    }

    pub fn lives(&self) -> PathBuf {
        self.root.join("lives")
    }

    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    pub fn log_of(&self, node: &str) -> PathBuf {
        self.logs().join(format!("{node}.log"))
    }

    pub fn supervisor_file(&self) -> PathBuf {
        self.root.join("supervisor.json")
    }

    pub fn nodes_file(&self) -> PathBuf {
        self.root.join("nodes.json")
    }

    pub fn endpoints_file(&self) -> PathBuf {
        self.root.join("endpoints.json")
    }

    /// Creates the directories the stack writes to.
    pub fn create(&self) -> std::io::Result<()> {
        for dir in [self.root.join("disks"), self.lives(), self.logs()] {
            std::fs::create_dir_all(dir)?;
        }
        Ok(())
    }

    /// Writes `value` as pretty JSON, atomically (a reader never sees half a file).
    pub fn publish<T: Serialize>(&self, path: &Path, value: &T) -> std::io::Result<()> {
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, json)?;
        std::fs::rename(tmp, path)
    }

    pub fn read_supervisor(&self) -> std::io::Result<SupervisorFile> {
        let bytes = std::fs::read(self.supervisor_file())?;
        serde_json::from_slice(&bytes).map_err(std::io::Error::other)
    }
}

/// Where a running supervisor takes commands.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SupervisorFile {
    pub pid: u32,
    /// Its control port on 127.0.0.1 ([`crate::control`]).
    pub control_port: u16,
    pub base_port: u16,
}

/// The front doors of the stack.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Endpoints {
    pub balancers: Vec<BalancerEndpoint>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BalancerEndpoint {
    pub name: String,
    /// `http://127.0.0.1:<port>`: sign-up, login, grants, document reads.
    pub http: String,
    /// `ws://127.0.0.1:<port>`: append `/collab/<tenant>/<doc>?token=<jwt>` for y-sync.
    pub ws: String,
}
