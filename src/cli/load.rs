//! Which configuration a command uses.

use std::path::{Path, PathBuf};

use postwarden::config::{Config, ConfigError};

/// Loads `--config`, else `conf/postwarden.toml`, else the embedded defaults.
pub fn load_config(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        Some(p) => Config::load(p),
        None => {
            let default = Path::new("conf/postwarden.toml");
            if default.is_file() {
                Config::load(default)
            } else {
                let base = std::env::current_dir()
                    .unwrap_or_else(|_| PathBuf::from("."))
                    .join("conf");
                Config::embedded_default(&base).map_err(|problems| ConfigError {
                    file: PathBuf::from("(embedded defaults)"),
                    problems,
                })
            }
        }
    }
}
