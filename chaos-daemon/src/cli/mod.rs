//! `chaosctl`, the command-line client of the daemon: argument model, request building,
//! connection, and output, kept apart so other front-ends (e.g. a `kubectl-chaos`
//! plugin) can reuse the [`args`] structs and the [`output`] layer.

pub mod actors;
pub mod args;
pub mod connect;
pub mod error;
mod errortap;
pub mod exit;
pub mod impair;
pub mod output;
pub mod parse;
pub mod podview;
pub mod request;
pub mod run;
pub mod storage;
pub mod table;
pub mod view;

pub use args::{Cli, Command, NetworkArgs, OutputFormat};
pub use error::{clap_error_line, CliError};
pub use run::{execute, run};
