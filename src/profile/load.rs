//! Finding profiles on disk: by name in the search path, or by file path.
//!
//! The search path is, in order: `./profiles`, every directory in
//! `DEVBRIDGE_PROFILE_PATH` (colon separated), then
//! `$XDG_CONFIG_HOME/devbridge/profiles` (default `~/.config/devbridge/profiles`).
//! The bundled `demo` profile is also compiled in, so `devbridge connect demo`
//! works anywhere; a `demo.toml` in the search path takes precedence.

use std::path::{Path, PathBuf};

use super::{Profile, ProfileError, ProfileErrors, parse_profile};

pub const PROFILE_EXTENSION: &str = "toml";

/// Profiles compiled into the binary: (name, source).
pub const EMBEDDED: &[(&str, &str)] = &[("demo", include_str!("../../profiles/demo.toml"))];

/// Where a profile comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    File(PathBuf),
    Embedded(&'static str),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(p) => write!(f, "{}", p.display()),
            Location::Embedded(name) => write!(f, "{name}.{PROFILE_EXTENSION} (embedded)"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no profile named {name:?}; looked in {}", searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    NotFound { name: String, searched: Vec<PathBuf> },
    #[error("cannot read profile {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Invalid(#[from] ProfileErrors),
}

/// The directories searched for profiles by name, in order, from the
/// process environment.
pub fn search_path() -> Vec<PathBuf> {
    search_path_from(
        std::env::var_os("DEVBRIDGE_PROFILE_PATH").as_deref().map(Path::new),
        std::env::var_os("XDG_CONFIG_HOME").as_deref().map(Path::new),
        std::env::var_os("HOME").as_deref().map(Path::new),
    )
}

/// The user's devbridge configuration directory.
pub fn config_dir() -> Option<PathBuf> {
    config_dir_from(
        std::env::var_os("XDG_CONFIG_HOME").as_deref().map(Path::new),
        std::env::var_os("HOME").as_deref().map(Path::new),
    )
}

fn config_dir_from(xdg: Option<&Path>, home: Option<&Path>) -> Option<PathBuf> {
    match (xdg.filter(|p| p.is_absolute()), home) {
        (Some(x), _) => Some(x.join("devbridge")),
        (None, Some(h)) => Some(h.join(".config").join("devbridge")),
        (None, None) => None,
    }
}

fn search_path_from(profile_path: Option<&Path>, xdg: Option<&Path>, home: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("profiles")];
    if let Some(pp) = profile_path {
        dirs.extend(std::env::split_paths(pp).filter(|p| !p.as_os_str().is_empty()));
    }
    if let Some(c) = config_dir_from(xdg, home) {
        dirs.push(c.join("profiles"));
    }
    dirs
}

/// Where a profile argument points: a path when it names an existing file or
/// looks like one, otherwise the first `<dir>/<name>.toml` in the search
/// path, otherwise an embedded profile of that name.
pub fn resolve(arg: &str, search: &[PathBuf]) -> Result<Location, LoadError> {
    let as_path = Path::new(arg);
    let looks_like_path = arg.contains(std::path::MAIN_SEPARATOR) || arg.ends_with(".toml");
    if as_path.is_file() || looks_like_path {
        return Ok(Location::File(as_path.to_path_buf()));
    }
    if let Some(p) = search.iter().map(|d| d.join(format!("{arg}.{PROFILE_EXTENSION}"))).find(|p| p.is_file()) {
        return Ok(Location::File(p));
    }
    EMBEDDED
        .iter()
        .find(|(name, _)| *name == arg)
        .map(|(name, _)| Location::Embedded(name))
        .ok_or_else(|| LoadError::NotFound { name: arg.to_string(), searched: search.to_vec() })
}

/// Reads and validates a profile.
pub fn load(location: &Location) -> Result<Profile, LoadError> {
    match location {
        Location::File(path) => load_file(path),
        Location::Embedded(name) => Ok(parse_profile(&location.to_string(), name, embedded(name).unwrap_or(""))?),
    }
}

/// The text of a profile built into devbridge.
pub fn embedded(name: &str) -> Option<&'static str> {
    EMBEDDED.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// Reads and validates the profile at `path`.
pub fn load_file(path: &Path) -> Result<Profile, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read { path: path.to_path_buf(), source })?;
    let file = path.display().to_string();
    let src = profile_text(&file, &bytes)?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("profile");
    Ok(parse_profile(&file, stem, src)?)
}

/// A profile file's bytes as text: the one rule every reader (start-up,
/// `check`, reload) applies. TOML is UTF-8 only, and decoding anything else
/// lossily would serve replacement characters in place of what was meant,
/// so invalid UTF-8 is an error located at its first bad byte.
pub fn profile_text<'b>(file: &str, bytes: &'b [u8]) -> Result<&'b str, ProfileErrors> {
    std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        // The text before the bad byte is valid, so lines and columns count in it.
        let before = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        let len = e.error_len().unwrap_or(bytes.len() - at);
        let shown: Vec<String> = bytes[at..at + len].iter().map(|b| format!("0x{b:02x}")).collect();
        ProfileErrors::from(vec![ProfileError {
            file: file.to_string(),
            line,
            column,
            key: String::new(),
            message: format!(
                "invalid UTF-8 at byte {at} ({}); profiles must be UTF-8 (was the file saved as Latin-1?)",
                shown.join(" ")
            ),
        }])
    })
}

