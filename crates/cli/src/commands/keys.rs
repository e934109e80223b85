//! `unseal keys`, and loading the key ring for every command that needs one.

use std::path::{Path, PathBuf};

use crate::args::{KeyArgs, KeysCmd};
use crate::passwords::Passwords;
use crate::uc::cms::recipient::hex;
use crate::uc::keyring::KeyRing;
use crate::uc::{Error, KeyProblem};
use crate::{EXIT_FATAL, EXIT_OK, EXIT_SOME, log};

/// A key file that could not be used, named with the reason.
#[derive(Debug, Clone)]
pub struct KeyFailure {
    pub file: PathBuf,
    pub reason: String,
    pub detail: String,
}

impl std::fmt::Display for KeyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "key file {}: {}", self.file.display(), self.reason)
    }
}

pub struct Loaded {
    pub ring: KeyRing,
    pub failures: Vec<KeyFailure>,
}

const KEY_EXT: &[&str] = &["p12", "pfx", "pem", "key", "der"];
const CERT_EXT: &[&str] = &["crt", "cer", "cert"];

fn ext_of(p: &Path) -> String {
    p.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Key files named on the command line (always tried) and found in escrow folders (by
/// extension; a .pem/.der without a private key there is taken as a certificate).
fn collect(args: &KeyArgs) -> (Vec<(PathBuf, bool)>, Vec<PathBuf>, Vec<KeyFailure>) {
    let mut keys: Vec<(PathBuf, bool)> = args.key.iter().map(|k| (k.clone(), true)).collect();
    let mut certs = args.cert.clone();
    let mut failures = Vec::new();
    for dir in &args.keys {
        if !dir.is_dir() {
            failures.push(KeyFailure {
                file: dir.clone(),
                reason: "not a folder".into(),
                detail: String::new(),
            });
            continue;
        }
        for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    failures.push(KeyFailure {
                        file: e
                            .path()
                            .map(Path::to_path_buf)
                            .unwrap_or_else(|| dir.clone()),
                        reason: "cannot read".into(),
                        detail: e.to_string(),
                    });
                    continue;
                }
            };
            if !entry.file_type().is_file() {
                continue;
            }
            let p = entry.path().to_path_buf();
            let ext = ext_of(&p);
            if KEY_EXT.contains(&ext.as_str()) {
                keys.push((p, false));
            } else if CERT_EXT.contains(&ext.as_str()) {
                certs.push(p);
            }
        }
    }
    (keys, certs, failures)
}

fn key_problem(e: &Error) -> Option<KeyProblem> {
    match e {
        Error::Key { reason, .. } => Some(*reason),
        _ => None,
    }
}

fn failure(file: &Path, e: &Error) -> KeyFailure {
    match e {
        Error::Key { reason, detail, .. } => KeyFailure {
            file: file.to_path_buf(),
            reason: reason.to_string(),
            detail: detail.clone(),
        },
        other => KeyFailure {
            file: file.to_path_buf(),
            reason: other.to_string(),
            detail: String::new(),
        },
    }
}

/// Loads every key; a file that fails is reported and the rest are still loaded.
pub fn load(args: &KeyArgs, verbose: u8) -> Result<Loaded, String> {
    let mut pw = Passwords::load(
        args.password_file.as_deref(),
        args.password_map.as_deref(),
        &args.keys,
    )?;
    let (keys, certs, mut failures) = collect(args);
    let mut ring = KeyRing::new();
    for (file, explicit) in keys {
        let mut res = ring.load_file(&file, pw.configured(&file));
        let needs = |r: &Result<_, Error>| {
            matches!(
                r.as_ref().err().and_then(key_problem),
                Some(KeyProblem::NeedsPassword | KeyProblem::WrongPassword)
            )
        };
        if needs(&res) && pw.configured(&file).is_none() {
            for typed in pw.typed().to_vec() {
                res = ring.load_file(&file, Some(typed.as_str()));
                if !needs(&res) {
                    break;
                }
            }
            let mut tries = 0;
            while needs(&res) && pw.can_prompt(&file) && tries < 3 {
                tries += 1;
                let Some(p) = pw.prompt(&file) else { break };
                res = ring.load_file(&file, Some(p.as_str()));
            }
        }
        match res {
            Ok(_) => {}
            Err(e) if !explicit && key_problem(&e) == Some(KeyProblem::NoPrivateKey) => {
                // An escrow folder's .pem/.der holding only certificates.
                if let Err(e) = ring.add_certificates_file(&file) {
                    failures.push(failure(&file, &e));
                }
            }
            Err(e) => failures.push(failure(&file, &e)),
        }
    }
    for file in certs {
        if let Err(e) = ring.add_certificates_file(&file) {
            failures.push(failure(&file, &e));
        }
    }
    for f in &failures {
        if verbose > 0 && !f.detail.is_empty() {
            log(&format!("{f} ({})", f.detail));
        } else {
            log(&f.to_string());
        }
    }
    Ok(Loaded { ring, failures })
}

/// `unseal keys`.
pub fn run(cmd: &KeysCmd, verbose: u8) -> i32 {
    let loaded = match load(&cmd.keys, verbose) {
        Ok(l) => l,
        Err(e) => {
            log(&e);
            return EXIT_FATAL;
        }
    };
    let keys = loaded.ring.keys();
    if keys.is_empty() && loaded.failures.is_empty() {
        log("no key given: use --key FILE or --keys DIR");
        return EXIT_FATAL;
    }
    let now = crate::report::unix_now();
    for k in keys {
        println!("key {}", k.description());
        for c in &k.certs {
            println!("  subject:   {}", c.subject);
            println!("  issuer:    {}", c.issuer);
            println!("  serial:    0x{}", hex(&c.serial));
            if let Some(ski) = &c.ski {
                println!("  SKI:       {}", hex(ski));
            }
            println!("  algorithm: {}", c.key_algorithm);
            let expired = c.not_after_unix < now;
            if expired {
                println!(
                    "  expires:   {} (EXPIRED: still usable for decryption)",
                    c.not_after
                );
            } else {
                println!("  expires:   {}", c.not_after);
            }
        }
        if k.certs.is_empty() {
            println!("  (no certificate: matched to messages by its public key only)");
        }
    }
    println!(
        "{} key(s) loaded, {} file(s) failed",
        keys.len(),
        loaded.failures.len()
    );
    if loaded.failures.is_empty() {
        EXIT_OK
    } else {
        EXIT_SOME
    }
}
