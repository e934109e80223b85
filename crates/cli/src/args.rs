//! The command line, exactly as the contract in docs/operations.md states it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "unseal",
    version,
    about = "Bulk-decrypts S/MIME mail so it stays readable after the keys are destroyed"
)]
pub struct Cli {
    /// More detail in the log (-v: error details; -vv: every item).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List every key loaded: subject, issuer, serial, SKI, algorithm, expiry.
    Keys(KeysCmd),
    /// Report, per item, its recipients and whether a key is at hand. Writes nothing else.
    Scan(ScanCmd),
    /// Decrypt every item of every INPUT into DIR (same format), resumably.
    Decrypt(DecryptCmd),
    /// Check that DIR holds a decrypted counterpart of every item of every INPUT.
    Verify(VerifyCmd),
}

/// Where keys and their passwords come from. A password is never taken from the command line.
#[derive(Args, Debug, Clone, Default)]
pub struct KeyArgs {
    /// A private key file (.p12 .pfx .pem .key .der); repeatable.
    #[arg(long = "key", value_name = "FILE")]
    pub key: Vec<PathBuf>,
    /// A certificate file (helps match recipients to keys); repeatable.
    #[arg(long = "cert", value_name = "FILE")]
    pub cert: Vec<PathBuf>,
    /// An escrow folder, searched recursively for key and certificate files; repeatable.
    #[arg(long = "keys", value_name = "DIR")]
    pub keys: Vec<PathBuf>,
    /// A file whose first line is the password for every key.
    #[arg(long = "password-file", value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Lines "path<TAB>password", path relative to --keys.
    #[arg(long = "password-map", value_name = "FILE")]
    pub password_map: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct KeysCmd {
    #[command(flatten)]
    pub keys: KeyArgs,
}

#[derive(Args, Debug)]
pub struct ScanCmd {
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Mailboxes: files or folders (mbox, Maildir, EML tree, .eml, .p7m, .msg, .pst/.ost).
    #[arg(value_name = "INPUT", required = true)]
    pub inputs: Vec<PathBuf>,
    /// Write the JSON-lines report here.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Decrypt in memory to prove each key really works.
    #[arg(long)]
    pub trial: bool,
    /// Worker threads (default: one per CPU).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// When no recipient matches, try every loaded key.
    #[arg(long = "try-all-keys")]
    pub try_all_keys: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutFormatArg {
    Mbox,
    Maildir,
}

#[derive(Args, Debug)]
pub struct DecryptCmd {
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Mailboxes: files or folders (mbox, Maildir, EML tree, .eml, .p7m, .msg, .pst/.ost).
    #[arg(value_name = "INPUT", required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output folder: INPUT B goes to DIR/B (with --in-place: optional, holds the journal).
    #[arg(long, value_name = "DIR", required_unless_present = "in_place")]
    pub out: Option<PathBuf>,
    /// Write the JSON-lines report here: one object per item, then a summary line.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Worker threads (default: one per CPU).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Replace each INPUT by its decrypted copy (needs --backup).
    #[arg(long = "in-place", requires = "backup")]
    pub in_place: bool,
    /// With --in-place: the originals are copied here (and checked) first.
    #[arg(long, value_name = "DIR", requires = "in_place")]
    pub backup: Option<PathBuf>,
    /// Do not add the X-Unseal trace header to decrypted messages.
    #[arg(long = "no-trace-header")]
    pub no_trace_header: bool,
    /// When no recipient matches, try every loaded key (slow).
    #[arg(long = "try-all-keys")]
    pub try_all_keys: bool,
    /// Messages of at least this many bytes are decrypted as a stream, in bounded memory,
    /// when their shape allows it (a top-level CBC or AES-GCM envelope whose plaintext holds
    /// no further S/MIME parts or forwarded messages); others are decrypted in memory.
    #[arg(long = "stream-above", value_name = "BYTES", default_value_t = 32 << 20)]
    pub stream_above: u64,
    /// Output format for PST inputs (default: maildir) or to convert.
    #[arg(long = "out-format", value_enum, value_name = "mbox|maildir")]
    pub out_format: Option<OutFormatArg>,
}

#[derive(Args, Debug)]
pub struct VerifyCmd {
    /// The mailboxes that were decrypted (the originals).
    #[arg(value_name = "INPUT", required = true)]
    pub inputs: Vec<PathBuf>,
    /// The output folder of `unseal decrypt`.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Where decrypt kept its journal, when not in --out or beside INPUT: the --out of an
    /// `--in-place` run that was given one.
    #[arg(long, value_name = "DIR")]
    pub journal: Option<PathBuf>,
    /// Write the JSON-lines report here: ok | missing | mismatch | undecrypted | unchecked per
    /// item, then a summary.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}