/// One profile found in the search path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub name: String,
    pub location: Location,
    /// False when an earlier directory has a profile of the same name.
    pub active: bool,
}

/// Every profile in the search path, earlier directories first, then the
/// embedded ones (inactive when a file of the same name exists).
pub fn list(search: &[PathBuf]) -> Vec<Found> {
    let mut found: Vec<Found> = Vec::new();
    for dir in search {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        let mut here: Vec<Found> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == PROFILE_EXTENSION))
            .filter_map(|p| {
                let name = p.file_stem()?.to_str()?.to_string();
                Some(Found { active: true, name, location: Location::File(p) })
            })
            .collect();
        here.sort_by(|a, b| a.name.cmp(&b.name));
        for mut f in here {
            f.active = !found.iter().any(|g| g.name == f.name);
            found.push(f);
        }
    }
    for (name, _) in EMBEDDED {
        let active = !found.iter().any(|g| g.name == *name);
        found.push(Found { name: name.to_string(), location: Location::Embedded(name), active });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_demo_is_valid() {
        let p = load(&Location::Embedded("demo")).unwrap();
        assert_eq!((p.name.as_str(), p.file.as_str()), ("demo", "demo.toml (embedded)"));
    }

    #[test]
    fn invalid_utf8_is_rejected_at_its_byte_position() {
        // "été" in Latin-1: 0xe9 is not UTF-8.
        let bytes = b"name = \"p\"\ndescription = \"\xe9t\xe9\"\n";
        let err = profile_text("p.toml", bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "p.toml:2:16: invalid UTF-8 at byte 26 (0xe9); profiles must be UTF-8 (was the file saved as Latin-1?)"
        );
        assert_eq!(profile_text("p.toml", "name = \"été\"".as_bytes()).unwrap(), "name = \"été\"");
    }

    #[test]
    fn load_file_rejects_invalid_utf8_like_every_other_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latin1.toml");
        std::fs::write(&path, b"description = \"\xe9\"\n").unwrap();
        let err = load_file(&path).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}:1:16: invalid UTF-8 at byte 15 (0xe9); profiles must be UTF-8 (was the file saved as Latin-1?)",
                path.display()
            )
        );
    }

    #[test]
    fn an_empty_or_comment_only_file_is_rejected_at_load() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [("empty.toml", ""), ("blank.toml", "\n  \n"), ("comments.toml", "# nothing yet\n")] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let err = load_file(&path).unwrap_err().to_string();
            assert_eq!(
                err,
                format!(
                    "{}:1:1: the profile is empty (no keys, only blank lines or comments); \
                     expected at least a [proxies.NAME] table",
                    path.display()
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn search_path_puts_local_dir_first_and_config_dir_last() {
        let dirs = search_path_from(Some(Path::new("/a:/b")), None, Some(Path::new("/home/u")));
        assert_eq!(
            dirs,
            vec![
                PathBuf::from("profiles"),
                PathBuf::from("/a"),
                PathBuf::from("/b"),
                PathBuf::from("/home/u/.config/devbridge/profiles"),
            ]
        );
    }

    #[test]
    fn xdg_config_home_wins_over_home() {
        let dirs = search_path_from(None, Some(Path::new("/x")), Some(Path::new("/home/u")));
        assert_eq!(dirs.last().unwrap(), &PathBuf::from("/x/devbridge/profiles"));
    }

    #[test]
    fn resolve_finds_a_name_in_the_first_directory_that_has_it() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(b.path().join("staging.toml"), "").unwrap();
        std::fs::write(a.path().join("other.toml"), "").unwrap();
        let search = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        assert_eq!(resolve("staging", &search).unwrap(), Location::File(b.path().join("staging.toml")));
        assert_eq!(resolve("demo", &search).unwrap(), Location::Embedded("demo"));
        let err = resolve("nope", &search).unwrap_err().to_string();
        assert!(err.starts_with("no profile named \"nope\"; looked in "), "{err}");
    }

    #[test]
    fn list_marks_shadowed_profiles_inactive() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(a.path().join("demo.toml"), "").unwrap();
        std::fs::write(b.path().join("demo.toml"), "").unwrap();
        std::fs::write(b.path().join("staging.toml"), "").unwrap();
        let found = list(&[a.path().to_path_buf(), b.path().to_path_buf()]);
        let summary: Vec<(&str, bool)> = found.iter().map(|f| (f.name.as_str(), f.active)).collect();
        assert_eq!(summary, vec![("demo", true), ("demo", false), ("staging", true), ("demo", false)]);
    }
}
