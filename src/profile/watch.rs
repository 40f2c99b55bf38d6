//! Hot reload: follows a profile file and serves every good edit.
//!
//! [`ReloadStatus`] is what the admin API shows of it.

use serde::Serialize;

/// The reload state of the profile in force, for `/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadStatus {
    /// The file followed (or where the embedded profile came from).
    pub file: String,
    /// When the profile in force was read, in milliseconds since the Unix epoch.
    pub loaded_at_ms: u64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    /// One line on what the last successful reload changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_change: Option<String>,
    /// The last failed reload, shown until a good edit replaces it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ReloadError>,
}

/// A rejected edit: every located error, as `file:line:col: key: message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadError {
    pub at_ms: u64,
    pub errors: Vec<String>,
}

impl ReloadStatus {
    /// The status of a profile just loaded at start-up.
    pub fn loaded(file: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            loaded_at_ms: now_ms(),
            reloads_ok: 0,
            reloads_failed: 0,
            last_change: None,
            error: None,
        }
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
