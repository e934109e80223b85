//! Where a key file's password comes from: --password-map (per file), --password-file (one for
//! all), env UNSEAL_PASSWORD, else a prompt when stdin and stderr are a terminal. Passwords live
//! in zeroizing strings and are never printed.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

pub type Secret = Zeroizing<String>;

pub struct Passwords {
    /// Canonical path of a key file -> its password.
    map: HashMap<PathBuf, Secret>,
    /// --password-file, else UNSEAL_PASSWORD.
    shared: Option<Secret>,
    /// Passwords typed at the prompt during this run, tried on later files before asking again.
    typed: Vec<Secret>,
    interactive: bool,
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("").trim_end_matches('\r')
}

impl Passwords {
    /// Reads the password sources. `roots` are the --keys folders (map paths are relative to
    /// them; absolute map paths are used as they are).
    pub fn load(
        password_file: Option<&Path>,
        password_map: Option<&Path>,
        roots: &[PathBuf],
    ) -> Result<Passwords, String> {
        let mut shared = None;
        if let Some(p) = password_file {
            let text = Zeroizing::new(
                std::fs::read_to_string(p)
                    .map_err(|e| format!("{}: cannot read password file: {e}", p.display()))?,
            );
            shared = Some(Zeroizing::new(first_line(&text).to_string()));
        } else if let Ok(v) = std::env::var("UNSEAL_PASSWORD") {
            shared = Some(Zeroizing::new(v));
        }
        let mut map = HashMap::new();
        if let Some(p) = password_map {
            let text = Zeroizing::new(
                std::fs::read_to_string(p)
                    .map_err(|e| format!("{}: cannot read password map: {e}", p.display()))?,
            );
            for (n, line) in text.lines().enumerate() {
                let line = line.trim_end_matches('\r');
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let Some((path, pw)) = line.split_once('\t') else {
                    // The line may hold a password: name only the line number.
                    return Err(format!(
                        "{}: line {}: expected \"path<TAB>password\"",
                        p.display(),
                        n + 1
                    ));
                };
                let rel = Path::new(path);
                let candidates: Vec<PathBuf> = if rel.is_absolute() || roots.is_empty() {
                    vec![rel.to_path_buf()]
                } else {
                    roots.iter().map(|r| r.join(rel)).collect()
                };
                for c in candidates {
                    let key = c.canonicalize().unwrap_or(c);
                    map.insert(key, Zeroizing::new(pw.to_string()));
                }
            }
        }
        Ok(Passwords {
            map,
            shared,
            typed: Vec::new(),
            interactive: std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
        })
    }

    /// The password configured for `file`, if any (map first, then the shared one).
    pub fn configured(&self, file: &Path) -> Option<&str> {
        let key = file.canonicalize().unwrap_or_else(|_| file.to_path_buf());
        self.map
            .get(&key)
            .or(self.shared.as_ref())
            .map(|s| s.as_str())
    }

    /// Passwords typed earlier in this run.
    pub fn typed(&self) -> &[Secret] {
        &self.typed
    }

    /// Whether a prompt can be shown (and no password was configured for this file).
    pub fn can_prompt(&self, file: &Path) -> bool {
        self.interactive && self.configured(file).is_none()
    }

    /// Asks on the terminal, without echo.
    pub fn prompt(&mut self, file: &Path) -> Option<Secret> {
        let pw = rpassword::prompt_password(format!("Password for {}: ", file.display())).ok()?;
        let pw = Zeroizing::new(pw);
        self.typed.push(pw.clone());
        Some(pw)
    }
}
