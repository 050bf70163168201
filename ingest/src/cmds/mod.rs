//! The subcommands of `parkwatch-ingest`, one file each: [`run`] (the
//! service, the default) and [`check_config`].

pub mod check_config;
pub mod run;
