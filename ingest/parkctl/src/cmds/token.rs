//! `parkctl token new|hash`: API tokens and their `[[api.tokens]]` entries.
//!
//! Only the token's SHA-256 goes into the ingest configuration; the token
//! itself is printed once, for the person or system that will use it.

use std::io::Read as _;
use std::process::ExitCode;

use clap::Subcommand;

use parkwatch_incidents::model::Role;
use parkwatch_incidents::token::{hash_token, new_token};

/// `parkctl token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a new random token; print it and the config entry to paste
    /// into the ingest configuration.
    New {
        /// The token's name (the actor shown in timelines).
        #[arg(long)]
        name: String,
        /// supervisor, dispatcher, department, worker, reporter or viewer.
        #[arg(long)]
        role: String,
        /// For role department: the department id it acts for.
        #[arg(long)]
        department: Option<String>,
        /// For role worker: the worker id it acts as.
        #[arg(long)]
        worker: Option<String>,
    },
    /// Print the SHA-256 of a token given as argument or on standard input.
    Hash {
        /// The token; read from standard input when absent.
        token: Option<String>,
    },
}

/// The `[[api.tokens]]` entry for a token.
pub fn config_entry(
    name: &str,
    role: Role,
    department: Option<&str>,
    worker: Option<&str>,
    token: &str,
) -> String {
    let mut s = format!(
        "[[api.tokens]]\nname = {name:?}\nrole = \"{role}\"\nsha256 = \"{}\"\n",
        hash_token(token)
    );
    if let Some(d) = department {
        s.push_str(&format!("department = {d:?}\n"));
    }
    if let Some(w) = worker {
        s.push_str(&format!("worker = {w:?}\n"));
    }
    s
}

/// Runs one `parkctl token` command.
pub fn run(cmd: TokenCommand) -> ExitCode {
    match cmd {
        TokenCommand::New {
            name,
            role,
            department,
            worker,
        } => {
            let role: Role = match role.parse() {
                Ok(r) if r != Role::System => r,
                Ok(_) => {
                    eprintln!("parkctl: role system is ingest's own");
                    return ExitCode::from(2);
                }
                Err(e) => {
                    eprintln!("parkctl: {e}");
                    return ExitCode::from(2);
                }
            };
            if (role == Role::Department) != department.is_some() {
                eprintln!("parkctl: --department is required for role department, and only for it");
                return ExitCode::from(2);
            }
            if (role == Role::Worker) != worker.is_some() {
                eprintln!("parkctl: --worker is required for role worker, and only for it");
                return ExitCode::from(2);
            }
            let token = new_token();
            println!("# token (give it to its user; it is not stored anywhere):");
            println!("# {token}");
            println!("# add to the ingest configuration:");
            print!(
                "{}",
                config_entry(
                    &name,
                    role,
                    department.as_deref(),
                    worker.as_deref(),
                    &token
                )
            );
            ExitCode::SUCCESS
        }
        TokenCommand::Hash { token } => {
            let token = match token {
                Some(t) => t,
                None => {
                    let mut s = String::new();
                    if let Err(e) = std::io::stdin().read_to_string(&mut s) {
                        eprintln!("parkctl: cannot read standard input: {e}");
                        return ExitCode::from(2);
                    }
                    s
                }
            };
            let token = token.trim();
            if token.is_empty() {
                eprintln!("parkctl: empty token");
                return ExitCode::from(2);
            }
            println!("{}", hash_token(token));
            ExitCode::SUCCESS
        }
    }
}
