//! `schema`, `completions` and `man`: what editors and shells need, generated from the same
//! definitions the program itself uses (the config structs and the clap `Cli`), so they
//! cannot drift from it.

use anyhow::Context;
use clap::CommandFactory;

use super::output::print_out;
use super::{Cli, CompletionsArgs, Exit, ManArgs, manual};

/// Prints the JSON Schema of the desired-state file.
pub fn schema() -> anyhow::Result<Exit> {
    let schema = crate::config::schema::json_schema();
    print_out(&(serde_json::to_string_pretty(&schema)? + "\n"))?;
    Ok(Exit::Success)
}

/// Prints the completion script of a shell.
pub fn completions(args: &CompletionsArgs) -> anyhow::Result<Exit> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "cfgroups", &mut script);
    print_out(&String::from_utf8(script).context("completion script is not UTF-8")?)?;
    Ok(Exit::Success)
}

/// Prints the man page (roff) of cfgroups, or of one of its commands, with the EXIT
/// STATUS, ENVIRONMENT and FILES sections of [`manual`].
pub fn man(args: &ManArgs) -> anyhow::Result<Exit> {
    let mut command = Cli::command();
    // Building names each subcommand's page `cfgroups-NAME` and its usage `cfgroups NAME`.
    command.build();
    let page = match &args.command {
        None => command,
        Some(name) => command
            .find_subcommand(name)
            .cloned()
            .with_context(|| format!("no command {name:?}; see `cfgroups --help`"))?
            .version(env!("CARGO_PKG_VERSION")),
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(page).render(&mut roff)?;
    let roff = String::from_utf8(roff).context("man page is not UTF-8")?;
    print_out(&manual::with_sections(&roff))?;
    Ok(Exit::Success)
}
