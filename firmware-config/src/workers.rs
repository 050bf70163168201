//! Grid workers (`workers.toml`): who looks after which grids.
//!
//! After a site check passes, worker ids are unique, every grid a worker
//! names exists and is a unit or community grid, and every unit grid is
//! covered by at least one worker (directly, or through its community).

use serde::{Deserialize, Serialize};

/// What a worker may do in the incident workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerRole {
    /// 网格员: patrols, reports and handles problems in their grids.
    GridWorker,
    /// 监督员: verifies problems on site before filing and after handling.
    Inspector,
    /// 网格长: leads a community grid; incidents escalate to them.
    CommunityLead,
}

/// One grid worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Worker {
    /// Required. Id, `[A-Za-z0-9_.-]{1,64}`, unique.
    pub id: String,
    /// Required. Name.
    pub name: String,
    /// Required. Mobile number, 11 digits starting with 1.
    pub phone: String,
    /// Required, non-empty. Codes of unit or community grids.
    pub grids: Vec<String>,
    /// Required, non-empty.
    pub roles: Vec<WorkerRole>,
}

impl Worker {
    /// Whether the worker has `role`.
    pub fn has_role(&self, role: WorkerRole) -> bool {
        self.roles.contains(&role)
    }
}

/// The whole `workers.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WorkersFile {
    /// `[[workers]]`.
    #[serde(default)]
    pub workers: Vec<Worker>,
}

/// Checks a Chinese mobile number: 11 digits starting with 1.
pub(crate) fn check_phone(p: &str) -> Result<(), String> {
    if p.len() == 11 && p.starts_with('1') && p.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!(
            "{p:?} is not an 11-digit mobile number starting with 1"
        ))
    }
}
